// An in-pool chained hash table with incremental rehash, after Redis's dict.c.
// Its root (two tables and the rehash index) sits in the database's root slot
// in the pool header; buckets and entries are pool chunks linked by refs.
//
// A table of up to 2^17 buckets is one chunk. A bigger one is a directory
// chunk of segment refs, each segment a whole 1 MiB page of 2^18 buckets, so
// no table ever needs contiguous memory beyond one page.
//
// Entries are owned by the keyspace; this file only links them. Word 0 of an
// entry is its chain link and word 1 its hash.
import type { SlabAllocator } from '../pool/allocator';
import { PoolFullError } from '../pool/errors';
import type { PoolMemory } from '../pool/memory';

export const E_NEXT = 0;
export const E_HASH = 1;

// db root words
const R_DIR = [0, 3];
const R_LOG2 = [1, 4]; // log2(size) + 1; 0 = no table
const R_USED = [2, 5];
const R_REHASH = 6; // rehash index + 1; 0 = not rehashing
export const DICT_ROOT_WORDS = 7;

const SMALL_MAX_LOG2 = 17;
const SEGMENT_LOG2 = 18;
const SEGMENT_MASK = (1 << SEGMENT_LOG2) - 1;
const MIN_LOG2 = 2; // 4 buckets, as DICT_HT_INITIAL_SIZE
/** Above this load factor a resize happens even while resizing is discouraged (snapshot running). */
const FORCE_RESIZE_RATIO = 5;

export class PoolDict {
  /** Cleared while a snapshot runs so tables are not rewritten wholesale (cf. dict_can_resize). */
  static canResize = true;

  constructor(
    private readonly mem: PoolMemory,
    private readonly alloc: SlabAllocator,
    /** Ref of this dict's root words. */
    readonly root: number,
  ) {}

  // ---- table geometry --------------------------------------------------------
  private log2(t: number): number {
    return this.mem.u32(this.root, R_LOG2[t]!) - 1;
  }
  private sizeOf(t: number): number {
    const l = this.mem.u32(this.root, R_LOG2[t]!);
    return l === 0 ? 0 : 2 ** (l - 1);
  }
  private used(t: number): number {
    return this.mem.u32(this.root, R_USED[t]!);
  }
  private setUsed(t: number, n: number): void {
    this.mem.setU32(this.root, R_USED[t]!, n);
  }

  size(): number {
    return this.used(0) + this.used(1);
  }
  buckets(): number {
    return this.sizeOf(0) + this.sizeOf(1);
  }
  isRehashing(): boolean {
    return this.mem.u32(this.root, R_REHASH) !== 0;
  }

  private getBucket(t: number, idx: number): number {
    const mem = this.mem;
    const dir = mem.u32(this.root, R_DIR[t]!);
    if (mem.u32(this.root, R_LOG2[t]!) - 1 <= SMALL_MAX_LOG2) return mem.u32(dir, idx);
    return mem.u32(mem.u32(dir, idx >>> SEGMENT_LOG2), idx & SEGMENT_MASK);
  }

  private setBucket(t: number, idx: number, ref: number): void {
    const mem = this.mem;
    const dir = mem.u32(this.root, R_DIR[t]!);
    if (mem.u32(this.root, R_LOG2[t]!) - 1 <= SMALL_MAX_LOG2) mem.setU32(dir, idx, ref);
    else mem.setU32(mem.u32(dir, idx >>> SEGMENT_LOG2), idx & SEGMENT_MASK, ref);
  }

  private createTable(t: number, log2: number): void {
    const mem = this.mem;
    let dir: number;
    if (log2 <= SMALL_MAX_LOG2) {
      const bytes = 4 * 2 ** log2;
      dir = this.alloc.alloc(bytes);
      mem.fill(dir, 0, bytes, 0);
    } else {
      const segments = 2 ** (log2 - SEGMENT_LOG2);
      dir = this.alloc.alloc(segments * 4);
      for (let s = 0; s < segments; s++) {
        let seg: number;
        try {
          seg = this.alloc.allocPage();
        } catch (err) {
          for (let k = 0; k < s; k++) this.alloc.freePage(mem.u32(dir, k));
          this.alloc.free(dir);
          throw err;
        }
        mem.fill(seg, 0, 4 << SEGMENT_LOG2, 0);
        mem.setU32(dir, s, seg);
      }
    }
    mem.setU32(this.root, R_DIR[t]!, dir);
    mem.setU32(this.root, R_LOG2[t]!, log2 + 1);
    mem.setU32(this.root, R_USED[t]!, 0);
  }

