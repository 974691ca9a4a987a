// The consistent cut with its off-thread (native) engine: pages are copied
// and CRC'd on the addon's I/O thread while the event loop keeps writing, so
// a page can be written while its copy is in flight; the cut must then ship
// the pre-image, never the (possibly torn) copy. Model tests: the image must
// equal the dataset at the instant of the cut, whatever was written during
// the save, with the JS engine as the reference; plus abort, staging buffers
// from the sink, progress, stale temp files, and a server end to end with
// many pipelined writes into a few big values during BGSAVE.
import { strict as assert } from 'assert';
import { spawn } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { Pool } from '../src/pool/pool';
import { type CutEngine, type CutProgress, ConsistentCut } from '../src/snapshot/cut';
import type { ImageHeader } from '../src/snapshot/image';
import { loadImage } from '../src/snapshot/load';
import { PoolDict } from '../src/store/dict';
import { Keyspace, Lookup } from '../src/store/keyspace';
import { FileSink, removeStaleTempFiles } from '../src/transport/file';
import { pageIo } from '../src/transport/native';
import type { SnapshotBlock, SnapshotSink } from '../src/transport/sink';
import { encodeCommand, rawCommand, startPoolkv, type RedisProcess } from './helpers/processes';
import { pattern, rng } from './helpers/random';
import { assertKeyspaceEquals, cloneModel, type Model, randomWriter } from './helpers/snapshot-model';

const MiB = 1024 * 1024;
const haveNative = pageIo() !== null;

function tempDir(): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'poolkv-offthread-'));
  after(() => fs.rmSync(dir, { recursive: true, force: true }));
  return dir;
}

const immediate = (): Promise<void> => new Promise((r) => setImmediate(r));

function assertImageEquals(file: string, poolSize: number, databases: number, model: Model, what: string): void {
  const loaded = loadImage(file, { poolSize, databases });
  try {
    assertKeyspaceEquals(new Keyspace(loaded.pool), model, what);
  } finally {
    loaded.mapping.close();
  }
}

/** A sink around FileSink that hands out a few staging buffers, as the RDMA sink will (registered memory). */
class StagingSink implements SnapshotSink {
  readonly description = 'staging test sink';
  readonly buffers: Buffer[];
  private readonly free: Buffer[];
  private readonly lent = new Set<Buffer>();
  acquired = 0;
  shippedFromStaging = 0;
  constructor(private readonly inner: FileSink, count: number) {
    this.buffers = Array.from({ length: count }, () => Buffer.alloc(MiB));
    this.free = [...this.buffers];
  }
  acquireBuffer(): Buffer | null {
    const b = this.free.pop() ?? null;
    if (b !== null) {
      this.lent.add(b);
      this.acquired++;
    }
    return b;
  }
  releaseBuffer(b: Buffer): void {
    assert.ok(this.lent.delete(b), 'released a buffer that was not lent');
    this.free.push(b);
  }
  begin(h: ImageHeader, encoded: Buffer): void | Promise<void> {
    return this.inner.begin(h, encoded);
  }
  write(block: SnapshotBlock): void | Promise<void> {
    if (this.lent.has(block.payload)) this.shippedFromStaging++;
    return this.inner.write(block);
  }
  commit(trailer: Buffer): void | Promise<void> {
    assert.equal(this.lent.size, 0, 'every staging buffer is back before commit');
    return this.inner.commit(trailer);
  }
  /** Buffers still lent when abort() came (must be 0: the cut hands them all back first). */
  lentAtAbort = -1;
  abort(reason: string): void | Promise<void> {
    this.lentAtAbort = this.lent.size;
    return this.inner.abort(reason);
  }
}

