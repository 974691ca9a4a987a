// Randomized model tests of the pool's allocator and keyspace against plain JS
// structures, plus the two geometry promises: images are position-independent
// and pools beyond 4 GiB work.
import { strict as assert } from 'assert';
import { readFileSync } from 'fs';
import { CHUNK_MAX } from '../src/pool/allocator';
import { PoolFullError } from '../src/pool/errors';
import { SharedMapping } from '../src/pool/mapping';
import { PAGE_BYTES } from '../src/pool/memory';
import { Pool } from '../src/pool/pool';
import { Keyspace, KEEP_TTL, Lookup } from '../src/store/keyspace';
import { pattern, rng } from './helpers/random';

const MiB = 1024 * 1024;

/** Value sizes skewed to small, with some near chunk boundaries and a few of several MiB. */
function valueSize(r: () => number): number {
  const x = r();
  if (x < 0.6) return Math.floor(r() * 64);
  if (x < 0.85) return Math.floor(r() * 4096);
  if (x < 0.95) return Math.floor(r() * CHUNK_MAX);
  if (x < 0.98) return CHUNK_MAX - 64 + Math.floor(r() * 128);
  return Math.floor(r() * 3 * MiB);
}

describe('pool: slab allocator model', function () {
  this.timeout(120000);

  for (const seed of [1, 2, 3]) {
    it(`random alloc/free against a model keeps contents and accounting (seed ${seed})`, () => {
      const pool = Pool.open({ size: 64 * MiB, databases: 16 });
      try {
        const alloc = pool.allocator;
        const mem = pool.mem;
        const r = rng(seed);
        const live = new Map<number, { size: number; tag: number; page: boolean }>();
        let modelUsed = 0;
        const tagOf = (ref: number) => mem.u32(ref, 1);
        for (let op = 0; op < 20000; op++) {
          if (live.size > 0 && r() < 0.45) {
            const refs = [...live.keys()];
            const ref = refs[Math.floor(r() * refs.length)]!;
            const item = live.get(ref)!;
            assert.equal(tagOf(ref), item.tag, `chunk ${ref} was overwritten`);
            if (item.page) alloc.freePage(ref);
            else alloc.free(ref);
            modelUsed -= item.page ? PAGE_BYTES : alloc.chunkSizeFor(item.size);
            live.delete(ref);
            continue;
          }
          const page = r() < 0.03;
          const size = page ? PAGE_BYTES : 8 + Math.floor(r() ** 3 * (CHUNK_MAX - 8));
          let ref: number;
          try {
            ref = page ? alloc.allocPage() : alloc.alloc(size);
          } catch (err) {
            assert.ok(err instanceof PoolFullError);
            continue;
          }
          assert.ok(!live.has(ref), 'allocator handed out a live chunk twice');
          const tag = (op * 2654435761) >>> 0;
          mem.setU32(ref, 1, tag);
          live.set(ref, { size, tag, page });
          modelUsed += page ? PAGE_BYTES : alloc.chunkSizeFor(size);
          assert.equal(alloc.usedBytes(), modelUsed);
        }
        for (const [ref, item] of live) assert.equal(tagOf(ref), item.tag);
        for (const [ref, item] of live) item.page ? alloc.freePage(ref) : alloc.free(ref);
        assert.equal(alloc.usedBytes(), 0);
        // Every page came back: nothing is stranded in any class.
        assert.equal(alloc.freePages(), alloc.pageCount - alloc.metaPages);
        assert.deepEqual(alloc.classStats(), []);
      } finally {
        pool.close();
      }
    });
  }

  it('memory freed by one size class is reused by another, and a full pool says so', () => {
    const pool = Pool.open({ size: 16 * MiB, databases: 16 });
    try {
      const alloc = pool.allocator;
      const small: number[] = [];
      assert.throws(() => {
        for (;;) small.push(alloc.alloc(100));
      }, PoolFullError);
      assert.throws(() => alloc.alloc(5000), PoolFullError);
      for (const ref of small) alloc.free(ref);
      const big: number[] = [];
      assert.throws(() => {
        for (;;) big.push(alloc.alloc(5000));
      }, PoolFullError);
      // All data pages went to the 5000-byte class.
      assert.equal(alloc.classStats().length, 1);
      assert.ok(big.length * 5000 > 14 * MiB);
    } finally {
      pool.close();
    }
  });
});

