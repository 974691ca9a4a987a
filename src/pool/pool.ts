// The pool: one shared mapping, its header, and the allocator over it. A pool
// is either formatted fresh or attached as it stands (a clean /dev/shm pool,
// or an image copied in); in both cases all state is read from the header,
// so nothing on the JS heap needs to be rebuilt from the data.
import { randomBytes } from 'crypto';
import { SlabAllocator } from './allocator';
import { PoolFormatError } from './errors';
import {
  D_CREATED_AT, D_POOL_SIZE, DB_ROOTS_OFFSET, LAYOUT_VERSION, P_CLASS, P_WORDS, PAGE_ENTRY_BYTES,
  PAGE_META, POOL_MAGIC, W_CLEAN_SHUTDOWN, W_DB_COUNT, W_DB_ROOTS_OFFSET, W_HASH_SEED, W_LAYOUT_VERSION,
  W_MAGIC, W_META_PAGES, W_PAGE_COUNT, W_PAGE_SIZE, W_PAGE_TABLE_OFFSET, W_CLASS_TABLE_OFFSET,
  CLASS_TABLE_OFFSET, pageTableOffset, align, D_PEAK_BYTES,
} from './layout';
import { MADV_REMOVE, SharedMapping } from './mapping';
import { MAX_POOL_BYTES, PAGE_BYTES, PoolMemory } from './memory';

export interface PoolOptions {
  size: number;
  /** File to map (normally under /dev/shm); empty = anonymous memfd. */
  path?: string;
  databases: number;
  growthFactor?: number;
  minChunk?: number;
}

export class Pool {
  readonly mem: PoolMemory;
  readonly allocator: SlabAllocator;
  /** 0 = no limit besides the pool's size. Kept in sync with CONFIG maxmemory. */
  maxmemory = 0;

  private constructor(readonly mapping: SharedMapping | null, views: Buffer[], readonly attached: boolean) {
    this.mem = new PoolMemory(views);
    this.allocator = new SlabAllocator(this.mem);
  }

  /** Map a pool. A /dev/shm file that holds a cleanly closed pool is attached; anything else is formatted. */
  static open(options: PoolOptions): Pool {
    if (options.size > MAX_POOL_BYTES) throw new PoolFormatError(`pool-size ${options.size} exceeds the maximum of ${MAX_POOL_BYTES} bytes`);
    const mapping = SharedMapping.open({ size: options.size, path: options.path });
    try {
      const mem = new PoolMemory(mapping.views);
      const attach = mapping.existed && Pool.isCleanPool(mem, options);
      if (!attach) Pool.format(mem, options);
      const pool = new Pool(mapping, mapping.views, attach);
      // In use from now on: only a clean SHUTDOWN sets the flag again, so a crash is never trusted.
      pool.setClean(false);
      return pool;
    } catch (err) {
      mapping.close();
      throw err;
    }
  }

  /** Attach to memory that already holds a pool (e.g. an image copied into a fresh mapping). */
  static attach(views: Buffer[]): Pool {
    Pool.validateHeader(new PoolMemory(views));
    return new Pool(null, views, true);
  }

  private static isCleanPool(mem: PoolMemory, options: PoolOptions): boolean {
    try {
      Pool.validateHeader(mem);
    } catch {
      return false;
    }
    return mem.u32(0, W_CLEAN_SHUTDOWN) === 1 && mem.u32(0, W_DB_COUNT) === options.databases;
  }

  static validateHeader(mem: PoolMemory): void {
    if (mem.u32(0, W_MAGIC) !== POOL_MAGIC) throw new PoolFormatError('not a poolkv pool (bad magic)');
    const version = mem.u32(0, W_LAYOUT_VERSION);
    if (version !== LAYOUT_VERSION) throw new PoolFormatError(`pool layout version ${version} is not supported (expected ${LAYOUT_VERSION})`);
    if (mem.u32(0, W_PAGE_SIZE) !== PAGE_BYTES) throw new PoolFormatError('pool page size mismatch');
    const size = mem.f64(0, D_POOL_SIZE);
    const mapped = mem.bytes.reduce((n, v) => n + v.length, 0);
    if (size !== mapped) throw new PoolFormatError(`pool size ${size} does not match the mapping (${mapped} bytes)`);
  }