describe('snapshot: off-thread cut (native engine) against the dataset at the cut', function () {
  this.timeout(180000);

  before(function () {
    if (!haveNative) this.skip(); // the addon is not built: only the JS engine exists
  });

  const variants: Array<{ engine: CutEngine; inFlight: number; seed: number; staging?: number; syncSink?: boolean }> = [
    { engine: 'native', inFlight: 1, seed: 11 },
    { engine: 'native', inFlight: 2, seed: 12 },
    { engine: 'native', inFlight: 4, seed: 13 },
    { engine: 'native', inFlight: 3, seed: 14, staging: 2 },
    { engine: 'native', inFlight: 2, seed: 15, syncSink: true },
    { engine: 'js', inFlight: 1, seed: 16 },
  ];
  for (const v of variants) {
    const name = `${v.engine} engine, ${v.inFlight} in flight${v.staging ? `, ${v.staging} sink staging buffers` : ''}` +
      `${v.syncSink ? ', synchronous sink' : ''} (seed ${v.seed})`;
    it(`random writes of every kind while pages are copied: ${name}`, async () => {
      const dir = tempDir();
      const pool = Pool.open({ size: 96 * MiB, databases: 2 });
      const ks = new Keyspace(pool);
      const model: Model = [new Map(), new Map()];
      const write = randomWriter(ks, model, v.seed);
      try {
        for (let i = 0; i < 8000; i++) write();
        const file = new FileSink({ dir, filename: 'dump.pool', sync: v.syncSink === true });
        const sink = v.staging ? new StagingSink(file, v.staging) : file;
        const cut = ConsistentCut.open(pool, sink, { engine: v.engine, inFlight: v.inFlight, sliceMs: 0.2 });
        assert.equal(cut.engine, v.engine);
        const atCut = cloneModel(model);
        assert.equal(PoolDict.canResize, false);
        let done = false;
        let failure: unknown = null;
        const worker = cut.run().then(() => { done = true; }, (err: unknown) => { failure = err; done = true; });
        let turns = 0;
        while (!done) {
          for (let i = 0; i < 30; i++) write();
          turns++;
          await immediate();
        }
        await worker;
        if (failure) throw failure;
        assert.ok(turns > 3, `writes ran during the save (${turns} turns)`);
        assert.ok(cut.preimagesTaken > 0, 'some pages were written during the save');
        assert.equal(pool.mem.barrier, null, 'the barrier is gone once every page is in hand');
        assert.equal(PoolDict.canResize, true);
        assert.equal(cut.bytesDone, cut.bytesTotal);
        assert.equal(fs.statSync(path.join(dir, 'dump.pool')).size, cut.bytesTotal);
        if (sink instanceof StagingSink) {
          assert.ok(sink.acquired > 0 && sink.shippedFromStaging > 0, 'blocks shipped from the sink\'s staging buffers');
        }
        assertImageEquals(path.join(dir, 'dump.pool'), 96 * MiB, 2, atCut, 'loaded image');
        assertKeyspaceEquals(ks, model, 'live pool');
      } finally {
        pool.close();
      }
    });
  }

  for (const inFlight of [1, 3]) {
    it(`writes aimed at the very pages being copied: the pre-image ships, never the torn copy (${inFlight} in flight)`, async () => {
      const dir = tempDir();
      const pool = Pool.open({ size: 128 * MiB, databases: 1 });
      const ks = new Keyspace(pool);
      const db = ks.db(0);
      const model: Model = [new Map()];
      const r = rng(100 + inFlight);
      try {
        // Values of 40..400 KiB fill ~60 pages; small ones sit between them.
        for (let i = 0; i < 300; i++) {
          const v = pattern(i, i % 3 === 0 ? 40 * 1024 + Math.floor(r() * 360 * 1024) : Math.floor(r() * 3000));
          db.setString(Buffer.from(`k${i}`), v, 0);
          model[0]!.set(`k${i}`, { value: v, expireAt: 0 });
        }
        // Which pages an in-place write of each value touches: watch the barrier while rewriting the same bytes.
        const keysOfPage = new Map<number, string[]>();
        for (const [key, entry] of model[0]!) {
          const touched = new Set<number>();
          pool.mem.barrier = (page) => touched.add(page);
          db.writeString(db.lookup(Buffer.from(key), Lookup.Write), 0, entry.value);
          pool.mem.barrier = null;
          for (const page of touched) {
            const list = keysOfPage.get(page) ?? [];
            list.push(key);
            keysOfPage.set(page, list);
          }
        }
        const cut = ConsistentCut.open(pool, new FileSink({ dir, filename: 'dump.pool', sync: false }), { engine: 'native', inFlight });
        const atCut = cloneModel(model);
        let done = false;
        let failure: unknown = null;
        const worker = cut.run().then(() => { done = true; }, (err: unknown) => { failure = err; done = true; });
        let op = 0;
        let aimed = 0;
        while (!done) {
          // For ~1 ms, keep overwriting values on the pages whose copy is in flight right now
          // (the I/O thread copies them at the same time), then let the loop turn.
          const until = performance.now() + 1;
          do {
            for (const page of cut.pagesInFlight()) {
              for (const key of keysOfPage.get(page) ?? []) {
                const entry = model[0]!.get(key)!;
                const at = Math.floor(r() * entry.value.length);
                const data = pattern(++op, Math.min(entry.value.length - at, 4096));
                db.writeString(db.lookup(Buffer.from(key), Lookup.Write), at, data);
                data.copy(entry.value, at);
                aimed++;
              }
            }
          } while (performance.now() < until);
          await immediate();
        }
        await worker;
        if (failure) throw failure;
        assert.ok(aimed > 0, 'writes hit pages in flight');
        assert.ok(cut.inFlightWrites > 0, `pages written while their copy was in flight (${cut.inFlightWrites})`);
        assertImageEquals(path.join(dir, 'dump.pool'), 128 * MiB, 1, atCut, 'loaded image');
        assertKeyspaceEquals(ks, model, 'live pool');
      } finally {
        pool.close();
      }
    });
  }

  it('abort mid-save, then unmapping the pool at once: no crash, the reason rejects run(), the temp file goes', async () => {
    const dir = tempDir();
    for (let round = 0; round < 5; round++) {
      const pool = Pool.open({ size: 96 * MiB, databases: 1 });
      const ks = new Keyspace(pool);
      for (let i = 0; i < 40; i++) ks.db(0).setString(Buffer.from(`big${i}`), pattern(i, MiB), 0);
      const sink = new FileSink({ dir, filename: 'dump.pool', sync: false });
      const cut = ConsistentCut.open(pool, sink, { engine: 'native', inFlight: 4 });
      const running = cut.run();
      for (let i = 0; i < round; i++) await immediate();
      cut.abort('test abort');
      pool.close(); // cancel() waited for any copy reading the pool
      await assert.rejects(running, /test abort/);
      assert.deepEqual(fs.readdirSync(dir).filter((f) => f.startsWith('temp-')), [], 'the temp file is removed');
    }
  });

  it('abort with a staging sink: every staging buffer is handed back before the sink is aborted', async () => {
    const dir = tempDir();
    for (let round = 0; round < 4; round++) {
      const pool = Pool.open({ size: 96 * MiB, databases: 1 });
      try {
        const ks = new Keyspace(pool);
        for (let i = 0; i < 40; i++) ks.db(0).setString(Buffer.from(`big${i}`), pattern(i, MiB), 0);
        const sink = new StagingSink(new FileSink({ dir, filename: 'dump.pool', sync: false }), 3);
        const cut = ConsistentCut.open(pool, sink, { engine: 'native', inFlight: 3 });
        const running = cut.run();
        for (let i = 0; i < round * 3; i++) await immediate();
        // Writes now and then, so pre-images are in play too.
        ks.db(0).setString(Buffer.from(`big${round * 7}`), pattern(99, MiB), 0);
        cut.abort('test abort');
        await assert.rejects(running, /test abort/);
        assert.equal(sink.lentAtAbort, 0, 'staging buffers lent when the sink was aborted');
      } finally {
        pool.close();
      }
    }
  });

  it('onProgress: bytesDone grows to bytesTotal; the last call says done', async () => {
    const dir = tempDir();
    const pool = Pool.open({ size: 64 * MiB, databases: 1 });
    try {
      const ks = new Keyspace(pool);
      for (let i = 0; i < 30; i++) ks.db(0).setString(Buffer.from(`k${i}`), pattern(i, MiB), 0);
      const seen: CutProgress[] = [];
      const cut = ConsistentCut.open(pool, new FileSink({ dir, filename: 'dump.pool', sync: false }), {
        progressIntervalMs: 0, onProgress: (p) => { seen.push(p); if (seen.length === 3) throw new Error('ignored'); },
      });
      await cut.run();
      assert.ok(seen.length >= cut.header.blockCount / 2, `${seen.length} progress calls`);
      for (let i = 1; i < seen.length; i++) assert.ok(seen[i]!.bytesDone > seen[i - 1]!.bytesDone);
      const last = seen[seen.length - 1]!;
      assert.equal(last.done, true);
      assert.equal(last.blocksDone, cut.header.blockCount);
      assert.equal(last.bytesTotal, cut.bytesTotal);
      assert.ok(seen.slice(0, -1).every((p) => !p.done));
    } finally {
      pool.close();
    }
  });
});