interface ModelEntry {
  value: Buffer;
  expireAt: number;
}

describe('pool: keyspace model (against a Map)', function () {
  this.timeout(300000);

  for (const seed of [11, 12]) {
    it(`random SET/APPEND/SETRANGE/DEL/EXPIRE across rehashes matches a Map (seed ${seed})`, () => {
      const pool = Pool.open({ size: 256 * MiB, databases: 4 });
      try {
        const ks = new Keyspace(pool);
        const r = rng(seed);
        const models = [new Map<string, ModelEntry>(), new Map<string, ModelEntry>()];
        const keyOf = (n: number) => Buffer.from(`key:${n}`);
        const far = Date.now() + 3600_000;
        let fullRefusals = 0;
        for (let op = 0; op < 30000; op++) {
          const dbIndex = r() < 0.8 ? 0 : 1;
          const db = ks.db(dbIndex);
          const model = models[dbIndex]!;
          // Phases grow then shrink the key space so tables rehash both ways.
          const phase = Math.floor(op / 5000) % 2;
          const keySpace = phase === 0 ? 4000 : 300;
          const k = keyOf(Math.floor(r() * keySpace));
          const ks1 = k.toString();
          const x = r();
          try {
            step();
          } catch (err) {
            // A full pool refuses the write and must leave the key as it was (checked by later reads).
            if (!(err instanceof PoolFullError)) throw err;
            fullRefusals++;
          }
          if (op % 97 === 0) ks.rehashCron(1);
          function step(): void {
          if (x < 0.35) {
            const v = pattern(op, valueSize(r));
            const ttl = r() < 0.2 ? far + Math.floor(r() * 1000) : 0;
            db.setString(k, v, ttl);
            model.set(ks1, { value: v, expireAt: ttl });
          } else if (x < 0.45) {
            const e = db.lookup(k, Lookup.Write);
            const m = model.get(ks1);
            assert.equal(e !== 0, m !== undefined);
            if (e !== 0 && m) {
              const add = pattern(op, Math.floor(r() * 2000));
              const oldLen = db.stringLength(e);
              const e2 = db.resizeString(e, oldLen + add.length);
              db.writeString(e2, oldLen, add);
              m.value = Buffer.concat([m.value, add]);
            }
          } else if (x < 0.5) {
            const e = db.lookup(k, Lookup.Write);
            const m = model.get(ks1);
            if (e !== 0 && m) {
              const offset = Math.floor(r() * (m.value.length + 100));
              const data = pattern(op, Math.floor(r() * 300));
              const newLen = Math.max(m.value.length, offset + data.length);
              const e2 = newLen > db.stringLength(e) ? db.resizeString(e, newLen) : e;
              db.writeString(e2, offset, data);
              const next = Buffer.alloc(newLen);
              m.value.copy(next);
              data.copy(next, offset);
              m.value = next;
            }
          } else if (x < 0.7) {
            assert.equal(db.deleteKey(k), model.delete(ks1));
          } else if (x < 0.75) {
            const e = db.lookup(k, Lookup.Write);
            const m = model.get(ks1);
            if (e !== 0 && m) {
              const at = r() < 0.5 ? 0 : far + 5;
              db.setExpireAt(e, at);
              m.expireAt = at;
            }
          } else if (x < 0.78) {
            const e = db.lookup(k, Lookup.Write);
            const m = model.get(ks1);
            if (e !== 0 && m) {
              const v = Buffer.from(String(Math.floor(r() * 1e15)));
              db.replaceString(e, v);
              m.value = v;
            }
          } else if (x < 0.8) {
            const v = pattern(op, valueSize(r));
            db.setString(k, v, KEEP_TTL);
            const old = model.get(ks1);
            model.set(ks1, { value: v, expireAt: old ? old.expireAt : 0 });
          } else {
            const e = db.lookup(k, Lookup.Read);
            const m = model.get(ks1);
            assert.equal(e !== 0, m !== undefined, `presence of ${ks1}`);
            if (e !== 0 && m) {
              assert.ok(db.readString(e).equals(m.value), `value of ${ks1}`);
              assert.equal(db.expireAt(e), m.expireAt);
            }
          }
          }
        }
        assert.ok(fullRefusals > 0, 'the run reached a full pool at least once');
        for (let i = 0; i < 2; i++) {
          const db = ks.db(i);
          const model = models[i]!;
          assert.equal(db.size(), model.size);
          assert.equal(db.expiresCount(), [...model.values()].filter((m) => m.expireAt !== 0).length);
          const seen = new Set<string>();
          db.forEachLive((e) => seen.add(db.keyOf(e).toString()));
          assert.deepEqual([...seen].sort(), [...model.keys()].sort());
          for (const [key, m] of model) {
            const e = db.lookup(Buffer.from(key), Lookup.NoTouch);
            assert.ok(db.readString(e).equals(m.value));
          }
          const stats = db.dict.stats();
          assert.ok(stats.maxChain < 16, `chains stay short (max ${stats.maxChain})`);
        }
        // Freeing everything returns all memory to the allocator.
        for (let i = 0; i < 2; i++) ks.db(i).flush();
        assert.equal(pool.allocator.usedBytes(), 0);
      } finally {
        pool.close();
      }
    });
  }

  it('grows into page-segmented tables and shrinks back incrementally', () => {
    const pool = Pool.open({ size: 512 * MiB, databases: 1 });
    try {
      const ks = new Keyspace(pool);
      const db = ks.db(0);
      const n = 300_000;
      for (let i = 0; i < n; i++) db.setString(Buffer.from(`k:${i}`), Buffer.from(String(i)), 0);
      while (db.dict.isRehashing()) ks.rehashCron(5);
      assert.ok(db.dict.buckets() >= 2 ** 18, `table is segmented (${db.dict.buckets()} buckets)`);
      for (let i = 0; i < n; i += 7) assert.equal(db.readString(db.lookup(Buffer.from(`k:${i}`))).toString(), String(i));
      for (let i = 0; i < n; i++) if (i % 100 !== 0) assert.ok(db.deleteKey(Buffer.from(`k:${i}`)));
      for (let round = 0; round < 200 && db.dict.buckets() > 4096; round++) ks.rehashCron(5);
      assert.ok(db.dict.buckets() <= 4096, `table shrank (${db.dict.buckets()} buckets)`);
      assert.equal(db.size(), n / 100);
      for (let i = 0; i < n; i += 100) assert.equal(db.readString(db.lookup(Buffer.from(`k:${i}`))).toString(), String(i));
    } finally {
      pool.close();
    }
  });

  it('a write refused for lack of memory leaks nothing (chain growth, new keys, table growth)', () => {
    const pool = Pool.open({ size: 16 * MiB, databases: 1 });
    try {
      const ks = new Keyspace(pool);
      const db = ks.db(0);
      const big = db.setString(Buffer.from('big'), pattern(1, 2 * MiB), 0);
      const used = pool.allocator.usedBytes();
      const free = pool.allocator.freePages();
      assert.throws(() => db.resizeString(big, 40 * MiB), PoolFullError);
      assert.equal(pool.allocator.usedBytes(), used, 'failed chain growth gave its pages back');
      assert.equal(pool.allocator.freePages(), free);
      assert.ok(db.readString(db.lookup(Buffer.from('big'))).equals(pattern(1, 2 * MiB)));

      let i = 0;
      assert.throws(() => {
        for (;;) db.setString(Buffer.from(`fill${i++}`), pattern(i, 4000), 0);
      }, PoolFullError);
      for (let k = 0; k < 300; k++) db.deleteKey(Buffer.from(`fill${k}`));
      // Small new keys: some fit, the table may be unable to grow, and the final refusal leaks nothing.
      let n = 0;
      let before = 0;
      assert.throws(() => {
        for (;;) {
          before = pool.allocator.usedBytes();
          db.setString(Buffer.from(`new${n++}`), Buffer.from('v'), 0);
        }
      }, PoolFullError);
      assert.equal(pool.allocator.usedBytes(), before, 'the refused SET left nothing allocated');
      assert.equal(db.size(), i - 1 - 300 + 1 + (n - 1));
    } finally {
      pool.close();
    }
  });

  it('a table that should shrink in a pool with no chunk of the smaller size keeps its size (the cron does not throw)', () => {
    const pool = Pool.open({ size: 8 * MiB, databases: 1 });
    try {
      const ks = new Keyspace(pool);
      const db = ks.db(0);
      for (let i = 0; i < 20_000; i++) db.setString(Buffer.from(`k${i}`), Buffer.from('v'), 0);
      while (db.dict.rehash(1000));
      // 200 keys stay: the shrunk table would be 256 buckets, a size class with no page.
      for (let i = 200; i < 20_000; i++) db.deleteKey(Buffer.from(`k${i}`));
      // The drained pages go to values of whole pages until none is left.
      let n = 0;
      assert.throws(() => {
        for (;;) db.setString(Buffer.from(`page${n++}`), pattern(n, 900_000), 0);
      }, PoolFullError);
      assert.equal(pool.allocator.freePages(), 0);
      const buckets = db.dict.buckets();
      assert.doesNotThrow(() => db.dict.shrinkIfNeeded());
      assert.equal(db.dict.buckets(), buckets, 'no smaller table could be allocated');
      assert.doesNotThrow(() => ks.rehashCron(5));
      assert.equal(db.size(), 200 + n - 1);
    } finally {
      pool.close();
    }
  });

  it('SCAN returns every key present throughout, across growth between calls', () => {
    const pool = Pool.open({ size: 64 * MiB, databases: 1 });
    try {
      const ks = new Keyspace(pool);
      const db = ks.db(0);
      for (let i = 0; i < 1000; i++) db.setString(Buffer.from(`base:${i}`), Buffer.from('v'), 0);
      const seen = new Set<string>();
      let cursor = 0;
      let extra = 0;
      // Like SCAN COUNT 10: several buckets per call, a few inserts between calls.
      do {
        for (let step = 0; step < 10 && (step === 0 || cursor !== 0); step++) {
          cursor = db.scan(cursor, (e) => seen.add(db.keyOf(e).toString()));
        }
        for (let j = 0; j < 3; j++) db.setString(Buffer.from(`extra:${extra++}`), Buffer.from('v'), 0);
      } while (cursor !== 0);
      assert.ok(extra > 100, 'the table grew during the scan');
      for (let i = 0; i < 1000; i++) assert.ok(seen.has(`base:${i}`), `base:${i} missed by SCAN`);
    } finally {
      pool.close();
    }
  });

  it('FLUSHALL returns every page at once and SWAPDB exchanges roots', () => {
    const pool = Pool.open({ size: 64 * MiB, databases: 16 });
    try {
      const ks = new Keyspace(pool);
      ks.db(0).setString(Buffer.from('a'), Buffer.from('0'), 0);
      ks.db(3).setString(Buffer.from('b'), Buffer.alloc(2 * MiB, 1), 0);
      ks.swapDb(0, 3);
      assert.equal(ks.db(0).lookup(Buffer.from('b')) !== 0, true);
      assert.equal(ks.db(3).lookup(Buffer.from('a')) !== 0, true);
      ks.flushAll();
      assert.equal(ks.totalKeys(), 0);
      assert.equal(pool.allocator.usedBytes(), 0);
      ks.db(5).setString(Buffer.from('c'), Buffer.from('1'), 0);
      assert.equal(ks.totalKeys(), 1);
      assert.equal(ks.db(5).readString(ks.db(5).lookup(Buffer.from('c'))).toString(), '1');
    } finally {
      pool.close();
    }
  });

  it('FLUSHALL gives the data pages back to the OS (madvise MADV_REMOVE)', () => {
    const shmemKiB = () => Number(/RssShmem:\s+(\d+)/.exec(readFileSync('/proc/self/status', 'utf8'))![1]);
    const pool = Pool.open({ size: 256 * MiB, databases: 1 });
    try {
      const ks = new Keyspace(pool);
      const before = shmemKiB();
      for (let i = 0; i < 100; i++) ks.db(0).setString(Buffer.from(`big${i}`), pattern(i, MiB), 0);
      const filled = shmemKiB();
      assert.ok(filled - before > 90 * 1024, `the data is resident (${filled - before} KiB)`);
      ks.flushAll();
      assert.ok(filled - shmemKiB() > 90 * 1024, `FLUSHALL released it (${filled - shmemKiB()} KiB)`);
      ks.db(0).setString(Buffer.from('after'), Buffer.from('v'), 0);
      assert.equal(ks.db(0).readString(ks.db(0).lookup(Buffer.from('after'))).toString(), 'v');
    } finally {
      pool.close();
    }
  });
});

