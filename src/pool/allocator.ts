// A memcached-style slab allocator whose every bit of bookkeeping lives in the
// pool. Chunk sizes grow by a factor from a minimum; each class takes 1 MiB
// pages from the pool's free pages and carves them into equal chunks.
//
// Unlike memcached's single per-class free list, each page keeps its own free
// list and use count, and a class links the pages that still have room. A page
// whose last chunk is freed goes straight back to the pool's free pages, so
// memory freed by one size class is reusable by every other (the automatic
// counterpart of memcached's slab automove for fully drained pages).
import { PoolFullError } from './errors';
import {
  C_CHUNKS_PER_PAGE, C_CHUNK_SIZE, C_PAGES, C_PARTIAL_HEAD, C_USED_CHUNKS, C_WORDS,
  CLASS_TABLE_OFFSET, D_PEAK_BYTES, D_USED_BYTES, MAX_CLASSES, P_CARVED, P_CLASS, P_FREE_HEAD,
  P_NEXT, P_PREV, P_USED, P_WORDS, PAGE_FREE, PAGE_LARGE, W_CLASS_COUNT, W_FREE_PAGE_COUNT,
  W_FREE_PAGE_HEAD, W_LARGE_PAGES, W_META_PAGES, W_MIN_CHUNK, W_PAGE_COUNT, W_PAGE_TABLE_OFFSET,
  W_UNTOUCHED_PAGE, D_GROWTH_FACTOR,
} from './layout';
import { PAGE_BYTES, PAGE_UNIT_SHIFT, PoolMemory, refOfPage } from './memory';

/** The largest chunk; anything bigger is stored as whole pages by the caller. */
export const CHUNK_MAX = PAGE_BYTES / 2;
const UNIT = 8;
const CLASS_TABLE_REF = CLASS_TABLE_OFFSET / 8;

export interface SlabClassStats {
  id: number;
  chunkSize: number;
  chunksPerPage: number;
  pages: number;
  usedChunks: number;
  freeChunks: number;
}

/** Chunk sizes for a growth factor, as memcached's slabs_init computes them (8-byte aligned). */
export function slabClassSizes(minChunk: number, factor: number): number[] {
  const sizes: number[] = [];
  let size = Math.ceil(minChunk / UNIT) * UNIT;
  while (size < CHUNK_MAX && sizes.length < MAX_CLASSES - 1) {
    sizes.push(size);
    size = Math.ceil((size * factor) / UNIT) * UNIT;
    if (size === sizes[sizes.length - 1]) size += UNIT;
  }
  sizes.push(CHUNK_MAX);
  return sizes;
}

export class SlabAllocator {
  // Derived from the header at attach time; the pool stays the source of truth.
  private readonly chunkSize: number[] = [0];
  private readonly chunkUnits: number[] = [0];
  private readonly chunksPerPage: number[] = [0];
  /** Class for a size, indexed by ceil(size / 8). */
  private readonly classBySize: Uint8Array;
  private readonly pageTableRef: number;
  readonly pageCount: number;
  readonly metaPages: number;
  readonly classCount: number;
  /** A page being emptied by beginDrain(): out of its class's partial list, so alloc() never picks it. */
  private draining = 0;

  constructor(private readonly mem: PoolMemory) {
    this.pageCount = mem.u32(0, W_PAGE_COUNT);
    this.metaPages = mem.u32(0, W_META_PAGES);
    this.classCount = mem.u32(0, W_CLASS_COUNT);
    this.pageTableRef = mem.u32(0, W_PAGE_TABLE_OFFSET) / 8;
    for (let c = 1; c <= this.classCount; c++) {
      const size = mem.u32(this.classRef(c), C_CHUNK_SIZE);
      this.chunkSize.push(size);
      this.chunkUnits.push(size / UNIT);
      this.chunksPerPage.push(mem.u32(this.classRef(c), C_CHUNKS_PER_PAGE));
    }
    this.classBySize = new Uint8Array(CHUNK_MAX / UNIT + 1);
    let c = 1;
    for (let units = 0; units <= CHUNK_MAX / UNIT; units++) {
      while (this.chunkSize[c]! < units * UNIT) c++;
      this.classBySize[units] = c;
    }
  }

  /** Write a fresh, empty allocator state into a header that has geometry set. */
  static format(mem: PoolMemory, minChunk: number, growthFactor: number): void {
    const sizes = slabClassSizes(minChunk, growthFactor);
    mem.setU32(0, W_CLASS_COUNT, sizes.length);
    mem.setU32(0, W_MIN_CHUNK, minChunk);
    mem.setF64(0, D_GROWTH_FACTOR, growthFactor);
    sizes.forEach((size, i) => {
      const ref = CLASS_TABLE_REF + (i + 1) * C_WORDS / 2;
      mem.setU32(ref, C_CHUNK_SIZE, size);
      mem.setU32(ref, C_CHUNKS_PER_PAGE, Math.floor(PAGE_BYTES / size));
    });
    SlabAllocator.clear(mem, sizes.length);
  }