  /** Write a fresh header: geometry, a new hash seed, an empty allocator, empty databases. */
  static format(mem: PoolMemory, options: PoolOptions): void {
    const pageCount = Math.floor(options.size / PAGE_BYTES);
    const ptOffset = pageTableOffset(options.databases);
    const metaBytes = ptOffset + pageCount * PAGE_ENTRY_BYTES;
    const metaPages = align(metaBytes, PAGE_BYTES) / PAGE_BYTES;
    if (metaPages + 1 > pageCount) throw new PoolFormatError(`pool-size ${options.size} is too small`);
    mem.fill(0, 0, metaBytes, 0);
    mem.setU32(0, W_MAGIC, POOL_MAGIC);
    mem.setU32(0, W_LAYOUT_VERSION, LAYOUT_VERSION);
    mem.setF64(0, D_POOL_SIZE, options.size);
    mem.setU32(0, W_PAGE_SIZE, PAGE_BYTES);
    mem.setU32(0, W_PAGE_COUNT, pageCount);
    mem.setU32(0, W_META_PAGES, metaPages);
    mem.setU32(0, W_DB_COUNT, options.databases);
    const seed = randomBytes(16);
    for (let i = 0; i < 4; i++) mem.setU32(0, W_HASH_SEED + i, seed.readUInt32LE(i * 4));
    mem.setF64(0, D_CREATED_AT, Date.now());
    mem.setU32(0, W_CLASS_TABLE_OFFSET, CLASS_TABLE_OFFSET);
    mem.setU32(0, W_DB_ROOTS_OFFSET, DB_ROOTS_OFFSET);
    mem.setU32(0, W_PAGE_TABLE_OFFSET, ptOffset);
    for (let page = 0; page < metaPages; page++) mem.setU32(ptOffset / 8 + page * P_WORDS / 2, P_CLASS, PAGE_META);
    SlabAllocator.format(mem, options.minChunk ?? 48, options.growthFactor ?? 1.25);
    mem.setF64(0, D_PEAK_BYTES, 0);
  }

  get size(): number {
    return this.mem.f64(0, D_POOL_SIZE);
  }
  get path(): string | null {
    return this.mapping ? this.mapping.path : null;
  }
  get dbCount(): number {
    return this.mem.u32(0, W_DB_COUNT);
  }
  get createdAt(): number {
    return this.mem.f64(0, D_CREATED_AT);
  }
  hashSeed(): [number, number, number, number] {
    const m = this.mem;
    return [m.u32(0, W_HASH_SEED), m.u32(0, W_HASH_SEED + 1), m.u32(0, W_HASH_SEED + 2), m.u32(0, W_HASH_SEED + 3)];
  }

  /** Bytes of header and page table (always resident). */
  metadataBytes(): number {
    return this.mem.u32(0, W_PAGE_TABLE_OFFSET) + this.allocator.pageCount * PAGE_ENTRY_BYTES;
  }

  /** INFO used_memory: allocated chunks and pages plus the pool's own metadata. */
  usedMemory(): number {
    return this.allocator.usedBytes() + this.metadataBytes();
  }

  peakMemory(): number {
    return Math.max(this.allocator.peakBytes() + this.metadataBytes(), this.usedMemory());
  }

  /**
   * Give the memory of every data page back to the OS (MADV_REMOVE punches holes in
   * the shared file), after FLUSHALL emptied the allocator. Skipped while a snapshot
   * is being cut: the pages would change behind the write barrier's back.
   */
  releaseDataPages(): boolean {
    if (this.mapping === null || this.mem.barrier !== null) return false;
    const start = this.allocator.metaPages * PAGE_BYTES;
    return this.mapping.advise(start, this.size - start, MADV_REMOVE);
  }

  /** Mark the pool clean (SHUTDOWN) or in use (start-up), for the warm-restart check. */
  setClean(clean: boolean): void {
    this.mem.setU32(0, W_CLEAN_SHUTDOWN, clean ? 1 : 0);
  }

  close(): void {
    this.mapping?.close();
  }
}