  /** The chunks this dict's tables own (a small table's buckets, or a large one's segment directory). */
  tableChunks(): number[] {
    const chunks: number[] = [];
    for (let t = 0; t < 2; t++) if (this.mem.u32(this.root, R_LOG2[t]!) !== 0) chunks.push(this.mem.u32(this.root, R_DIR[t]!));
    return chunks;
  }

  private freeTable(t: number): void {
    const mem = this.mem;
    const l = mem.u32(this.root, R_LOG2[t]!);
    if (l === 0) return;
    const dir = mem.u32(this.root, R_DIR[t]!);
    if (l - 1 > SMALL_MAX_LOG2) {
      const segments = 2 ** (l - 1 - SEGMENT_LOG2);
      for (let s = 0; s < segments; s++) this.alloc.freePage(mem.u32(dir, s));
    }
    this.alloc.free(dir);
    mem.setU32(this.root, R_DIR[t]!, 0);
    mem.setU32(this.root, R_LOG2[t]!, 0);
    mem.setU32(this.root, R_USED[t]!, 0);
  }

  // ---- lookup / insert / delete ----------------------------------------------
  /** The entry whose key equals key (hash precomputed), or 0. `keyEquals(entry)` compares bytes. */
  find(hash: number, key: Buffer, keyOffset: number): number {
    const mem = this.mem;
    const root = this.root;
    if (mem.u32(root, R_REHASH) !== 0) return this.findRehashing(hash, key, keyOffset);
    const l = mem.u32(root, R_LOG2[0]!);
    if (l === 0) return 0;
    // Hot path (no rehash in progress): one table, geometry read once.
    const idx = hash & ((1 << (l - 1)) - 1);
    const dir = mem.u32(root, R_DIR[0]!);
    let e = l - 1 <= SMALL_MAX_LOG2 ? mem.u32(dir, idx) : mem.u32(mem.u32(dir, idx >>> SEGMENT_LOG2), idx & SEGMENT_MASK);
    while (e !== 0) {
      if (mem.u32(e, E_HASH) === hash && mem.equals(e, keyOffset, mem.u32(e, KEY_LEN_WORD), key)) return e;
      e = mem.u32(e, E_NEXT);
    }
    return 0;
  }

  private findRehashing(hash: number, key: Buffer, keyOffset: number): number {
    this.rehash(1);
    const mem = this.mem;
    for (let t = 0; t < 2; t++) {
      const l = mem.u32(this.root, R_LOG2[t]!);
      if (l === 0) break;
      let e = this.getBucket(t, hash & (2 ** (l - 1) - 1));
      while (e !== 0) {
        if (mem.u32(e, E_HASH) === hash && mem.equals(e, keyOffset, mem.u32(e, KEY_LEN_WORD), key)) return e;
        e = mem.u32(e, E_NEXT);
      }
      if (!this.isRehashing()) break;
    }
    return 0;
  }

  /** Link a new entry (its hash already stored in it); the key must not be present. */
  add(entry: number): void {
    this.expandIfNeeded();
    if (this.isRehashing()) this.rehash(1);
    const t = this.isRehashing() ? 1 : 0;
    const idx = this.mem.u32(entry, E_HASH) & (this.sizeOf(t) - 1);
    this.mem.setU32(entry, E_NEXT, this.getBucket(t, idx));
    this.setBucket(t, idx, entry);
    this.setUsed(t, this.used(t) + 1);
  }

  /** Unlink `entry` (found earlier) from its chain. Returns false when it is not linked. */
  remove(entry: number): boolean {
    return this.relink(entry, 0);
  }

  /** Put `replacement` where `entry` is linked (the value moved to a new chunk). */
  replace(entry: number, replacement: number): void {
    this.mem.setU32(replacement, E_HASH, this.mem.u32(entry, E_HASH));
    if (!this.relink(entry, replacement)) throw new Error('dict.replace: entry not linked');
  }

  private relink(entry: number, replacement: number): boolean {
    const mem = this.mem;
    const hash = mem.u32(entry, E_HASH);
    if (this.isRehashing()) this.rehash(1);
    for (let t = 0; t < 2; t++) {
      const l = mem.u32(this.root, R_LOG2[t]!);
      if (l === 0) break;
      const idx = hash & (2 ** (l - 1) - 1);
      let prev = 0;
      let e = this.getBucket(t, idx);
      while (e !== 0) {
        if (e === entry) {
          const next = mem.u32(e, E_NEXT);
          let link = next;
          if (replacement !== 0) {
            mem.setU32(replacement, E_NEXT, next);
            link = replacement;
          } else {
            this.setUsed(t, this.used(t) - 1);
          }
          if (prev === 0) this.setBucket(t, idx, link);
          else mem.setU32(prev, E_NEXT, link);
          return true;
        }
        prev = e;
        e = mem.u32(e, E_NEXT);
      }
      if (!this.isRehashing()) break;
    }
    return false;
  }