  /** Forget every allocation at once: all data pages become free (FLUSHALL). */
  static clear(mem: PoolMemory, classCount: number): void {
    for (let c = 1; c <= classCount; c++) {
      const ref = CLASS_TABLE_REF + c * C_WORDS / 2;
      mem.setU32(ref, C_PARTIAL_HEAD, 0);
      mem.setU32(ref, C_PAGES, 0);
      mem.setU32(ref, C_USED_CHUNKS, 0);
    }
    mem.setU32(0, W_UNTOUCHED_PAGE, mem.u32(0, W_META_PAGES));
    mem.setU32(0, W_FREE_PAGE_HEAD, 0);
    mem.setU32(0, W_FREE_PAGE_COUNT, 0);
    mem.setU32(0, W_LARGE_PAGES, 0);
    mem.setF64(0, D_USED_BYTES, 0);
  }

  reset(): void {
    SlabAllocator.clear(this.mem, this.classCount);
  }

  private classRef(c: number): number {
    return CLASS_TABLE_REF + c * C_WORDS / 2;
  }

  private pageRef(page: number): number {
    return this.pageTableRef + page * P_WORDS / 2;
  }

  /** Bytes handed out (chunks at their class size, whole pages at 1 MiB). */
  usedBytes(): number {
    return this.mem.f64(0, D_USED_BYTES);
  }

  peakBytes(): number {
    return this.mem.f64(0, D_PEAK_BYTES);
  }

  freePages(): number {
    return this.mem.u32(0, W_FREE_PAGE_COUNT) + (this.pageCount - this.mem.u32(0, W_UNTOUCHED_PAGE));
  }

  /** The class whose chunks hold `size` bytes, or 0 when size > CHUNK_MAX. */
  classFor(size: number): number {
    return size <= CHUNK_MAX ? this.classBySize[(size + UNIT - 1) >>> 3]! : 0;
  }

  /** Usable bytes of the chunk at `ref` (its class's chunk size). */
  capacityOf(ref: number): number {
    const cls = this.mem.u32(this.pageRef(ref >>> PAGE_UNIT_SHIFT), P_CLASS);
    return cls === PAGE_LARGE ? PAGE_BYTES : this.chunkSize[cls]!;
  }

  /** Capacity a request of `size` bytes would get. */
  chunkSizeFor(size: number): number {
    return this.chunkSize[this.classFor(size)]!;
  }

  private addUsed(delta: number): void {
    const used = this.mem.f64(0, D_USED_BYTES) + delta;
    this.mem.setF64(0, D_USED_BYTES, used);
    if (used > this.mem.f64(0, D_PEAK_BYTES)) this.mem.setF64(0, D_PEAK_BYTES, used);
  }

  /** Take a page from the free list, or the next never-used one. */
  private takePage(): number {
    const mem = this.mem;
    const head = mem.u32(0, W_FREE_PAGE_HEAD);
    if (head !== 0) {
      mem.setU32(0, W_FREE_PAGE_HEAD, mem.u32(this.pageRef(head), P_NEXT));
      mem.setU32(0, W_FREE_PAGE_COUNT, mem.u32(0, W_FREE_PAGE_COUNT) - 1);
      return head;
    }
    const untouched = mem.u32(0, W_UNTOUCHED_PAGE);
    if (untouched >= this.pageCount) throw new PoolFullError();
    mem.setU32(0, W_UNTOUCHED_PAGE, untouched + 1);
    return untouched;
  }

  private releasePage(page: number): void {
    const mem = this.mem;
    const p = this.pageRef(page);
    mem.setU32(p, P_CLASS, PAGE_FREE);
    mem.setU32(p, P_NEXT, mem.u32(0, W_FREE_PAGE_HEAD));
    mem.setU32(0, W_FREE_PAGE_HEAD, page);
    mem.setU32(0, W_FREE_PAGE_COUNT, mem.u32(0, W_FREE_PAGE_COUNT) + 1);
  }

