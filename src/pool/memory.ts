// PoolMemory: typed views over the mapping and the one narrow layer through
// which every write into the pool passes. Reads are direct; writes call the
// page-write barrier first, which is where a snapshot in progress gets to see
// (and keep) a page's pre-image before it changes.
//
// A reference into the pool ("ref") is a uint32 counting 8-byte units from the
// start of the pool, so an image is valid at any address and refs reach 32 GiB.
// Ref 0 is the header, so 0 also serves as "null".
import { VIEW_SHIFT } from './mapping';

export const UNIT_SHIFT = 3; // refs count 8-byte units
export const PAGE_SHIFT = 20; // 1 MiB pages
export const PAGE_BYTES = 1 << PAGE_SHIFT;
export const PAGE_UNIT_SHIFT = PAGE_SHIFT - UNIT_SHIFT; // ref >>> 17 = page index
const VIEW_UNIT_SHIFT = VIEW_SHIFT - UNIT_SHIFT; // ref >>> 27 = view index
const VIEW_UNIT_MASK = (1 << VIEW_UNIT_SHIFT) - 1;
const SHORT_KEY_BYTES = 32;
export const MAX_POOL_BYTES = 2 ** 32 * 8 - PAGE_BYTES;

/** Called with a page index before any byte of that page changes. */
export type WriteBarrier = (page: number) => void;

export function refOfPage(page: number): number {
  return page << PAGE_UNIT_SHIFT >>> 0;
}

export class PoolMemory {
  readonly bytes: Buffer[];
  readonly words: Uint32Array[];
  readonly doubles: Float64Array[];
  /** Set while a snapshot is being taken; null otherwise (the common, cheap case). */
  barrier: WriteBarrier | null = null;

  constructor(views: Buffer[]) {
    this.bytes = views;
    this.words = views.map((v) => new Uint32Array(v.buffer, v.byteOffset, v.length >>> 2));
    this.doubles = views.map((v) => new Float64Array(v.buffer, v.byteOffset, v.length >>> 3));
  }

  // ---- reads -------------------------------------------------------------
  /** The uint32 at word `i` of the object at `ref`. */
  u32(ref: number, i: number): number {
    return this.words[ref >>> VIEW_UNIT_SHIFT]![((ref & VIEW_UNIT_MASK) << 1) + i]!;
  }

  /** The float64 at 8-byte slot `i` of the object at `ref`. */
  f64(ref: number, i: number): number {
    return this.doubles[ref >>> VIEW_UNIT_SHIFT]![(ref & VIEW_UNIT_MASK) + i]!;
  }

  /** The Buffer (one view) holding `ref`, and the byte offset of `ref` in it. */
  view(ref: number): Buffer {
    return this.bytes[ref >>> VIEW_UNIT_SHIFT]!;
  }
  offsetInView(ref: number): number {
    return (ref & VIEW_UNIT_MASK) << UNIT_SHIFT;
  }

  /** Compare `key` with `len` bytes at ref+byteOff; true when equal. */
  equals(ref: number, byteOff: number, len: number, key: Buffer): boolean {
    if (len !== key.length) return false;
    const view = this.bytes[ref >>> VIEW_UNIT_SHIFT]!;
    const start = ((ref & VIEW_UNIT_MASK) << UNIT_SHIFT) + byteOff;
    // Measured on Node 20: buf.compare() with offsets costs ~70 ns a call in argument
    // checks, a plain loop ~20 ns for a 16-byte key; so short keys (the common case on
    // every successful lookup) use the loop and longer ones the Buffer method.
    if (len <= SHORT_KEY_BYTES) {
      for (let i = 0; i < len; i++) if (view[start + i] !== key[i]) return false;
      return true;
    }
    return key.compare(view, start, start + len) === 0;
  }

  /** Copy `len` bytes at ref+byteOff into `target` at `targetOff`. */
  copyOut(ref: number, byteOff: number, len: number, target: Buffer, targetOff: number): void {
    const view = this.bytes[ref >>> VIEW_UNIT_SHIFT]!;
    const start = ((ref & VIEW_UNIT_MASK) << UNIT_SHIFT) + byteOff;
    // Small values (counters, short strings) skip Buffer.copy's argument checks, as in equals().
    if (len <= SHORT_KEY_BYTES) {
      for (let i = 0; i < len; i++) target[targetOff + i] = view[start + i]!;
      return;
    }
    view.copy(target, targetOff, start, start + len);
  }

  /** A zero-copy window; only for immediate reads, never kept or handed to I/O. */
  peek(ref: number, byteOff: number, len: number): Buffer {
    const start = this.offsetInView(ref) + byteOff;
    return this.view(ref).subarray(start, start + len);
  }

  // ---- writes (all through the barrier) ------------------------------------
  setU32(ref: number, i: number, value: number): void {
    if (this.barrier !== null) this.barrier((ref + (i >>> 1)) >>> PAGE_UNIT_SHIFT);
    this.words[ref >>> VIEW_UNIT_SHIFT]![((ref & VIEW_UNIT_MASK) << 1) + i] = value;
  }

  setF64(ref: number, i: number, value: number): void {
    if (this.barrier !== null) this.barrier((ref + i) >>> PAGE_UNIT_SHIFT);
    this.doubles[ref >>> VIEW_UNIT_SHIFT]![(ref & VIEW_UNIT_MASK) + i] = value;
  }

  /** Copy source[srcStart, srcEnd) to ref+byteOff. The range must lie within one page. */
  copyIn(ref: number, byteOff: number, source: Buffer, srcStart: number, srcEnd: number): void {
    if (this.barrier !== null) this.touchRange(ref, byteOff, srcEnd - srcStart);
    const view = this.bytes[ref >>> VIEW_UNIT_SHIFT]!;
    const at = ((ref & VIEW_UNIT_MASK) << UNIT_SHIFT) + byteOff;
    if (srcEnd - srcStart <= SHORT_KEY_BYTES) {
      for (let i = srcStart; i < srcEnd; i++) view[at + i - srcStart] = source[i]!;
      return;
    }
    source.copy(view, at, srcStart, srcEnd);
  }

  /** Write a latin1/ascii string at ref+byteOff (numbers rendered by INCR and friends). */
  writeAscii(ref: number, byteOff: number, text: string): number {
    if (this.barrier !== null) this.touchRange(ref, byteOff, text.length);
    return this.view(ref).write(text, this.offsetInView(ref) + byteOff, 'latin1');
  }

  /** Move bytes within the pool (both ranges within one page each). */
  move(dstRef: number, dstOff: number, srcRef: number, srcOff: number, len: number): void {
    if (this.barrier !== null) this.touchRange(dstRef, dstOff, len);
    const src = this.offsetInView(srcRef) + srcOff;
    this.view(srcRef).copy(this.view(dstRef), this.offsetInView(dstRef) + dstOff, src, src + len);
  }

  fill(ref: number, byteOff: number, len: number, value: number): void {
    if (this.barrier !== null) this.touchRange(ref, byteOff, len);
    const start = this.offsetInView(ref) + byteOff;
    this.view(ref).fill(value, start, start + len);
  }

  private touchRange(ref: number, byteOff: number, len: number): void {
    if (len <= 0) return;
    const firstByte = ref * 8 + byteOff;
    const first = Math.floor(firstByte / (1 << PAGE_SHIFT));
    const last = Math.floor((firstByte + len - 1) / (1 << PAGE_SHIFT));
    for (let p = first; p <= last; p++) this.barrier!(p);
  }
}
