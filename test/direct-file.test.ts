// BGSAVE's O_DIRECT file writes (src/transport/direct-file.ts): the image is
// assembled in aligned chunks whose boundaries fall inside blocks, so the
// carried bytes, the padded end and the final truncate must give exactly the
// bytes a plain buffered write gives, for images ending at every alignment.
import { strict as assert } from 'assert';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { Pool } from '../src/pool/pool';
import { ConsistentCut } from '../src/snapshot/cut';
import { loadImage } from '../src/snapshot/load';
import { Keyspace } from '../src/store/keyspace';
import { FileSink } from '../src/transport/file';
import { pageIo } from '../src/transport/native';
import { pattern, rng } from './helpers/random';

const MiB = 1024 * 1024;

describe('snapshot: O_DIRECT file writes', function () {
  this.timeout(120000);
  let dir: string;

  before(function () {
    if (pageIo() === null) this.skip(); // O_DIRECT needs the addon's aligned buffers
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'poolkv-direct-'));
  });
  after(() => {
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  });

  async function save(pool: Pool, name: string, direct: boolean): Promise<{ bytes: Buffer; mode: string }> {
    const sink = new FileSink({ dir, filename: name, sync: false, direct });
    await ConsistentCut.open(pool, sink).run();
    return { bytes: fs.readFileSync(path.join(dir, name)), mode: sink.writeMode };
  }

  it('writes the same image as buffered writes, across chunk boundaries and for every block count tried', async () => {
    const r = rng(99);
    // 1..~40 data pages: images of 2..41 blocks end at many offsets modulo 4 KiB and 8 MiB chunks.
    for (const keys of [1, 7, 60, 300, 900]) {
      const pool = Pool.open({ size: 96 * MiB, databases: 1 });
      try {
        const ks = new Keyspace(pool);
        const model = new Map<string, Buffer>();
        for (let i = 0; i < keys; i++) {
          const value = pattern(keys * 1000 + i, 16 + Math.floor(r() * 60000));
          ks.db(0).setString(Buffer.from(`k${i}`), value, 0);
          model.set(`k${i}`, value);
        }
        const direct = await save(pool, `direct-${keys}.pool`, true);
        const buffered = await save(pool, `buffered-${keys}.pool`, false);
        assert.equal(direct.mode, 'direct');
        assert.equal(buffered.mode, 'buffered');
        assert.equal(direct.bytes.length, buffered.bytes.length, `${keys} keys: image length`);
        // Header and trailer carry the creation time and checksums over it; every block must be identical.
        assert.ok(direct.bytes.subarray(128, direct.bytes.length - 24).equals(buffered.bytes.subarray(128, buffered.bytes.length - 24)),
          `${keys} keys: the blocks of the O_DIRECT image differ from the buffered one`);
        const loaded = loadImage(path.join(dir, `direct-${keys}.pool`), { poolSize: 96 * MiB, databases: 1 });
        try {
          const db = new Keyspace(loaded.pool).db(0);
          assert.equal(db.size(), keys);
          db.forEachLive((e) => {
            assert.ok(db.readString(e).equals(model.get(db.keyOf(e).toString('latin1'))!));
          });
        } finally {
          loaded.mapping.close();
        }
        assert.deepEqual(fs.readdirSync(dir).filter((f) => f.startsWith('temp-')), [], 'no temp file left');
      } finally {
        pool.close();
      }
    }
  });

  it('an aborted O_DIRECT save leaves the previous image and no temp file', async () => {
    const pool = Pool.open({ size: 96 * MiB, databases: 1 });
    try {
      const ks = new Keyspace(pool);
      for (let i = 0; i < 400; i++) ks.db(0).setString(Buffer.from(`k${i}`), pattern(i, 50000), 0);
      const first = await save(pool, 'dump.pool', true);
      ks.db(0).setString(Buffer.from('more'), pattern(1, 4 * MiB), 0);
      const cut = ConsistentCut.open(pool, new FileSink({ dir, filename: 'dump.pool', sync: false, direct: true }));
      const running = cut.run();
      setImmediate(() => cut.abort('test abort'));
      await assert.rejects(running, /test abort/);
      assert.ok(fs.readFileSync(path.join(dir, 'dump.pool')).equals(first.bytes), 'the previous image is untouched');
      assert.deepEqual(fs.readdirSync(dir).filter((f) => f.startsWith('temp-')), [], 'the temp file is removed');
    } finally {
      pool.close();
    }
  });
});
