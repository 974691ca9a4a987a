// The slab page mover (src/store/slab-mover.ts) against a model: keys of
// shifting sizes in several databases, some with TTLs, are written into a
// small pool until it is full; then pages are emptied one at a time. Every
// key the mover did not report evicted must read back with its value and
// TTL, the evicted count must match the keys that are gone, and each
// emptied page must be free for any class (or a large value) to take.
import { strict as assert } from 'assert';
import { PoolFullError } from '../src/pool/errors';
import { PAGE_BYTES } from '../src/pool/memory';
import { Pool } from '../src/pool/pool';
import { Keyspace, Lookup } from '../src/store/keyspace';
import { SlabMover } from '../src/store/slab-mover';
import { pattern, rng } from './helpers/random';

const MiB = 1024 * 1024;

interface ModelValue {
  value: Buffer;
  expireAt: number;
}

/** Every model key must be in the store with its value and TTL, except those the mover evicted. */
function checkAgainstModel(ks: Keyspace, model: Map<string, ModelValue>, evicted: number): number {
  let gone = 0;
  for (const [name, m] of model) {
    const [dbIndex, key] = [Number(name.slice(0, name.indexOf(':'))), name.slice(name.indexOf(':') + 1)];
    const db = ks.db(dbIndex);
    const e = db.lookup(Buffer.from(key), Lookup.NoTouch);
    if (e === 0) {
      gone++;
      model.delete(name);
      continue;
    }
    assert.ok(db.readString(e).equals(m.value), `value of ${name}`);
    assert.equal(db.expireAt(e), m.expireAt, `TTL of ${name}`);
  }
  assert.equal(gone, evicted, 'the keys that are gone are exactly the ones reported evicted');
  let size = 0;
  let expires = 0;
  for (const db of ks.dbs) {
    size += db.size();
    expires += db.expiresCount();
  }
  assert.equal(size, model.size, 'no key appeared or vanished unreported');
  assert.equal(expires, [...model.values()].filter((m) => m.expireAt !== 0).length, 'keys-with-TTL counts');
  return gone;
}

describe('slab page mover (memcached slab_reassign) against a model', function () {
  this.timeout(120000);

  for (const seed of [1, 2, 3, 4]) {
    it(`empties pages of one size class for another, rescuing entries where the class has room (seed ${seed})`, () => {
      const pool = Pool.open({ size: 24 * MiB, databases: 4 });
      try {
        const ks = new Keyspace(pool);
        const mover = new SlabMover(ks, pool);
        const r = rng(seed);
        const model = new Map<string, ModelValue>();
        const far = Date.now() + 3600_000;
        let n = 0;
        const write = (size: number): boolean => {
          const dbIndex = Math.floor(r() * 4);
          const key = `k${n++}`;
          const value = pattern(n, size);
          const expireAt = r() < 0.3 ? far + n : 0;
          try {
            ks.db(dbIndex).setString(Buffer.from(key), value, expireAt);
          } catch (err) {
            assert.ok(err instanceof PoolFullError);
            return false;
          }
          model.set(`${dbIndex}:${key}`, { value, expireAt });
          return true;
        };
        // Small values until the pool is full, then delete a random third (scattered free chunks, no page drains).
        while (write(20 + Math.floor(r() * 150)));
        for (const name of [...model.keys()]) {
          if (r() < 0.33) {
            const [dbIndex, key] = [Number(name.slice(0, name.indexOf(':'))), name.slice(name.indexOf(':') + 1)];
            assert.equal(ks.db(dbIndex).deleteKey(Buffer.from(key)), true);
            model.delete(name);
          }
        }
        assert.equal(pool.allocator.freePages(), 0, 'deleting scattered small keys frees no page');
        assert.equal(write(40_000 + Math.floor(r() * 20_000)), false, 'a large value finds no page');

        // Pages come back one at a time; while the small class has room, nothing is evicted.
        let evicted = 0;
        let rescuedOnly = 0;
        for (let round = 0; round < 12; round++) {
          const freeBefore = pool.allocator.freePages();
          const result = mover.reclaimPage(false);
          assert.ok(result !== null, `round ${round}: a page was emptied`);
          // At least the emptied page (evicting a key whose value is a page chain frees its pages too).
          assert.ok(pool.allocator.freePages() >= freeBefore + 1, 'the emptied page is free');
          if (result.evicted === 0) rescuedOnly++;
          evicted += result.evicted;
          checkAgainstModel(ks, model, result.evicted);
          // Any class can use it now: a large value (a whole page) or chunks of a big class.
          if (round % 2 === 0) assert.equal(write(PAGE_BYTES + Math.floor(r() * 1000)) || write(300_000), true);
          else assert.equal(write(40_000 + Math.floor(r() * 20_000)), true, 'a value of a new class fits');
        }
        assert.ok(rescuedOnly >= 1, 'the first pages are emptied by moving entries, not evicting them');
        assert.ok(mover.pagesMoved === 12 && mover.rescuedEntries > 0);
        // Once nothing can be rescued any more, emptying a page has to evict; the rest still reads back.
        let forced = 0;
        for (let round = 0; round < 200 && forced === 0; round++) {
          const result = mover.reclaimPage(false);
          assert.ok(result !== null, 'a page can always be emptied by evicting');
          evicted += result.evicted;
          forced = result.evicted;
          checkAgainstModel(ks, model, result.evicted);
        }
        assert.ok(forced > 0, 'a packed pool gives up a page by evicting entries');
        assert.ok(evicted > 0);
      } finally {
        pool.close();
      }
    });
  }

  it('volatile-only: keys without a TTL are neither evicted nor lost; a page of them is not emptied', () => {
    const pool = Pool.open({ size: 8 * MiB, databases: 1 });
    try {
      const ks = new Keyspace(pool);
      const mover = new SlabMover(ks, pool);
      const model = new Map<string, ModelValue>();
      for (let i = 0; ; i++) {
        const value = pattern(i, 100);
        try {
          ks.db(0).setString(Buffer.from(`p${i}`), value, 0);
        } catch (err) {
          assert.ok(err instanceof PoolFullError);
          break;
        }
        model.set(`0:p${i}`, { value, expireAt: 0 });
      }
      assert.equal(mover.reclaimPage(true), null, 'nothing volatile to evict and no room to move to');
      checkAgainstModel(ks, model, 0);
      // With eviction of any key allowed, a page comes back.
      const result = mover.reclaimPage(false);
      assert.ok(result !== null && result.evicted > 0);
      checkAgainstModel(ks, model, result.evicted);
    } finally {
      pool.close();
    }
  });
});
