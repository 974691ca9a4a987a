// memcached's slab page mover, for the moment a write needs a page and the
// pool has none left. Under an eviction policy, used memory can sit under
// maxmemory while every page belongs to a class the workload no longer
// uses (write many small values, evict some, then write large ones: the
// evictions free chunks scattered over the small class's pages, and no
// page drains). memcached moves a page from one class to another by
// emptying it: each live item is copied into a free chunk of its own class
// on another page ("rescued"), and what has nowhere to go is evicted. The
// drained page then returns to the pool's free pages, where any class, or
// a large value, can take it.
//
// A page whose entries can all be rescued is chosen first (the one with
// fewest to copy): nothing is lost. Otherwise a sample of pages is scored
// by the eviction policy through a few of each page's entries, as Redis
// samples keys, and the best page's entries that cannot move are evicted.
// Pages holding a hash table's bucket array are left alone (their owner is
// a dict, not a key). volatile-* policies evict only keys with a TTL; a
// page whose other entries cannot be rescued is not chosen.
import type { Pool } from '../pool/pool';
import { E_HASH } from './dict';
import { F_EXPIRE, KEY_OFFSET, W_KEY_LEN } from './entry';
import type { Database, Keyspace } from './keyspace';

export interface DrainResult {
  /** Entries copied into other pages of their class. */
  rescued: number;
  /** Entries evicted because their class had no free chunk left. */
  evicted: number;
}

/** Pages whose entries are sampled when a page must be emptied by evicting (Redis samples keys likewise). */
const PAGES_SAMPLED = 32;
const ENTRIES_SAMPLED_PER_PAGE = 5;

export class SlabMover {
  /** Pages emptied for another class since start (INFO stats: slabs_moved, as memcached's stats). */
  pagesMoved = 0;
  rescuedEntries = 0;

  constructor(private readonly keyspace: Keyspace, private readonly pool: Pool) {}

  /**
   * Empty one slab page and give it back to the pool. `volatileOnly`: only keys with a TTL may be
   * evicted. `score(entry)`: how good a victim the eviction policy finds an entry (higher is better).
   * Returns what it did, or null when no page could be emptied.
   */
  reclaimPage(volatileOnly: boolean, score: (entry: number) => number = () => 0): DrainResult | null {
    const alloc = this.pool.allocator;
    const tables = this.tableChunkPages();
    const classFree = new Map<number, number>();
    // A page whose entries all fit in free chunks of their class elsewhere costs no eviction: the one
    // with fewest entries to copy. Otherwise pages that need evictions are candidates.
    let rescuable = -1;
    let rescuableUsed = Infinity;
    const candidates: Array<{ page: number; evictions: number; carved: number }> = [];
    alloc.forEachSlabPage((page, cls, used, perPage) => {
      if (tables.has(page) || used === 0) return;
      let free = classFree.get(cls);
      if (free === undefined) {
        free = alloc.freeChunksOf(cls);
        classFree.set(cls, free);
      }
      const evictions = Math.max(0, used - (free - (perPage - used)));
      if (evictions === 0) {
        if (used < rescuableUsed) {
          rescuable = page;
          rescuableUsed = used;
        }
      } else if (rescuable < 0) {
        candidates.push({ page, evictions, carved: alloc.carvedChunksOf(page) });
      }
    });
    if (rescuable >= 0) return this.drain(rescuable, volatileOnly);
    const victim = this.pickByPolicy(candidates, score);
    if (victim === null) return null;
    if (volatileOnly && !this.allVolatile(victim.page, victim.evictions)) return null;
    return this.drain(victim.page, volatileOnly);
  }

  /**
   * Among pages that need evictions, the one whose entries the policy would evict first, as Redis
   * approximates it: a sample of pages, a few of each page's entries scored, the best mean wins.
   */
  private pickByPolicy(
    candidates: Array<{ page: number; evictions: number; carved: number }>,
    score: (entry: number) => number,
  ): { page: number; evictions: number } | null {
    let best: { page: number; evictions: number } | null = null;
    let bestScore = -Infinity;
    const alloc = this.pool.allocator;
    for (let k = 0; k < Math.min(PAGES_SAMPLED, candidates.length); k++) {
      // A partial Fisher-Yates shuffle: PAGES_SAMPLED distinct pages.
      const pick = k + Math.floor(Math.random() * (candidates.length - k));
      const c = candidates[pick]!;
      candidates[pick] = candidates[k]!;
      candidates[k] = c;
      let sum = 0;
      let scored = 0;
      for (let s = 0; s < ENTRIES_SAMPLED_PER_PAGE; s++) {
        const entry = alloc.chunkRef(c.page, Math.floor(Math.random() * c.carved));
        if (this.ownerOf(entry) === null) continue; // a free chunk
        sum += score(entry);
        scored++;
      }
      if (scored === 0) continue;
      const mean = sum / scored;
      if (mean > bestScore || (mean === bestScore && best !== null && c.evictions < best.evictions)) {
        best = c;
        bestScore = mean;
      }
    }
    return best;
  }

  /** Move or evict every entry of `page`; the page is back in the pool when this reports success. */
  private drain(page: number, volatileOnly: boolean): DrainResult | null {
    const alloc = this.pool.allocator;
    const mem = this.pool.mem;
    const result: DrainResult = { rescued: 0, evicted: 0 };
    alloc.beginDrain(page);
    let emptied = false;
    try {
      for (const entry of alloc.usedChunksOf(page)) {
        const db = this.ownerOf(entry);
        if (db === null) continue; // not a key's entry: the page cannot be emptied (checked again below)
        const size = alloc.capacityOf(entry);
        // Only into the class's other pages: taking a free page would just move the page elsewhere.
        const copy = alloc.allocFromClassPages(size);
        if (copy !== 0) {
          // The whole chunk: header, key, value or the head of its page chain, which stays where it is.
          mem.move(copy, 0, entry, 0, size);
          db.dict.replace(entry, copy);
          alloc.free(entry);
          result.rescued++;
        } else if (!volatileOnly || mem.f64(entry, F_EXPIRE) !== 0) {
          db.remove(entry);
          this.keyspace.stats.evictedKeys++;
          result.evicted++;
        }
      }
    } finally {
      emptied = alloc.endDrain();
    }
    this.rescuedEntries += result.rescued;
    if (!emptied) return null;
    this.pagesMoved++;
    return result;
  }

  /** The database whose dict links `entry`, or null when no key's entry is at that ref. */
  private ownerOf(entry: number): Database | null {
    const mem = this.pool.mem;
    const hash = mem.u32(entry, E_HASH);
    const key = mem.peek(entry, KEY_OFFSET, mem.u32(entry, W_KEY_LEN)); // a view of the pool, not a copy
    for (const db of this.keyspace.dbs) {
      if (db.size() !== 0 && db.dict.find(hash, key, KEY_OFFSET) === entry) return db;
    }
    return null;
  }

  /** Pages that hold a hash table's bucket array (a dict's chunk, not an entry). */
  private tableChunkPages(): Set<number> {
    const pages = new Set<number>();
    for (const db of this.keyspace.dbs) for (const ref of db.dict.tableChunks()) pages.add(this.pool.allocator.pageOf(ref));
    return pages;
  }

  /** Are there at least `needed` entries with a TTL on `page` (what a volatile policy may evict)? */
  private allVolatile(page: number, needed: number): boolean {
    let volatile = 0;
    for (const entry of this.pool.allocator.usedChunksOf(page)) if (this.pool.mem.f64(entry, F_EXPIRE) !== 0) volatile++;
    return volatile >= needed;
  }
}