describe('pool: geometry', function () {
  this.timeout(300000);

  it('is position-independent: a byte copy at another address reads back every key, value and TTL', () => {
    const size = 128 * MiB;
    const pool = Pool.open({ size, databases: 16 });
    const copy = SharedMapping.open({ size });
    try {
      const ks = new Keyspace(pool);
      const expected = new Map<string, { db: number; value: Buffer; expireAt: number }>();
      for (let i = 0; i < 3000; i++) {
        const db = i % 16;
        const value = pattern(i, i % 50 === 0 ? 700_000 + i : i % 300);
        const expireAt = i % 3 === 0 ? Date.now() + 3_600_000 + i : 0;
        ks.db(db).setString(Buffer.from(`k${i}`), value, expireAt);
        expected.set(`k${i}`, { db, value, expireAt });
      }
      assert.notEqual(copy.address, pool.mapping!.address);
      pool.mem.bytes.forEach((view, i) => view.copy(copy.views[i]!));
      const moved = Pool.attach(copy.views);
      const ks2 = new Keyspace(moved);
      assert.equal(ks2.totalKeys(), expected.size);
      for (const [key, want] of expected) {
        const db = ks2.db(want.db);
        const e = db.lookup(Buffer.from(key), Lookup.NoTouch);
        assert.notEqual(e, 0, key);
        assert.ok(db.readString(e).equals(want.value), `value of ${key}`);
        assert.equal(db.expireAt(e), want.expireAt);
      }
      assert.equal(moved.usedMemory(), pool.usedMemory());
    } finally {
      pool.close();
      copy.close();
    }
  });

  it('works with a 6 GiB pool: objects beyond 4 GiB are written and read back', () => {
    const pool = Pool.open({ size: 6 * 1024 * MiB, databases: 16 });
    try {
      assert.equal(pool.mem.bytes.length, 6);
      const ks = new Keyspace(pool);
      // Claim the first ~5 GiB of pages without touching their memory, so the
      // keyspace's chunks and chains land in the fifth and sixth views.
      const claimed: number[] = [];
      for (let i = 0; i < 5 * 1024; i++) claimed.push(pool.allocator.allocPage());
      const db = ks.db(0);
      const big = pattern(99, 3 * MiB);
      db.setString(Buffer.from('big'), big, 0);
      for (let i = 0; i < 2000; i++) db.setString(Buffer.from(`k${i}`), Buffer.from(`value-${i}`), 0);
      const e = db.lookup(Buffer.from('big'));
      assert.ok(e * 8 > 4 * 1024 * MiB, `entry sits beyond 4 GiB (byte ${e * 8})`);
      assert.ok(db.readString(e).equals(big));
      for (let i = 0; i < 2000; i++) assert.equal(db.readString(db.lookup(Buffer.from(`k${i}`))).toString(), `value-${i}`);
      for (const ref of claimed) pool.allocator.freePage(ref);
      assert.equal(db.size(), 2001);
    } finally {
      pool.close();
    }
  });
});