  // ---- resizing ----------------------------------------------------------------
  private expandIfNeeded(): void {
    if (this.isRehashing()) return;
    const size = this.sizeOf(0);
    if (size === 0) {
      this.createTable(0, MIN_LOG2);
      return;
    }
    const used = this.used(0);
    if (used >= size && (PoolDict.canResize || used / size > FORCE_RESIZE_RATIO)) this.resize(used + 1);
  }

  /**
   * Start an incremental rehash into a table of the smallest power of two >= n. A full pool may have no
   * room for the new table (or no chunk of its size class): the current one stays, chains just get
   * longer (growing) or the table stays sparse (shrinking) until memory frees up.
   */
  private resize(n: number): void {
    let log2 = MIN_LOG2;
    while (2 ** log2 < n) log2++;
    if (log2 === this.log2(0)) return;
    try {
      this.createTable(1, log2);
    } catch (err) {
      if (!(err instanceof PoolFullError)) throw err;
      return;
    }
    this.mem.setU32(this.root, R_REHASH, 1);
  }

  /** Shrink when under 10% full, as Redis's htNeedsResize (called from the cron). */
  shrinkIfNeeded(): void {
    if (this.isRehashing() || !PoolDict.canResize) return;
    const size = this.sizeOf(0);
    const used = this.used(0);
    if (size > 2 ** MIN_LOG2 && used * 100 < size * 10) this.resize(Math.max(used, 4));
  }

  /**
   * Move up to n buckets from table 0 to table 1, visiting at most n*10 empty
   * buckets (dictRehash). Returns true while more remains.
   */
  rehash(n: number): boolean {
    const mem = this.mem;
    let rehashIdx = mem.u32(this.root, R_REHASH) - 1;
    if (rehashIdx < 0) return false;
    let emptyVisits = n * 10;
    const size0 = this.sizeOf(0);
    const mask1 = this.sizeOf(1) - 1;
    while (n-- > 0 && this.used(0) !== 0) {
      let e: number;
      while ((e = this.getBucket(0, rehashIdx)) === 0) {
        rehashIdx++;
        if (--emptyVisits === 0) {
          mem.setU32(this.root, R_REHASH, rehashIdx + 1);
          return true;
        }
      }
      let moved = 0;
      while (e !== 0) {
        const next = mem.u32(e, E_NEXT);
        const idx = mem.u32(e, E_HASH) & mask1;
        mem.setU32(e, E_NEXT, this.getBucket(1, idx));
        this.setBucket(1, idx, e);
        moved++;
        e = next;
      }
      this.setBucket(0, rehashIdx, 0);
      this.setUsed(0, this.used(0) - moved);
      this.setUsed(1, this.used(1) + moved);
      rehashIdx++;
      if (rehashIdx >= size0) break;
    }
    if (this.used(0) === 0) {
      // Done: table 1 becomes table 0.
      this.freeTable(0);
      for (const [a, b] of [[R_DIR[0]!, R_DIR[1]!], [R_LOG2[0]!, R_LOG2[1]!], [R_USED[0]!, R_USED[1]!]] as const) {
        mem.setU32(this.root, a, mem.u32(this.root, b));
        mem.setU32(this.root, b, 0);
      }
      mem.setU32(this.root, R_REHASH, 0);
      return false;
    }
    mem.setU32(this.root, R_REHASH, rehashIdx + 1);
    return true;
  }

  /** Rehash in steps of 100 buckets for about `ms` milliseconds (activerehashing). */
  rehashMilliseconds(ms: number): number {
    const start = performance.now();
    let steps = 0;
    while (this.rehash(100)) {
      steps += 100;
      if (performance.now() - start > ms) break;
    }
    return steps;
  }

