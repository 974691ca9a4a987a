// Loading an image file into a pool (src/snapshot/load.ts loadImageFile): the
// native multi-threaded reader (native/image_load.cc; with O_DIRECT and with
// buffered reads) against the
// one-block-at-a-time JS reader, on a good image and on many damaged ones.
// Both must accept exactly the same images, with exactly the same message for
// each bad one, and a loaded pool must hold exactly the saved dataset.
import { strict as assert } from 'assert';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { PoolFormatError } from '../src/pool/errors';
import { SharedMapping } from '../src/pool/mapping';
import { Pool } from '../src/pool/pool';
import { ConsistentCut } from '../src/snapshot/cut';
import { ImageError } from '../src/snapshot/image';
import { loadImageFile } from '../src/snapshot/load';
import { Keyspace } from '../src/store/keyspace';
import { FileSink } from '../src/transport/file';
import { pageIo } from '../src/transport/native';
import { pattern, rng } from './helpers/random';

const MiB = 1024 * 1024;
const STRIDE = 16 + MiB;

type Outcome = { ok: true; keys: number } | { ok: false; message: string };

describe('image load: native reader vs JS reader', function () {
  this.timeout(300000);
  let dir: string;
  let good: Buffer;
  const model = new Map<string, Buffer>();
  const savedEnv = { engine: process.env.POOLKV_LOAD_ENGINE, threads: process.env.POOLKV_LOAD_THREADS, direct: process.env.POOLKV_LOAD_DIRECT };

  before(function () {
    if (pageIo() === null) this.skip(); // the addon is built by npm install; without it only the JS reader exists
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'poolkv-image-load-'));
    const pool = Pool.open({ size: 192 * MiB, databases: 2 });
    try {
      const ks = new Keyspace(pool);
      // ~100 data pages: more than one native batch (64 blocks), values of many size classes.
      const r = rng(7);
      for (let i = 0; i < 4000; i++) {
        const value = pattern(i, 16 + Math.floor(r() * 40000));
        const key = `key:${i}`;
        ks.db(i % 2).setString(Buffer.from(key), value, 0);
        model.set(`${i % 2}/${key}`, value);
      }
      ConsistentCut.open(pool, new FileSink({ dir, filename: 'dump.pool', sync: true })).runSync();
    } finally {
      pool.close();
    }
    good = fs.readFileSync(path.join(dir, 'dump.pool'));
    assert.ok(good.length > 80 * STRIDE, `image of ${good.length} bytes has more than one batch of blocks`);
  });

  after(() => {
    process.env.POOLKV_LOAD_ENGINE = savedEnv.engine;
    process.env.POOLKV_LOAD_THREADS = savedEnv.threads;
    if (savedEnv.engine === undefined) delete process.env.POOLKV_LOAD_ENGINE;
    if (savedEnv.threads === undefined) delete process.env.POOLKV_LOAD_THREADS;
    if (savedEnv.direct === undefined) delete process.env.POOLKV_LOAD_DIRECT;
    else process.env.POOLKV_LOAD_DIRECT = savedEnv.direct;
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  });

  /** native: O_DIRECT reads into aligned buffers; native-buffered: reads straight into the pages; js: one block at a time. */
  async function load(bytes: Buffer, engine: 'native' | 'native-buffered' | 'js', threads: number): Promise<Outcome> {
    const file = path.join(dir, `try-${engine}.pool`);
    fs.writeFileSync(file, bytes);
    process.env.POOLKV_LOAD_ENGINE = engine === 'js' ? 'js' : 'native';
    process.env.POOLKV_LOAD_DIRECT = engine === 'native' ? '1' : '0';
    process.env.POOLKV_LOAD_THREADS = String(threads);
    try {
      const loaded = await loadImageFile(file, { poolSize: 192 * MiB, databases: 2 });
      try {
        const ks = new Keyspace(loaded.pool);
        let keys = 0;
        for (let db = 0; db < 2; db++) {
          ks.db(db).forEachLive((e) => {
            const key = `${db}/${ks.db(db).keyOf(e).toString('latin1')}`;
            const expected = model.get(key);
            assert.ok(expected !== undefined, `unexpected key ${key}`);
            assert.ok(ks.db(db).readString(e).equals(expected), `value of ${key}`);
            keys++;
          });
        }
        return { ok: true, keys };
      } finally {
        loaded.mapping.close();
      }
    } catch (err) {
      if (err instanceof assert.AssertionError) throw err;
      // PoolFormatError: a damaged header that describes a pool these options cannot hold.
      assert.ok(err instanceof ImageError || err instanceof PoolFormatError, `${engine}: ${String(err)}`);
      return { ok: false, message: (err as Error).message };
    } finally {
      fs.rmSync(file, { force: true });
    }
  }

  async function same(bytes: Buffer, threads: number, what: string): Promise<Outcome> {
    const native = await load(bytes, 'native', threads);
    const buffered = await load(bytes, 'native-buffered', threads);
    const js = await load(bytes, 'js', 1);
    assert.deepEqual(native, js, `${what} (native O_DIRECT reader on ${threads} threads vs JS reader)`);
    assert.deepEqual(buffered, js, `${what} (native buffered reader on ${threads} threads vs JS reader)`);
    return native;
  }

  it('loads the good image on 1, 2 and 4 threads, every key and value as saved', async () => {
    for (const threads of [1, 2, 4]) {
      assert.deepEqual(await same(good, threads, 'good image'), { ok: true, keys: model.size });
    }
  });

  it('names the same problem for damaged blocks, headers, truncations and trailers', async () => {
    const blocks = (good.length - 128 - 24) / STRIDE;
    const cases: Array<[string, Buffer, RegExp]> = [];
    const flip = (at: number, bit = 0x10): Buffer => {
      const b = Buffer.from(good);
      b[at] = b[at]! ^ bit;
      return b;
    };
    const payload = (block: number, offset: number) => 128 + block * STRIDE + 16 + offset;
    const header = (block: number, field: number) => 128 + block * STRIDE + field;
    cases.push(['payload of a data block in the second batch', flip(payload(70, 777)), /^block 70 \(page \d+\): checksum mismatch/]);
    cases.push(['payload of the meta page', flip(payload(0, 5)), /^block 0 \(page 0\): checksum mismatch/]);
    cases.push(['last byte of the last block', flip(payload(blocks - 1, MiB - 1)), /checksum mismatch/]);
    cases.push(['block tag', flip(header(40, 0)), /^block 40 \(at byte \d+\): bad block tag/]);
    cases.push(['page index out of range', (() => { const b = Buffer.from(good); b.writeUInt32LE(0xfffffff0, header(30, 4)); return b; })(),
      /^block 30 \(page 4294967280, at byte \d+\): page index out of order or out of range/]);
    cases.push(['page index going backwards', (() => { const b = Buffer.from(good); b.writeUInt32LE(1, header(65, 4)); return b; })(),
      /^block 65 \(page 1, at byte \d+\): page index out of order/]);
    cases.push(['block length', (() => { const b = Buffer.from(good); b.writeUInt32LE(4096, header(3, 8)); return b; })(),
      /^block 3 \(page \d+, at byte \d+\): length 4096 is not the page size/]);
    cases.push(['stored CRC', flip(header(50, 12)), /^block 50 \(page \d+\): checksum mismatch/]);
    cases.push(['cut inside a payload', good.subarray(0, payload(66, 1000)), /^truncated at byte \d+ \(inside block 66 \(page \d+, at byte \d+\); file is \d+ bytes\)$/]);
    cases.push(['cut inside a block header', good.subarray(0, header(20, 7)), /^truncated at byte \d+ \(inside the header of block 20; file is/]);
    cases.push(['cut at a block boundary', good.subarray(0, header(12, 0)), /^truncated at byte \d+ \(inside the header of block 12;/]);
    cases.push(['cut before the trailer', good.subarray(0, good.length - 24), /^truncated at byte \d+ \(inside the trailer/]);
    cases.push(['trailer checksum', flip(good.length - 1, 1), /^image checksum mismatch/]);
    cases.push(['a byte after the trailer', Buffer.concat([good, Buffer.from('x')]), /^1 unexpected bytes after the trailer/]);
    cases.push(['two blocks swapped', (() => {
      const b = Buffer.from(good);
      const a = Buffer.from(good.subarray(header(10, 0), header(11, 0)));
      good.copy(b, header(10, 0), header(11, 0), header(12, 0));
      a.copy(b, header(11, 0));
      return b;
    })(), /^block 11 \(page \d+, at byte \d+\): page index out of order/]);
    let threads = 1;
    for (const [what, bytes, expected] of cases) {
      const outcome = await same(bytes, threads, what);
      assert.ok(!outcome.ok, `${what}: loaded`);
      assert.match(outcome.message, expected, what);
      threads = threads === 4 ? 1 : threads * 2;
    }
  });

  it('agrees with the JS reader on randomly damaged images (flips, cuts, stray bytes)', async () => {
    const r = rng(2026);
    for (let round = 0; round < 24; round++) {
      let bytes: Buffer;
      let what: string;
      const kind = Math.floor(r() * 3);
      if (kind === 0) {
        bytes = Buffer.from(good);
        const flips = 1 + Math.floor(r() * 3);
        const at: number[] = [];
        for (let i = 0; i < flips; i++) {
          // Half of them in block headers, where the two readers take different paths.
          const p = r() < 0.5 ? 128 + Math.floor(r() * ((good.length - 152) / STRIDE)) * STRIDE + Math.floor(r() * 16)
            : Math.floor(r() * good.length);
          bytes[p] = bytes[p]! ^ (1 << Math.floor(r() * 8));
          at.push(p);
        }
        what = `bits flipped at ${at.join(', ')}`;
      } else if (kind === 1) {
        const len = Math.floor(r() * good.length);
        bytes = good.subarray(0, len);
        what = `cut to ${len} bytes`;
      } else {
        const p = Math.floor(r() * good.length);
        bytes = Buffer.concat([good.subarray(0, p), pattern(round, 1 + Math.floor(r() * 40)), good.subarray(p)]);
        what = `bytes inserted at ${p}`;
      }
      const outcome = await same(bytes, 1 + (round % 4), what);
      assert.ok(!outcome.ok, `${what}: a damaged image loaded`);
    }
  });
});

describe('populatePages (native/image_load.cc)', () => {
  it('faults a mapping in on several threads without touching its contents', async function () {
    const io = pageIo();
    if (io === null) this.skip();
    const rssShmem = (): number => Number(/RssShmem:\s+(\d+) kB/.exec(fs.readFileSync('/proc/self/status', 'utf8'))![1]) * 1024;
    const mapping = SharedMapping.open({ size: 96 * MiB });
    try {
      const view = mapping.views[0]!;
      const marks = [0, 5 * MiB + 3, 96 * MiB - 1];
      for (const at of marks) view[at] = 0x5a;
      const before = rssShmem();
      assert.equal(await io!.populatePages(mapping.views, 2), true);
      const grown = rssShmem() - before;
      assert.ok(grown >= 90 * MiB, `RssShmem grew by ${grown} bytes`);
      for (const at of marks) assert.equal(view[at], 0x5a, `byte ${at} kept`);
      assert.equal(view[MiB], 0);
      assert.throws(() => io!.populatePages([mapping.views[0]!.subarray(1)], 2), /page-aligned/);
    } finally {
      mapping.close();
    }
  });
});