  /** Allocate a chunk of at least `size` bytes (size <= CHUNK_MAX). Throws PoolFullError. */
  alloc(size: number): number {
    const cls = this.classFor(size);
    if (cls === 0) throw new RangeError(`chunk of ${size} bytes exceeds CHUNK_MAX`);
    const mem = this.mem;
    const cref = this.classRef(cls);
    let page = mem.u32(cref, C_PARTIAL_HEAD);
    if (page === 0) {
      page = this.takePage();
      const p = this.pageRef(page);
      mem.setU32(p, P_CLASS, cls);
      mem.setU32(p, P_USED, 0);
      mem.setU32(p, P_FREE_HEAD, 0);
      mem.setU32(p, P_CARVED, 0);
      mem.setU32(p, P_NEXT, 0);
      mem.setU32(p, P_PREV, 0);
      mem.setU32(cref, C_PARTIAL_HEAD, page);
      mem.setU32(cref, C_PAGES, mem.u32(cref, C_PAGES) + 1);
    }
    const p = this.pageRef(page);
    const base = refOfPage(page);
    const units = this.chunkUnits[cls]!;
    let index: number;
    const freeHead = mem.u32(p, P_FREE_HEAD);
    if (freeHead !== 0) {
      index = freeHead - 1;
      mem.setU32(p, P_FREE_HEAD, mem.u32(base + index * units, 0));
    } else {
      index = mem.u32(p, P_CARVED);
      mem.setU32(p, P_CARVED, index + 1);
    }
    const used = mem.u32(p, P_USED) + 1;
    mem.setU32(p, P_USED, used);
    if (used === this.chunksPerPage[cls]) this.unlinkPartial(cref, page);
    mem.setU32(cref, C_USED_CHUNKS, mem.u32(cref, C_USED_CHUNKS) + 1);
    this.addUsed(this.chunkSize[cls]!);
    return base + index * units;
  }

  /** Return a chunk obtained from alloc(). */
  free(ref: number): void {
    const mem = this.mem;
    const page = ref >>> PAGE_UNIT_SHIFT;
    const p = this.pageRef(page);
    const cls = mem.u32(p, P_CLASS);
    if (cls === PAGE_LARGE) {
      this.freePage(ref);
      return;
    }
    const cref = this.classRef(cls);
    const base = refOfPage(page);
    const index = ((ref - base) / this.chunkUnits[cls]!) | 0;
    const used = mem.u32(p, P_USED) - 1;
    mem.setU32(cref, C_USED_CHUNKS, mem.u32(cref, C_USED_CHUNKS) - 1);
    this.addUsed(-this.chunkSize[cls]!);
    if (used === 0) {
      // Page drained: hand it back to the pool so any class can use it.
      if (mem.u32(p, P_USED) !== this.chunksPerPage[cls] && page !== this.draining) this.unlinkPartial(cref, page);
      mem.setU32(cref, C_PAGES, mem.u32(cref, C_PAGES) - 1);
      mem.setU32(p, P_USED, 0);
      this.releasePage(page);
      return;
    }
    mem.setU32(ref, 0, mem.u32(p, P_FREE_HEAD));
    mem.setU32(p, P_FREE_HEAD, index + 1);
    if (mem.u32(p, P_USED) === this.chunksPerPage[cls] && page !== this.draining) this.linkPartial(cref, page);
    mem.setU32(p, P_USED, used);
  }

  // ---- emptying a page for another class (memcached's slab page mover) -------------------------

  /** Visit every slab page: its number, class, chunks in use and chunks per page. */
  forEachSlabPage(visit: (page: number, cls: number, used: number, perPage: number) => void): void {
    const mem = this.mem;
    const end = mem.u32(0, W_UNTOUCHED_PAGE);
    for (let page = this.metaPages; page < end; page++) {
      const p = this.pageRef(page);
      const cls = mem.u32(p, P_CLASS);
      if (cls >= 1 && cls <= this.classCount) visit(page, cls, mem.u32(p, P_USED), this.chunksPerPage[cls]!);
    }
  }

  /** As alloc(), from a page the class already has (never a free page); 0 when none has room. */
  allocFromClassPages(size: number): number {
    const cls = this.classFor(size);
    return cls !== 0 && this.mem.u32(this.classRef(cls), C_PARTIAL_HEAD) !== 0 ? this.alloc(size) : 0;
  }

  /** Chunks of slab page `page` handed out at least once (in use or on its free list). */
  carvedChunksOf(page: number): number {
    return this.mem.u32(this.pageRef(page), P_CARVED);
  }

  /** Ref of chunk `index` of slab page `page`. */
  chunkRef(page: number, index: number): number {
    return refOfPage(page) + index * this.chunkUnits[this.mem.u32(this.pageRef(page), P_CLASS)]!;
  }

  /** The page a ref lies in. */
  pageOf(ref: number): number {
    return ref >>> PAGE_UNIT_SHIFT;
  }

  /** Free chunks of class `cls` over all its pages. */
  freeChunksOf(cls: number): number {
    const cref = this.classRef(cls);
    return this.mem.u32(cref, C_PAGES) * this.chunksPerPage[cls]! - this.mem.u32(cref, C_USED_CHUNKS);
  }