  // ---- iteration -------------------------------------------------------------
  /**
   * One SCAN step with Redis's reverse-binary cursor (dictScan): every entry
   * present for the whole scan is returned at least once, across resizes.
   */
  scan(cursor: number, visit: (entry: number) => void): number {
    if (this.size() === 0) return 0;
    const visitBucket = (t: number, idx: number): void => {
      let e = this.getBucket(t, idx);
      while (e !== 0) {
        const next = this.mem.u32(e, E_NEXT);
        visit(e);
        e = next;
      }
    };
    let v = cursor >>> 0;
    if (!this.isRehashing()) {
      const m0 = this.sizeOf(0) - 1;
      visitBucket(0, v & m0);
      v |= ~m0;
      v = reverseBits(v);
      v = (v + 1) >>> 0;
      v = reverseBits(v);
    } else {
      let small = 0;
      let large = 1;
      if (this.sizeOf(0) > this.sizeOf(1)) {
        small = 1;
        large = 0;
      }
      const m0 = this.sizeOf(small) - 1;
      const m1 = this.sizeOf(large) - 1;
      visitBucket(small, v & m0);
      do {
        visitBucket(large, v & m1);
        v |= ~m1;
        v = reverseBits(v);
        v = (v + 1) >>> 0;
        v = reverseBits(v);
      } while (v & (m0 ^ m1));
    }
    return v >>> 0;
  }

  /** A random entry, as dictGetRandomKey (bucket first, then a position in its chain). */
  randomEntry(random: () => number = Math.random): number {
    if (this.size() === 0) return 0;
    if (this.isRehashing()) this.rehash(1);
    let e = 0;
    let t = 0;
    let idx = 0;
    if (this.isRehashing()) {
      const rehashIdx = this.mem.u32(this.root, R_REHASH) - 1;
      const s0 = this.sizeOf(0);
      const total = s0 + this.sizeOf(1);
      do {
        idx = rehashIdx + Math.floor(random() * (total - rehashIdx));
        t = idx >= s0 ? 1 : 0;
        e = this.getBucket(t, t === 1 ? idx - s0 : idx);
      } while (e === 0);
    } else {
      const mask = this.sizeOf(0) - 1;
      do {
        e = this.getBucket(0, Math.floor(random() * (mask + 1)));
      } while (e === 0);
    }
    let len = 0;
    for (let x = e; x !== 0; x = this.mem.u32(x, E_NEXT)) len++;
    let pick = Math.floor(random() * len);
    while (pick-- > 0) e = this.mem.u32(e, E_NEXT);
    return e;
  }

  /** Visit every entry (walking, not unlinking). */
  forEach(visit: (entry: number) => void): void {
    for (let t = 0; t < 2; t++) {
      const size = this.sizeOf(t);
      for (let i = 0; i < size; i++) {
        let e = this.getBucket(t, i);
        while (e !== 0) {
          const next = this.mem.u32(e, E_NEXT);
          visit(e);
          e = next;
        }
      }
    }
  }

  /** Drop both tables after `release` has been called on every entry. */
  clear(release: (entry: number) => void): void {
    this.forEach(release);
    this.freeTable(0);
    this.freeTable(1);
    this.mem.setU32(this.root, R_REHASH, 0);
  }

  /** Exchange roots with another dict (SWAPDB): only root words move. */
  swapRoots(other: PoolDict): void {
    for (let w = 0; w < DICT_ROOT_WORDS; w++) {
      const a = this.mem.u32(this.root, w);
      this.mem.setU32(this.root, w, this.mem.u32(other.root, w));
      this.mem.setU32(other.root, w, a);
    }
  }

  /** Buckets and chain lengths, for tests and DEBUG-style introspection. */
  stats(): { size: number; buckets: number; rehashing: boolean; maxChain: number } {
    let maxChain = 0;
    for (let t = 0; t < 2; t++) {
      const size = this.sizeOf(t);
      for (let i = 0; i < size; i++) {
        let n = 0;
        for (let e = this.getBucket(t, i); e !== 0; e = this.mem.u32(e, E_NEXT)) n++;
        if (n > maxChain) maxChain = n;
      }
    }
    return { size: this.size(), buckets: this.buckets(), rehashing: this.isRehashing(), maxChain };
  }
}

/** Word of an entry that holds its key length (see entry.ts). */
export const KEY_LEN_WORD = 6;

function reverseBits(v: number): number {
  v = ((v >>> 1) & 0x55555555) | ((v & 0x55555555) << 1);
  v = ((v >>> 2) & 0x33333333) | ((v & 0x33333333) << 2);
  v = ((v >>> 4) & 0x0f0f0f0f) | ((v & 0x0f0f0f0f) << 4);
  v = ((v >>> 8) & 0x00ff00ff) | ((v & 0x00ff00ff) << 8);
  v = (v >>> 16) | (v << 16);
  return v >>> 0;
}
