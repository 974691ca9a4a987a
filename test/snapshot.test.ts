// Fork-less snapshots: the consistent cut (model test against a JS copy of the
// dataset at the cut), the image format's validation, and the server surface
// (SAVE / BGSAVE / LASTSAVE, save rules, SHUTDOWN, loading at start-up,
// kill -9 at random moments) against the built poolkv-server.
import { strict as assert } from 'assert';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { Pool } from '../src/pool/pool';
import { ConsistentCut } from '../src/snapshot/cut';
import { ImageError, readImageFile } from '../src/snapshot/image';
import { loadImage } from '../src/snapshot/load';
import { PoolDict } from '../src/store/dict';
import { Keyspace } from '../src/store/keyspace';
import { FileSink } from '../src/transport/file';
import { encodeCommand, rawCommand, startPoolkv, startRedis, type RedisProcess } from './helpers/processes';
import { pattern, rng } from './helpers/random';
import { assertKeyspaceEquals, cloneModel, type Model, randomWriter } from './helpers/snapshot-model';

const MiB = 1024 * 1024;

function tempDir(): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'poolkv-snap-'));
  after(() => fs.rmSync(dir, { recursive: true, force: true }));
  return dir;
}

async function cmd(port: number, ...args: string[]): Promise<string> {
  return (await rawCommand(port, args, { timeoutMs: 20000 })).toString('latin1');
}

