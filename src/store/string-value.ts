// Storage of string values inside entries: inline in the entry's chunk when it
// fits, otherwise in a chain of whole pages. Reading copies straight from the
// pool into the caller's buffer; writing grows the entry into a bigger chunk
// (with slack, like sdsMakeRoomFor) when the current one is too small.
import { CHUNK_MAX, type SlabAllocator } from '../pool/allocator';
import { PAGE_BYTES, type PoolMemory } from '../pool/memory';
import {
  CHAIN_HEADER_BYTES, chainHeadWord, F_EXPIRE, FLAG_LARGE, KEY_OFFSET,
  W_KEY_LEN, W_LRU, W_META, W_VALUE_LEN,
} from './entry';
import { E_HASH } from './dict';

const PAGE_DATA = PAGE_BYTES - CHAIN_HEADER_BYTES;
/** sdsMakeRoomFor's threshold: below it, growth doubles; above it, adds this much. */
const GREEDY_GROWTH_LIMIT = 1024 * 1024;

export class StringStorage {
  constructor(private readonly mem: PoolMemory, private readonly alloc: SlabAllocator) {}

  isLarge(e: number): boolean {
    return ((this.mem.u32(e, W_META) >>> 8) & FLAG_LARGE) !== 0;
  }

  length(e: number): number {
    return this.mem.u32(e, W_VALUE_LEN);
  }

  /** Bytes the value may grow to without moving the entry. */
  inlineCapacity(e: number): number {
    return this.alloc.capacityOf(e) - KEY_OFFSET - this.mem.u32(e, W_KEY_LEN);
  }

  /**
   * A new, unlinked entry for key with room for `length` value bytes (more if
   * `capacity` asks), value bytes left unwritten. Throws PoolFullError with
   * nothing allocated.
   */
  create(key: Buffer, hash: number, type: number, length: number, lru: number, capacity = length): number {
    const mem = this.mem;
    const inlineBytes = KEY_OFFSET + key.length + capacity;
    let e: number;
    let large = false;
    if (inlineBytes <= CHUNK_MAX) {
      e = this.alloc.alloc(inlineBytes);
    } else if (KEY_OFFSET + key.length + length <= CHUNK_MAX && capacity > length) {
      e = this.alloc.alloc(Math.min(CHUNK_MAX, inlineBytes));
    } else {
      if ((chainHeadWord(key.length) + 1) * 4 > CHUNK_MAX) throw new RangeError('key too large');
      e = this.alloc.alloc((chainHeadWord(key.length) + 1) * 4);
      large = true;
    }
    mem.setU32(e, E_HASH, hash);
    mem.setF64(e, F_EXPIRE, 0);
    mem.setU32(e, W_LRU, lru);
    mem.setU32(e, W_META, type | ((large ? FLAG_LARGE : 0) << 8));
    mem.setU32(e, W_KEY_LEN, key.length);
    mem.setU32(e, W_VALUE_LEN, length);
    mem.copyIn(e, KEY_OFFSET, key, 0, key.length);
    if (large) {
      mem.setU32(e, chainHeadWord(key.length), 0);
      try {
        this.growChain(e, 0, length);
      } catch (err) {
        this.freeChain(e);
        this.alloc.free(e);
        throw err;
      }
    }
    return e;
  }

  /** Free an entry and its page chain. */
  release(e: number): void {
    if (this.isLarge(e)) this.freeChain(e);
    this.alloc.free(e);
  }

  private chainHead(e: number): number {
    return this.mem.u32(e, chainHeadWord(this.mem.u32(e, W_KEY_LEN)));
  }

  private freeChain(e: number): void {
    let page = this.chainHead(e);
    while (page !== 0) {
      const next = this.mem.u32(page, 0);
      this.alloc.freePage(page);
      page = next;
    }
    this.mem.setU32(e, chainHeadWord(this.mem.u32(e, W_KEY_LEN)), 0);
  }

  /** Extend a chain holding `from` bytes to `to` bytes (new bytes unwritten). */
  private growChain(e: number, from: number, to: number): void {
    const mem = this.mem;
    const pagesHave = Math.ceil(from / PAGE_DATA);
    const pagesNeed = Math.ceil(to / PAGE_DATA);
    let last = 0;
    let page = this.chainHead(e);
    while (page !== 0) {
      last = page;
      page = mem.u32(page, 0);
    }
    const tailBefore = last;
    try {
      for (let i = pagesHave; i < pagesNeed; i++) {
        const fresh = this.alloc.allocPage();
        mem.setU32(fresh, 0, 0);
        if (last === 0) mem.setU32(e, chainHeadWord(mem.u32(e, W_KEY_LEN)), fresh);
        else mem.setU32(last, 0, fresh);
        last = fresh;
      }
    } catch (err) {
      // Out of pages part-way: give back what this call took, so a refused write leaks nothing.
      let page = tailBefore === 0 ? this.chainHead(e) : mem.u32(tailBefore, 0);
      while (page !== 0) {
        const next = mem.u32(page, 0);
        this.alloc.freePage(page);
        page = next;
      }
      if (tailBefore === 0) mem.setU32(e, chainHeadWord(mem.u32(e, W_KEY_LEN)), 0);
      else mem.setU32(tailBefore, 0, 0);
      throw err;
    }
  }