describe('snapshot: removeStaleTempFiles', () => {
  it('removes temp-<pid>.pool of dead processes and of this pid, keeps live ones and everything else', async () => {
    const dir = tempDir();
    const child = spawn(process.execPath, ['-e', 'setTimeout(() => {}, 60000)'], { stdio: 'ignore' });
    const dead = spawn(process.execPath, ['-e', '0'], { stdio: 'ignore' });
    await new Promise((r) => dead.once('exit', r));
    try {
      const names = [`temp-${dead.pid}.pool`, `temp-${process.pid}.pool`, `temp-${child.pid}.pool`, 'temp-x.pool', 'dump.pool',
        `temp-${dead.pid}.rdb`, `temp-${dead.pid}.pool.bak`];
      for (const n of names) fs.writeFileSync(path.join(dir, n), 'x');
      fs.mkdirSync(path.join(dir, 'temp-1.pool')); // pid 1 is alive anyway; a directory is never removed
      const lines: string[] = [];
      const removed = removeStaleTempFiles(dir, (l) => lines.push(l));
      assert.deepEqual(removed.map((f) => path.basename(f)).sort(), [`temp-${dead.pid}.pool`, `temp-${process.pid}.pool`].sort());
      assert.deepEqual(fs.readdirSync(dir).sort(),
        [`temp-${child.pid}.pool`, 'temp-x.pool', 'dump.pool', `temp-${dead.pid}.rdb`, `temp-${dead.pid}.pool.bak`, 'temp-1.pool'].sort());
      assert.ok(lines.some((l) => l.includes(`left by process ${dead.pid}`)), lines.join('\n'));
      assert.ok(lines.some((l) => l.includes(`process ${child.pid} is alive`)), lines.join('\n'));
      assert.deepEqual(removeStaleTempFiles(path.join(dir, 'missing')), []);
    } finally {
      child.kill('SIGKILL');
    }
  });
});

