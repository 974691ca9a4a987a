// Eviction under maxmemory with Redis's policy names and its approximation:
// sample a few keys per database (maxmemory-samples), keep the best
// candidates in a small pool across rounds, evict the best, repeat until
// used memory is back under the limit. Nothing is tracked per access beyond
// the entry's own LRU/LFU word, so reads stay cheap.
import type { Pool } from '../pool/pool';
import type { Database, Keyspace } from './keyspace';
import { Lookup } from './keyspace';
import { SlabMover } from './slab-mover';

export const EVICTION_POLICIES = [
  'noeviction', 'allkeys-lru', 'allkeys-lfu', 'allkeys-random',
  'volatile-lru', 'volatile-lfu', 'volatile-random', 'volatile-ttl',
] as const;
export type EvictionPolicy = (typeof EVICTION_POLICIES)[number];

const CANDIDATE_POOL_SIZE = 16; // EVPOOL_SIZE
/** Evict while free pool pages are below this, even under maxmemory (the pool itself is the hard limit). */
const RESERVE_BYTES = 2 * 1024 * 1024;

interface Candidate {
  db: number;
  key: Buffer;
  score: number; // higher = better to evict
}

export class Evictor {
  policy: EvictionPolicy = 'noeviction';
  samples = 5;
  private readonly candidates: Candidate[] = [];
  readonly slabMover: SlabMover;

  constructor(private readonly keyspace: Keyspace, private readonly pool: Pool) {
    this.slabMover = new SlabMover(keyspace, pool);
  }

  /**
   * A write found no free page although memory is under the limit (the pages belong to other size
   * classes): with maxmemory and an eviction policy, empty up to `pages` slab pages of other classes
   * (memcached's page mover). False when none could be emptied: the write gets the OOM error.
   */
  reclaimPages(pages: number): boolean {
    if (this.pool.maxmemory === 0 || this.policy === 'noeviction') return false;
    let reclaimed = 0;
    const db0 = this.keyspace.db(0); // scores read only the entry (idle time, frequency, TTL)
    const score = this.policy.endsWith('-random') ? () => Math.random() : (e: number) => this.score(db0, e);
    while (reclaimed < pages && this.slabMover.reclaimPage(this.volatileOnly(), score) !== null) reclaimed++;
    return reclaimed > 0;
  }

  private limit(): number {
    const poolLimit = this.pool.size - RESERVE_BYTES;
    return this.pool.maxmemory > 0 ? Math.min(this.pool.maxmemory, poolLimit) : 0;
  }

  /** True when a denyoom command may run: memory is (or has been brought) under the limit. */
  freeMemoryIfNeeded(): boolean {
    const limit = this.limit();
    if (limit === 0 || this.pool.usedMemory() <= limit) return true;
    if (this.policy === 'noeviction') return false;
    // Bound one call's work so a huge overshoot does not stall the event loop.
    for (let evicted = 0; evicted < 10000 && this.pool.usedMemory() > limit; evicted++) {
      if (!this.evictOne()) return false;
    }
    return this.pool.usedMemory() <= limit;
  }

  private volatileOnly(): boolean {
    return this.policy.startsWith('volatile-');
  }

  private evictOne(): boolean {
    if (this.policy === 'allkeys-random' || this.policy === 'volatile-random') return this.evictRandom();
    for (let round = 0; round < 16; round++) {
      this.populate();
      while (this.candidates.length > 0) {
        const best = this.candidates.pop()!;
        const db = this.keyspace.db(best.db);
        const e = db.lookup(best.key, Lookup.NoTouch);
        if (e === 0) continue; // deleted since it was sampled
        db.remove(e);
        this.keyspace.stats.evictedKeys++;
        return true;
      }
    }
    return false;
  }

  private evictRandom(): boolean {
    const volatile = this.volatileOnly();
    for (const db of this.keyspace.dbs) {
      if ((volatile ? db.expiresCount() : db.size()) === 0) continue;
      for (let tries = 0; tries < 100; tries++) {
        const e = db.randomEntry();
        if (e === 0) break;
        if (volatile && db.expireAt(e) === 0) continue;
        db.remove(e);
        this.keyspace.stats.evictedKeys++;
        return true;
      }
    }
    return false;
  }

  /** evictionPoolPopulate: sample each database and merge the best into the candidate pool. */
  private populate(): void {
    const volatile = this.volatileOnly();
    for (const db of this.keyspace.dbs) {
      if ((volatile ? db.expiresCount() : db.size()) === 0) continue;
      for (let s = 0; s < this.samples; s++) {
        const e = db.dict.randomEntry();
        if (e === 0) break;
        if (volatile && db.expireAt(e) === 0) continue;
        this.offer(db, e);
      }
    }
  }

  private score(db: Database, e: number): number {
    switch (this.policy) {
      case 'allkeys-lfu':
      case 'volatile-lfu':
        return 255 - db.lfuFrequency(e);
      case 'volatile-ttl':
        return Number.MAX_SAFE_INTEGER - db.expireAt(e);
      default:
        return db.idleSeconds(e);
    }
  }

  private offer(db: Database, e: number): void {
    const score = this.score(db, e);
    const pool = this.candidates; // kept sorted ascending by score: the best is last
    if (pool.length >= CANDIDATE_POOL_SIZE && score <= pool[0]!.score) return;
    const key = db.keyOf(e);
    if (pool.some((c) => c.db === db.index && c.key.equals(key))) return;
    let at = pool.findIndex((c) => c.score > score);
    if (at === -1) at = pool.length;
    pool.splice(at, 0, { db: db.index, key, score });
    if (pool.length > CANDIDATE_POOL_SIZE) pool.shift();
  }
}