  /** Copy value bytes [start, end) into target at targetOff. */
  copyOut(e: number, start: number, end: number, target: Buffer, targetOff: number): void {
    if (end <= start) return;
    const mem = this.mem;
    if (!this.isLarge(e)) {
      mem.copyOut(e, KEY_OFFSET + mem.u32(e, W_KEY_LEN) + start, end - start, target, targetOff);
      return;
    }
    let page = this.chainHead(e);
    let pageStart = 0;
    while (page !== 0 && pageStart + PAGE_DATA <= start) {
      page = mem.u32(page, 0);
      pageStart += PAGE_DATA;
    }
    let at = start;
    while (at < end && page !== 0) {
      const from = at - pageStart;
      const n = Math.min(PAGE_DATA - from, end - at);
      mem.copyOut(page, CHAIN_HEADER_BYTES + from, n, target, targetOff + (at - start));
      at += n;
      page = mem.u32(page, 0);
      pageStart += PAGE_DATA;
    }
  }

  /** Overwrite value bytes at `offset` with source[srcStart, srcEnd) (within the current length). */
  write(e: number, offset: number, source: Buffer, srcStart: number, srcEnd: number): void {
    if (srcEnd <= srcStart) return;
    const mem = this.mem;
    if (!this.isLarge(e)) {
      mem.copyIn(e, KEY_OFFSET + mem.u32(e, W_KEY_LEN) + offset, source, srcStart, srcEnd);
      return;
    }
    let page = this.chainHead(e);
    let pageStart = 0;
    while (page !== 0 && pageStart + PAGE_DATA <= offset) {
      page = mem.u32(page, 0);
      pageStart += PAGE_DATA;
    }
    let at = offset;
    let src = srcStart;
    while (src < srcEnd && page !== 0) {
      const from = at - pageStart;
      const n = Math.min(PAGE_DATA - from, srcEnd - src);
      mem.copyIn(page, CHAIN_HEADER_BYTES + from, source, src, src + n);
      at += n;
      src += n;
      page = mem.u32(page, 0);
      pageStart += PAGE_DATA;
    }
  }

  /** Zero value bytes [start, end). */
  zero(e: number, start: number, end: number): void {
    if (end <= start) return;
    const mem = this.mem;
    if (!this.isLarge(e)) {
      mem.fill(e, KEY_OFFSET + mem.u32(e, W_KEY_LEN) + start, end - start, 0);
      return;
    }
    let page = this.chainHead(e);
    let pageStart = 0;
    while (page !== 0 && start < end) {
      if (pageStart + PAGE_DATA > start) {
        const from = start - pageStart;
        const n = Math.min(PAGE_DATA - from, end - start);
        mem.fill(page, CHAIN_HEADER_BYTES + from, n, 0);
        start += n;
      }
      page = mem.u32(page, 0);
      pageStart += PAGE_DATA;
    }
  }

  /**
   * Make the value `newLength` bytes long, keeping its first bytes. Returns the
   * entry holding it: the same one when it fits, otherwise a new unlinked copy
   * (the caller relinks it and releases the old). New bytes are zeroed.
   * `greedy` leaves room to grow as sdsMakeRoomFor does (APPEND, SETRANGE).
   */
  resize(e: number, newLength: number, greedy: boolean): number {
    const mem = this.mem;
    const oldLength = mem.u32(e, W_VALUE_LEN);
    if (this.isLarge(e)) {
      if (newLength > oldLength) this.growChain(e, oldLength, newLength);
      mem.setU32(e, W_VALUE_LEN, newLength);
      if (newLength > oldLength) this.zero(e, oldLength, newLength);
      return e;
    }
    if (newLength <= this.inlineCapacity(e)) {
      mem.setU32(e, W_VALUE_LEN, newLength);
      if (newLength > oldLength) this.zero(e, oldLength, newLength);
      return e;
    }
    const keyLen = mem.u32(e, W_KEY_LEN);
    const key = Buffer.allocUnsafe(keyLen);
    mem.copyOut(e, KEY_OFFSET, keyLen, key, 0);
    const capacity = greedy ? (newLength < GREEDY_GROWTH_LIMIT ? newLength * 2 : newLength + GREEDY_GROWTH_LIMIT) : newLength;
    const meta = mem.u32(e, W_META);
    const moved = this.create(key, mem.u32(e, E_HASH), meta & 0xff, newLength, mem.u32(e, W_LRU), capacity);
    const keptFlags = ((meta >>> 8) & ~FLAG_LARGE) << 8; // RAW and friends survive the move
    mem.setU32(moved, W_META, mem.u32(moved, W_META) | keptFlags);
    mem.setF64(moved, F_EXPIRE, mem.f64(e, F_EXPIRE));
    this.copyBetween(e, moved, oldLength);
    this.zero(moved, oldLength, newLength);
    return moved;
  }

  /** Copy the first n value bytes of entry `from` into entry `to`. */
  copyBetween(from: number, to: number, n: number): void {
    const mem = this.mem;
    if (!this.isLarge(from)) {
      const window = mem.peek(from, KEY_OFFSET + mem.u32(from, W_KEY_LEN), n);
      this.write(to, 0, window, 0, n);
      return;
    }
    let page = this.chainHead(from);
    let at = 0;
    while (at < n && page !== 0) {
      const chunk = Math.min(PAGE_DATA, n - at);
      this.write(to, at, mem.peek(page, CHAIN_HEADER_BYTES, chunk), 0, chunk);
      at += chunk;
      page = mem.u32(page, 0);
    }
  }

  /** Bytes this entry occupies in the pool (MEMORY USAGE-like accounting). */
  footprint(e: number): number {
    if (!this.isLarge(e)) return this.alloc.capacityOf(e);
    return this.alloc.capacityOf(e) + Math.ceil(this.length(e) / PAGE_DATA) * PAGE_BYTES;
  }
}