  /** Refs of the chunks of slab page `page` that are in use (carved and not on its free list). */
  usedChunksOf(page: number): number[] {
    const mem = this.mem;
    const p = this.pageRef(page);
    const cls = mem.u32(p, P_CLASS);
    if (cls < 1 || cls > this.classCount) return [];
    const carved = mem.u32(p, P_CARVED);
    const units = this.chunkUnits[cls]!;
    const base = refOfPage(page);
    const free = new Uint8Array(carved);
    for (let next = mem.u32(p, P_FREE_HEAD); next !== 0; next = mem.u32(base + (next - 1) * units, 0)) free[next - 1] = 1;
    const used: number[] = [];
    for (let i = 0; i < carved; i++) if (free[i] === 0) used.push(base + i * units);
    return used;
  }

  /**
   * Take slab page `page` out of its class's list of pages with room: until endDrain(), alloc() hands out
   * chunks of other pages only, and freeing this page's last chunk returns it to the pool as usual.
   */
  beginDrain(page: number): void {
    if (this.draining !== 0) throw new Error('beginDrain: a page is already being drained');
    const mem = this.mem;
    const p = this.pageRef(page);
    const cls = mem.u32(p, P_CLASS);
    if (cls < 1 || cls > this.classCount) throw new Error(`beginDrain: page ${page} is not a slab page`);
    if (mem.u32(p, P_USED) !== this.chunksPerPage[cls]) this.unlinkPartial(this.classRef(cls), page);
    this.draining = page;
  }

  /** End beginDrain(): a page that still holds chunks goes back on its class's list if it has room. True when it was emptied. */
  endDrain(): boolean {
    const page = this.draining;
    this.draining = 0;
    if (page === 0) return false;
    const mem = this.mem;
    const p = this.pageRef(page);
    const cls = mem.u32(p, P_CLASS);
    if (cls < 1 || cls > this.classCount) return true; // released to the pool
    if (mem.u32(p, P_USED) !== this.chunksPerPage[cls]) this.linkPartial(this.classRef(cls), page);
    return false;
  }

  /** A whole 1 MiB page (large values, big hash-table segments). */
  allocPage(): number {
    const page = this.takePage();
    const p = this.pageRef(page);
    this.mem.setU32(p, P_CLASS, PAGE_LARGE);
    this.mem.setU32(p, P_USED, 1);
    this.mem.setU32(0, W_LARGE_PAGES, this.mem.u32(0, W_LARGE_PAGES) + 1);
    this.addUsed(PAGE_BYTES);
    return refOfPage(page);
  }

  freePage(ref: number): void {
    this.mem.setU32(0, W_LARGE_PAGES, this.mem.u32(0, W_LARGE_PAGES) - 1);
    this.addUsed(-PAGE_BYTES);
    this.releasePage(ref >>> PAGE_UNIT_SHIFT);
  }

  /** Are at least `bytes` worth of whole free pages left? */
  hasRoomFor(bytes: number): boolean {
    return this.freePages() * PAGE_BYTES >= bytes;
  }

  private linkPartial(cref: number, page: number): void {
    const mem = this.mem;
    const head = mem.u32(cref, C_PARTIAL_HEAD);
    const p = this.pageRef(page);
    mem.setU32(p, P_NEXT, head);
    mem.setU32(p, P_PREV, 0);
    if (head !== 0) mem.setU32(this.pageRef(head), P_PREV, page);
    mem.setU32(cref, C_PARTIAL_HEAD, page);
  }

  private unlinkPartial(cref: number, page: number): void {
    const mem = this.mem;
    const p = this.pageRef(page);
    const next = mem.u32(p, P_NEXT);
    const prev = mem.u32(p, P_PREV);
    if (prev !== 0) mem.setU32(this.pageRef(prev), P_NEXT, next);
    else mem.setU32(cref, C_PARTIAL_HEAD, next);
    if (next !== 0) mem.setU32(this.pageRef(next), P_PREV, prev);
    mem.setU32(p, P_NEXT, 0);
    mem.setU32(p, P_PREV, 0);
  }

  /** Per-class figures, as memcached's `stats slabs` reports them. */
  classStats(): SlabClassStats[] {
    const out: SlabClassStats[] = [];
    for (let c = 1; c <= this.classCount; c++) {
      const cref = this.classRef(c);
      const pages = this.mem.u32(cref, C_PAGES);
      if (pages === 0) continue;
      const usedChunks = this.mem.u32(cref, C_USED_CHUNKS);
      out.push({
        id: c,
        chunkSize: this.chunkSize[c]!,
        chunksPerPage: this.chunksPerPage[c]!,
        pages,
        usedChunks,
        freeChunks: pages * this.chunksPerPage[c]! - usedChunks,
      });
    }
    return out;
  }

  /** Pages handed out at least once (the rest of the pool was never touched). */
  touchedPages(): number {
    return this.mem.u32(0, W_UNTOUCHED_PAGE);
  }
}