async function waitFor(what: string, check: () => boolean | Promise<boolean>, timeoutMs = 20000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

const immediate = (): Promise<void> => new Promise((r) => setImmediate(r));

describe('snapshot: consistent cut (in-process model)', function () {
  this.timeout(120000);

  for (const seed of [1, 2, 3]) {
    it(`random writes interleaved with the worker's slices; the image is the dataset at the cut (seed ${seed})`, async () => {
      const dir = tempDir();
      const pool = Pool.open({ size: 160 * MiB, databases: 2 });
      const ks = new Keyspace(pool);
      const model: Model = [new Map(), new Map()];
      const randomWrite = randomWriter(ks, model, seed);
      try {
        for (let i = 0; i < 6000; i++) randomWrite();
        const sink = new FileSink({ dir, filename: 'dump.pool', sync: false });
        const cut = ConsistentCut.open(pool, sink, { sliceMs: 0.2 });
        const atCut = cloneModel(model);
        assert.equal(PoolDict.canResize, false, 'resizing is discouraged while the cut is open');
        assert.ok(cut.dataPages > 5, `the cut spans several pages (${cut.dataPages})`);
        let done = false;
        let failure: unknown = null;
        const worker = cut.run().then(() => { done = true; }, (err: unknown) => { failure = err; done = true; });
        let turns = 0;
        while (!done) {
          for (let i = 0; i < 20; i++) randomWrite();
          turns++;
          await immediate();
        }
        await worker;
        if (failure) throw failure;
        assert.ok(turns > 3, `writes ran between the worker's slices (${turns} turns)`);
        assert.ok(cut.preimagesTaken > 0, 'some pages were written during the save');
        assert.equal(pool.mem.barrier, null, 'the barrier is removed when the cut is complete');
        assert.equal(PoolDict.canResize, true);
        assert.equal(cut.bytesDone, cut.bytesTotal);
        assert.equal(fs.statSync(path.join(dir, 'dump.pool')).size, cut.bytesTotal);
        assert.ok(cut.longestSliceMs < 20, `longest worker slice ${cut.longestSliceMs.toFixed(3)} ms`);

        const loaded = loadImage(path.join(dir, 'dump.pool'), { poolSize: 160 * MiB, databases: 2 });
        try {
          assertKeyspaceEquals(new Keyspace(loaded.pool), atCut, 'loaded image');
        } finally {
          loaded.mapping.close();
        }
        // The live pool kept every write made during the save.
        assertKeyspaceEquals(ks, model, 'live pool');
      } finally {
        pool.close();
      }
    });
  }

  it('SAVE-style synchronous cut, abort leaves the previous image, a second cut is refused while one runs', async () => {
    const dir = tempDir();
    const pool = Pool.open({ size: 32 * MiB, databases: 1 });
    try {
      const ks = new Keyspace(pool);
      ks.db(0).setString(Buffer.from('a'), Buffer.from('1'), 0);
      ConsistentCut.open(pool, new FileSink({ dir, filename: 'dump.pool', sync: true })).runSync();
      const first = fs.readFileSync(path.join(dir, 'dump.pool'));
      ks.db(0).setString(Buffer.from('b'), pattern(9, 3 * MiB), 0);
      const cut = ConsistentCut.open(pool, new FileSink({ dir, filename: 'dump.pool', sync: false }));
      assert.throws(() => ConsistentCut.open(pool, new FileSink({ dir, filename: 'x.pool', sync: true })), /already in progress/);
      const running = cut.run();
      cut.abort('test abort');
      await assert.rejects(running, /test abort/);
      assert.equal(pool.mem.barrier, null);
      assert.ok(fs.readFileSync(path.join(dir, 'dump.pool')).equals(first), 'the previous image is untouched');
      assert.deepEqual(fs.readdirSync(dir), ['dump.pool'], 'the temp file is removed');
    } finally {
      pool.close();
    }
  });

  it('the cron does not rehash while a cut runs (no pre-images for pages a rehash would touch), and resumes after', async () => {
    const dir = tempDir();
    const pool = Pool.open({ size: 64 * MiB, databases: 1 });
    try {
      const ks = new Keyspace(pool);
      const dict = ks.db(0).dict;
      // Stop right after a resize, with the rehash of a big table under way.
      let i = 0;
      do {
        ks.db(0).setString(Buffer.from(`key:${i}`), pattern(i, 100), 0);
        i++;
      } while (!dict.isRehashing() || i < 10000);
      const cut = ConsistentCut.open(pool, new FileSink({ dir, filename: 'dump.pool', sync: false }));
      const running = cut.run();
      ks.rehashCron(50);
      assert.ok(dict.isRehashing(), 'the cron left the rehash alone during the cut');
      assert.equal(cut.preimagesTaken, 0, 'no page was written by the cron');
      await running;
      for (let n = 0; n < 100 && dict.isRehashing(); n++) ks.rehashCron(50);
      assert.ok(!dict.isRehashing(), 'the cron finishes the rehash once the cut is over');
    } finally {
      pool.close();
    }
  });
});

describe('snapshot: image validation', function () {
  this.timeout(60000);
  let dir: string;
  let good: Buffer;

  before(() => {
    dir = tempDir();
    const pool = Pool.open({ size: 16 * MiB, databases: 1 });
    try {
      const ks = new Keyspace(pool);
      for (let i = 0; i < 100; i++) ks.db(0).setString(Buffer.from(`k${i}`), pattern(i, 20000), 0);
      ConsistentCut.open(pool, new FileSink({ dir, filename: 'dump.pool', sync: true })).runSync();
    } finally {
      pool.close();
    }
    good = fs.readFileSync(path.join(dir, 'dump.pool'));
  });

  function check(bytes: Buffer): string {
    const file = path.join(dir, 'bad.pool');
    fs.writeFileSync(file, bytes);
    try {
      readImageFile(file, { target: () => Buffer.alloc(MiB) });
    } catch (err) {
      assert.ok(err instanceof ImageError, String(err));
      return err.message;
    }
    return 'ok';
  }

  it('accepts the good image and names the block, page and problem of a bad one', () => {
    assert.equal(check(good), 'ok');
    const flipped = Buffer.from(good);
    const at = 128 + (16 + MiB) + 16 + 12345; // inside block 1's payload
    flipped[at] = flipped[at]! ^ 0x40;
    assert.match(check(flipped), /^block 1 \(page 1\): checksum mismatch \(stored 0x[0-9a-f]{8}, computed 0x[0-9a-f]{8}\)$/);
    assert.match(check(good.subarray(0, good.length - 1000)), /^truncated at byte \d+ \(inside block \d+ \(page \d+, at byte \d+\); file is \d+ bytes\)$/);
    assert.match(check(good.subarray(0, 50)), /^truncated at byte 50 \(inside the header/);
    const version = Buffer.from(good);
    version.writeUInt32LE(9, 8);
    assert.equal(check(version), 'format version 9 not supported (this build reads version 1)');
    const magic = Buffer.from(good);
    magic[0] = 0x51;
    assert.match(check(magic), /^not a poolkv pool image \(bad magic/);
    const trailer = Buffer.from(good);
    trailer[trailer.length - 1] ^= 1;
    assert.match(check(trailer), /^image checksum mismatch/);
    const blockHeader = Buffer.from(good);
    blockHeader[128 + 4] = 0x3; // block 0's page index
    assert.match(check(blockHeader), /^block 0 \(page 3, at byte 128\): page index out of order/);
    assert.match(check(Buffer.concat([good, Buffer.from('x')])), /^1 unexpected bytes after the trailer/);
  });
});

describe('snapshot: poolkv-server end to end', function () {
  this.timeout(180000);
  const servers: RedisProcess[] = [];
  afterEach(async () => {
    for (const s of servers.splice(0)) await s.stop();
  });
  async function start(args: string[]): Promise<RedisProcess> {
    const s = await startPoolkv(args);
    servers.push(s);
    return s;
  }
  async function startFails(args: string[]): Promise<string> {
    try {
      const s = await startPoolkv(args);
      servers.push(s);
    } catch (err) {
      return (err as Error).message;
    }
    throw new Error('poolkv-server started although it should have refused');
  }

  it('point in time: pipelined writes, BGSAVE, more writes; a restart has the first and none of the later', async () => {
    const dir = tempDir();
    const a = await start(['--dir', dir]);
    const before: Buffer[] = [];
    const expected = new Map<string, string>();
    for (let i = 0; i < 2000; i++) {
      const v = i % 100 === 0 ? 'B'.repeat(300000) + i : `value-${i}`;
      before.push(encodeCommand(['SET', `k${i}`, v]));
      expected.set(`k${i}`, v);
    }
    before.push(encodeCommand(['SET', 'counter', '10']), encodeCommand(['SET', 'ttl', 'x']));
    expected.set('counter', '10');
    expected.set('ttl', 'x');
    const later: Buffer[] = [];
    for (let i = 0; i < 1000; i++) later.push(encodeCommand(['SET', `k${i}`, `new-${i}`]));
    for (let i = 1000; i < 1200; i++) later.push(encodeCommand(['DEL', `k${i}`]));
    for (let i = 1200; i < 1400; i++) later.push(encodeCommand(['APPEND', `k${i}`, 'more'.repeat(50)]));
    later.push(encodeCommand(['INCR', 'counter']), encodeCommand(['EXPIRE', 'ttl', '1000']));
    for (let i = 0; i < 500; i++) later.push(encodeCommand(['SET', `after${i}`, 'A'.repeat(i * 100)]));
    // FLUSHDB empties the keyspace through the barrier (FLUSHALL would kill the BGSAVE, as in Redis: next test).
    later.push(encodeCommand(['FLUSHDB']), encodeCommand(['SET', 'afterflush', '1']));
    const all = Buffer.concat([...before, encodeCommand(['BGSAVE']), ...later]);
    const replies = (await rawCommand(a.port, all, { replies: before.length + 1 + later.length, timeoutMs: 30000 })).toString('latin1');
    assert.ok(replies.includes('+Background saving started\r\n'), 'BGSAVE answered at once');
    await waitFor('the background save', () => a.output().includes('Background saving terminated with success'));
    assert.equal(await cmd(a.port, 'DBSIZE'), ':1\r\n');
    await a.stop();

    const b = await start(['--dir', dir]);
    assert.match(b.output(), /Loading the pool image from .*dump\.pool/);
    assert.match(b.output(), /DB loaded from disk: \d+\.\d{3} seconds/);
    assert.equal(await cmd(b.port, 'DBSIZE'), `:${expected.size}\r\n`);
    const keys = [...expected.keys()];
    const mget = (await rawCommand(b.port, ['MGET', ...keys], { timeoutMs: 20000 })).toString('latin1');
    const want = `*${keys.length}\r\n` + keys.map((k) => `$${expected.get(k)!.length}\r\n${expected.get(k)}\r\n`).join('');
    assert.ok(mget === want, 'every key has its value from before BGSAVE');
    assert.equal(await cmd(b.port, 'TTL', 'ttl'), ':-1\r\n');
    assert.equal(await cmd(b.port, 'EXISTS', 'afterflush', 'after1'), ':0\r\n');
  });

  it('FLUSHALL kills a BGSAVE in progress without marking it failed; the previous image stays', async () => {
    const dir = tempDir();
    const a = await start(['--dir', dir]);
    assert.equal(await cmd(a.port, 'SET', 'old', 'image'), '+OK\r\n');
    assert.equal(await cmd(a.port, 'SAVE'), '+OK\r\n');
    const fill: Buffer[] = [];
    for (let i = 0; i < 150; i++) fill.push(encodeCommand(['SET', `big${i}`, 'B'.repeat(300000) + i]));
    await rawCommand(a.port, Buffer.concat(fill), { replies: fill.length, timeoutMs: 30000 });
    const replies = (await rawCommand(a.port, Buffer.concat([encodeCommand(['BGSAVE']), encodeCommand(['FLUSHALL'])]),
      { replies: 2, timeoutMs: 30000 })).toString('latin1');
    assert.equal(replies, '+Background saving started\r\n+OK\r\n');
    await waitFor('the abort', () => a.output().includes('Background saving aborted: FLUSHALL'));
    const info = await cmd(a.port, 'INFO', 'persistence');
    assert.match(info, /rdb_bgsave_in_progress:0\r\n/);
    assert.match(info, /rdb_last_bgsave_status:ok\r\n/);
    assert.deepEqual(fs.readdirSync(dir).filter((f) => f.startsWith('temp-')), [], 'the temp file is removed');
    await rawCommand(a.port, ['SHUTDOWN', 'NOSAVE']).catch(() => Buffer.alloc(0));
    await waitFor('exit', () => a.process.exitCode !== null);
    const b = await start(['--dir', dir]);
    assert.equal(await cmd(b.port, 'DBSIZE'), ':1\r\n');
    assert.equal(await cmd(b.port, 'GET', 'old'), '$5\r\nimage\r\n');
  });

  it('SAVE, LASTSAVE, save rules, SHUTDOWN SAVE / NOSAVE / default with rules', async () => {
    const dir = tempDir();
    const a = await start(['--dir', dir, '--save', '1 1']);
    assert.equal(await cmd(a.port, 'CONFIG', 'GET', 'save'), '*2\r\n$4\r\nsave\r\n$3\r\n1 1\r\n');
    const first = Number((await cmd(a.port, 'LASTSAVE')).slice(1));
    assert.ok(Math.abs(first - Date.now() / 1000) < 5);
    assert.equal(await cmd(a.port, 'SET', 'x', '1'), '+OK\r\n');
    await waitFor('the save rule', () => a.output().includes('1 changes in 1 seconds. Saving...'), 10000);
    await waitFor('the background save', () => a.output().includes('Background saving terminated with success'));
    await waitFor('LASTSAVE to move', async () => Number((await cmd(a.port, 'LASTSAVE')).slice(1)) > first);
    assert.equal(await cmd(a.port, 'SAVE'), '+OK\r\n');
    assert.equal(await cmd(a.port, 'SET', 'y', '2'), '+OK\r\n');
    // Default SHUTDOWN with save rules saves first.
    await rawCommand(a.port, ['SHUTDOWN']).catch(() => Buffer.alloc(0));
    await waitFor('exit', () => a.process.exitCode !== null);
    const b = await start(['--dir', dir]);
    assert.equal(await cmd(b.port, 'MGET', 'x', 'y'), '*2\r\n$1\r\n1\r\n$1\r\n2\r\n');
    assert.equal(await cmd(b.port, 'SET', 'z', '3'), '+OK\r\n');
    await rawCommand(b.port, ['SHUTDOWN', 'NOSAVE']).catch(() => Buffer.alloc(0));
    await waitFor('exit', () => b.process.exitCode !== null);
    const c = await start(['--dir', dir]);
    assert.equal(await cmd(c.port, 'EXISTS', 'z'), ':0\r\n', 'NOSAVE did not save');
    assert.equal(await cmd(c.port, 'SET', 'z', '3'), '+OK\r\n');
    await rawCommand(c.port, ['SHUTDOWN', 'SAVE']).catch(() => Buffer.alloc(0));
    await waitFor('exit', () => c.process.exitCode !== null);
    const d = await start(['--dir', dir]);
    assert.equal(await cmd(d.port, 'GET', 'z'), '$1\r\n3\r\n', 'SHUTDOWN SAVE saved');
  });

  it('a corrupt, truncated or incompatible image stops start-up with the file and the reason', async () => {
    const dir = tempDir();
    const a = await start(['--dir', dir]);
    for (let i = 0; i < 50; i++) await cmd(a.port, 'SET', `k${i}`, 'v'.repeat(50000));
    assert.equal(await cmd(a.port, 'SAVE'), '+OK\r\n');
    await a.stop();
    const file = path.join(dir, 'dump.pool');
    const good = fs.readFileSync(file);
    const flipped = Buffer.from(good);
    flipped[128 + 16 + MiB + 16 + 100] ^= 0xff;
    fs.writeFileSync(file, flipped);
    let message = await startFails(['--dir', dir]);
    assert.match(message, /code 1/);
    assert.ok(message.includes(`Bad pool image ${file}: block 1 (page 1): checksum mismatch`), message);
    fs.writeFileSync(file, good.subarray(0, good.length - 5000));
    message = await startFails(['--dir', dir]);
    assert.match(message, new RegExp(`Bad pool image ${file}: truncated at byte \\d+`));
    const version = Buffer.from(good);
    version.writeUInt32LE(9, 8);
    fs.writeFileSync(file, version);
    message = await startFails(['--dir', dir]);
    assert.ok(message.includes(`Bad pool image ${file}: format version 9 not supported`), message);
    fs.writeFileSync(file, good);
    message = await startFails(['--dir', dir, '--pool-size', '32mb']);
    assert.ok(message.includes('larger than pool-size 33554432'), message);
    const ok = await start(['--dir', dir]);
    assert.equal(await cmd(ok.port, 'DBSIZE'), ':50\r\n');
  });

  it('kill -9 during SAVE or BGSAVE at random moments: the restart loads the previous complete image', async () => {
    const dir = tempDir();
    const r = rng(42);
    let generation = 0;
    const s0 = await start(['--dir', dir, '--pool-size', '128mb']);
    for (let i = 0; i < 40; i++) await cmd(s0.port, 'SET', `big${i}`, String(i).repeat(1 << 20));
    await cmd(s0.port, 'SET', 'gen', '0');
    assert.equal(await cmd(s0.port, 'SAVE'), '+OK\r\n');
    await s0.stop();
    for (let round = 0; round < 6; round++) {
      const s = await start(['--dir', dir, '--pool-size', '128mb']);
      const gen = Number((await cmd(s.port, 'GET', 'gen')).split('\r\n')[1]);
      assert.ok(gen === generation || gen === generation + 1, `round ${round}: generation ${gen} after ${generation}`);
      generation = gen;
      assert.equal(await cmd(s.port, 'DBSIZE'), ':41\r\n');
      assert.equal(await cmd(s.port, 'STRLEN', 'big39'), `:${2 * (1 << 20)}\r\n`);
      await cmd(s.port, 'SET', 'gen', String(generation + 1));
      const socket = rawCommand(s.port, [round % 2 === 0 ? 'BGSAVE' : 'SAVE'], { timeoutMs: 20000 }).catch(() => Buffer.alloc(0));
      await new Promise((res) => setTimeout(res, Math.floor(r() * 60)));
      s.process.kill('SIGKILL');
      await socket;
      await waitFor('the kill', () => s.process.signalCode !== null || s.process.exitCode !== null);
    }
  });

  it('SAVE / BGSAVE / LASTSAVE errors as real Redis', async () => {
    const dir = tempDir();
    const p = await start(['--dir', dir]);
    const redis = await startRedis();
    servers.push(redis);
    const cases: string[][] = [['SAVE', 'x'], ['BGSAVE', 'x'], ['BGSAVE', 'SCHEDULE', 'x'], ['LASTSAVE', 'x'], ['BGSAVE', 'now']];
    for (const c of cases) {
      assert.equal(await cmd(p.port, ...c), await cmd(redis.port, ...c), c.join(' '));
    }
    // Two in one write: the second finds the first still running (in Redis, its child is not reaped yet).
    const pair = Buffer.concat([encodeCommand(['BGSAVE']), encodeCommand(['BGSAVE']), encodeCommand(['SAVE']), encodeCommand(['BGSAVE', 'SCHEDULE'])]);
    const want = '+Background saving started\r\n-ERR Background save already in progress\r\n' +
      '-ERR Background save already in progress\r\n-ERR Background save already in progress\r\n';
    assert.equal((await rawCommand(p.port, pair, { replies: 4 })).toString('latin1'), want);
    assert.equal((await rawCommand(redis.port, pair, { replies: 4 })).toString('latin1'), want);
  });
});