describe('snapshot: poolkv-server, pipelined writes into a few big values during BGSAVE', function () {
  this.timeout(180000);
  const servers: RedisProcess[] = [];
  afterEach(async () => {
    for (const s of servers.splice(0)) await s.stop();
  });

  it('the image holds the values from just before BGSAVE, byte for byte', async () => {
    const dir = tempDir();
    const a = await startPoolkv(['--dir', dir, '--pool-size', '256mb']);
    servers.push(a);
    const expected = new Map<string, Buffer>();
    // 24 values of 3 MiB (each spans pages) and 3000 small ones.
    for (let i = 0; i < 24; i++) {
      const v = pattern(1000 + i, 3 * MiB);
      expected.set(`big${i}`, v);
      assert.equal((await rawCommand(a.port, encodeCommand(['SET', `big${i}`, v]), { timeoutMs: 20000 })).toString(), '+OK\r\n');
    }
    const smalls: Buffer[] = [];
    for (let i = 0; i < 3000; i++) {
      const v = pattern(i, 100 + (i % 900));
      expected.set(`s${i}`, v);
      smalls.push(encodeCommand(['SET', `s${i}`, v]));
    }
    await rawCommand(a.port, Buffer.concat(smalls), { replies: smalls.length, timeoutMs: 30000 });
    // BGSAVE, then in the same pipeline thousands of SETRANGE / APPEND / INCR into the big values
    // and a few small keys, and more batches until the save is over.
    const r = rng(5);
    const batch = (): Buffer[] => {
      const cmds: Buffer[] = [];
      for (let i = 0; i < 400; i++) {
        const key = r() < 0.9 ? `big${Math.floor(r() * 24)}` : `s${Math.floor(r() * 20)}`;
        const x = r();
        if (x < 0.8) cmds.push(encodeCommand(['SETRANGE', key, String(Math.floor(r() * 3 * MiB)), `w${i}-${r()}`]));
        else if (x < 0.9) cmds.push(encodeCommand(['APPEND', key, 'tail'.repeat(1 + Math.floor(r() * 50))]));
        else cmds.push(encodeCommand(['SET', `new${Math.floor(r() * 100)}`, 'x'.repeat(Math.floor(r() * 5000))]));
      }
      return cmds;
    };
    const first = batch();
    const replies = (await rawCommand(a.port, Buffer.concat([encodeCommand(['BGSAVE']), ...first]), { replies: first.length + 1, timeoutMs: 30000 }))
      .toString('latin1');
    assert.ok(replies.startsWith('+Background saving started\r\n'), replies.slice(0, 100));
    let batches = 1;
    for (;;) {
      const info = (await rawCommand(a.port, ['INFO', 'persistence'], { timeoutMs: 20000 })).toString('latin1');
      if (/rdb_bgsave_in_progress:0/.test(info)) {
        assert.match(info, /rdb_last_bgsave_status:ok/);
        break;
      }
      const more = batch();
      await rawCommand(a.port, Buffer.concat(more), { replies: more.length, timeoutMs: 30000 });
      batches++;
    }
    assert.ok(batches >= 1);
    await a.stop();

    const b = await startPoolkv(['--dir', dir, '--pool-size', '256mb']);
    servers.push(b);
    assert.equal((await rawCommand(b.port, ['DBSIZE'])).toString(), `:${expected.size}\r\n`);
    for (const [key, value] of expected) {
      const got = await rawCommand(b.port, ['GET', key], { timeoutMs: 20000 });
      const header = `$${value.length}\r\n`;
      assert.equal(got.toString('latin1', 0, header.length), header, `length of ${key}`);
      assert.ok(got.subarray(header.length, header.length + value.length).equals(value), `value of ${key} is the one from before BGSAVE`);
    }
  });
});
