// Loading a pool image at start-up: map a pool of the image's size (a fresh
// memfd, or the configured pool-path), put the blocks straight into their
// pages while checking every checksum, then validate the pool header the way
// Pool.attach does. No per-key work: roots, allocator metadata and the hash
// seed come back with the meta pages.
//
// The pieces are shared by the file loader (here) and the peer loader
// (src/transport/peer-load.ts, where the receiver writes the pages into the
// pool itself): checkImageFits, mapPoolFor, pageView, attachLoadedPool.
// loadImageFile works in slices that yield to the event loop, so the server
// can already answer -LOADING while a large image comes in; the meta pages
// come first, so the pool can be attached (onPoolReady) long before the
// data pages are in.
import * as fs from 'fs';
import { performance } from 'perf_hooks';
import { PoolFormatError } from '../pool/errors';
import {
  LAYOUT_VERSION, POOL_MAGIC, W_CLEAN_SHUTDOWN, W_DB_COUNT, W_LAYOUT_VERSION, W_MAGIC, W_META_PAGES, W_PAGE_COUNT,
  D_POOL_SIZE,
} from '../pool/layout';
import { SharedMapping, VIEW_BYTES } from '../pool/mapping';
import { PAGE_BYTES } from '../pool/memory';
import { Pool } from '../pool/pool';
import { pageIo } from '../transport/native';
import {
  blockCrc, BLOCK_HEADER_BYTES, IMAGE_HEADER_BYTES, imageBlockOffset, ImageError, type ImageHeader, imageSize, ImageVerifier,
  readImageFile, TRAILER_BYTES,
} from './image';

export interface LoadOptions {
  /** The pool-size option: the image must fit (an image of a smaller pool is loaded at its own size). */
  poolSize: number;
  /** pool-path ('' or undefined = memfd). */
  path?: string;
  /** The databases option: must match the image. */
  databases: number;
}

export interface LoadedImage {
  pool: Pool;
  /** The mapping under the pool (Pool.attach does not own it). */
  mapping: SharedMapping;
  header: ImageHeader;
  seconds: number;
}

/** Throws ImageError / PoolFormatError when an image with header `h` cannot be loaded under `options`. */
export function checkImageFits(h: ImageHeader, options: LoadOptions): void {
  if (h.pageSize !== PAGE_BYTES) throw new ImageError(`page size ${h.pageSize} not supported (this build uses ${PAGE_BYTES})`);
  if (h.layoutVersion !== LAYOUT_VERSION) {
    throw new ImageError(`pool layout version ${h.layoutVersion} not supported (this build uses ${LAYOUT_VERSION})`);
  }
  if (options.poolSize < h.poolSize) {
    throw new PoolFormatError(`the image holds a pool of ${h.poolSize} bytes, larger than pool-size ${options.poolSize}; ` +
      `start with --pool-size ${h.poolSize} or more`);
  }
  if (h.databases !== options.databases) {
    throw new PoolFormatError(`the image has ${h.databases} databases but databases is ${options.databases}`);
  }
}

/** A fresh mapping of the image's pool size (memfd, or pool-path). */
export function mapPoolFor(h: Pick<ImageHeader, 'poolSize'>, options: LoadOptions): SharedMapping {
  return SharedMapping.open({ size: h.poolSize, path: options.path === '' ? undefined : options.path });
}

/** Page `page` of a mapping's views, as a Buffer over the pool's memory (pages never straddle views). */
export function pageView(views: readonly Buffer[], page: number): Buffer {
  const offset = page * PAGE_BYTES;
  const viewIndex = Math.floor(offset / VIEW_BYTES);
  const at = offset - viewIndex * VIEW_BYTES;
  return views[viewIndex]!.subarray(at, at + PAGE_BYTES);
}

/**
 * Once the meta pages are in place: check they describe the geometry the
 * image header announced, attach a Pool over the mapping and mark it in use
 * (only a clean SHUTDOWN marks a /dev/shm pool attachable again).
 */
export function attachLoadedPool(mapping: SharedMapping, header: ImageHeader): Pool {
  const pool = Pool.attach(mapping.views);
  const mem = pool.mem;
  if (mem.u32(0, W_MAGIC) !== POOL_MAGIC || mem.u32(0, W_LAYOUT_VERSION) !== LAYOUT_VERSION ||
      mem.f64(0, D_POOL_SIZE) !== header.poolSize || mem.u32(0, W_PAGE_COUNT) !== header.pageCount ||
      mem.u32(0, W_META_PAGES) !== header.metaPages || mem.u32(0, W_DB_COUNT) !== header.databases) {
    throw new ImageError('meta pages do not match the image header');
  }
  mem.setU32(0, W_CLEAN_SHUTDOWN, 0);
  return pool;
}

/** Load `file` into a new pool, synchronously. Throws ImageError (bad image) or PoolFormatError (does not fit the options). */
export function loadImage(file: string, options: LoadOptions): LoadedImage {
  const started = process.hrtime.bigint();
  let mapping: SharedMapping | null = null;
  try {
    const header = readImageFile(file, {
      onHeader(h) {
        checkImageFits(h, options);
        mapping = mapPoolFor(h, options);
      },
      target: (page) => pageView(mapping!.views, page),
    });
    const m = mapping as SharedMapping | null;
    if (m === null) throw new ImageError('no header');
    const pool = attachLoadedPool(m, header);
    const seconds = Number(process.hrtime.bigint() - started) / 1e9;
    return { pool, mapping: m, header, seconds };
  } catch (err) {
    (mapping as SharedMapping | null)?.close();
    throw err;
  }
}

/** Hooks of an image load that lets the event loop run (file or peer). */
export interface LoadHooks {
  /**
   * The header is read and fits: the load is about to copy `totalBytes`
   * image bytes (INFO loading_total_bytes).
   */
  onStart?(header: ImageHeader, totalBytes: number): void;
  /**
   * The meta pages are in and verified: `pool` can be attached (roots,
   * allocator) while the data pages still arrive. Must not touch data pages.
   * A rejection fails the load.
   */
  onPoolReady?(pool: Pool, header: ImageHeader): void | Promise<void>;
  /** Image bytes in place and verified so far. */
  onProgress?(loadedBytes: number): void;
}

/** Work per slice of loadImageFile's JS fallback before it yields to the event loop (ms). */
const LOAD_SLICE_MS = 25;
/** Blocks per native read batch (one page each): ~25-50 ms of work between event-loop turns. */
const LOAD_BATCH_BLOCKS = 64;

/**
 * Threads reading an image into the pool (POOLKV_LOAD_THREADS, default 4, even on fewer CPUs: with
 * O_DIRECT each spends much of its time waiting for the disk; 4 loaded a cold 1.2 GiB image ~15%
 * faster than 2 on the 2-core reference machine, 8 no faster than 4).
 */
function loadThreads(): number {
  const configured = Number(process.env.POOLKV_LOAD_THREADS);
  if (Number.isInteger(configured) && configured >= 1 && configured <= 8) return configured;
  return 4;
}

/**
 * Load `file` like loadImage, yielding to the event loop between batches
 * (clients get -LOADING meanwhile). Same checks, same messages. With the
 * addon, blocks are read straight into their pages and CRC-checked on
 * several threads (native/image_load.cc); JS verifies every header and CRC in
 * order as each batch comes back.
 */
export async function loadImageFile(file: string, options: LoadOptions, hooks: LoadHooks = {}): Promise<LoadedImage> {
  const started = process.hrtime.bigint();
  let mapping: SharedMapping | null = null;
  let pool: Pool | null = null;
  let handedOut = false;
  const fd = fs.openSync(file, 'r');
  try {
    const fileSize = fs.fstatSync(fd).size;
    const reader = new ImageFileReader(fd, fileSize, file);
    const headerBytes = Buffer.alloc(IMAGE_HEADER_BYTES);
    reader.readExactly(headerBytes, IMAGE_HEADER_BYTES, 'the header');
    const verifier = new ImageVerifier(headerBytes);
    const h = verifier.header;
    checkImageFits(h, options);
    mapping = mapPoolFor(h, options);
    hooks.onStart?.(h, imageSize(h));
    const attachOnce = async (): Promise<void> => {
      pool = attachLoadedPool(mapping!, h);
      if (hooks.onPoolReady !== undefined) {
        handedOut = true;
        await hooks.onPoolReady(pool, h);
      }
    };
    // POOLKV_LOAD_ENGINE=js: the one-block-at-a-time reader even with the addon (tests compare the two).
    const native = process.env.POOLKV_LOAD_ENGINE === 'js' ? null : pageIo();
    if (native !== null) {
      await readBlocksNative(native, fd, reader, verifier, mapping.views, attachOnce, hooks);
    } else {
      await readBlocksInSlices(reader, verifier, mapping.views, attachOnce, hooks);
    }
    const trailer = Buffer.alloc(TRAILER_BYTES);
    reader.readExactly(trailer, TRAILER_BYTES, 'the trailer');
    verifier.checkTrailer(trailer);
    if (fileSize !== reader.pos) throw new ImageError(`${fileSize - reader.pos} unexpected bytes after the trailer (at byte ${reader.pos})`);
    hooks.onProgress?.(reader.pos);
    if (pool === null) throw new ImageError('no meta pages');
    const seconds = Number(process.hrtime.bigint() - started) / 1e9;
    return { pool, mapping, header: h, seconds };
  } catch (err) {
    // A pool already handed out stays mapped: its owner is about to exit without serving it.
    if (!handedOut) (mapping as SharedMapping | null)?.close();
    throw err;
  } finally {
    fs.closeSync(fd);
  }
}

/**
 * A second descriptor on the image with O_DIRECT (the addon then reads around
 * the page cache), or null: POOLKV_LOAD_DIRECT=0, or a filesystem without it.
 */
function openDirect(file: string): number | null {
  if (process.env.POOLKV_LOAD_DIRECT === '0' || fs.constants.O_DIRECT === undefined) return null;
  try {
    return fs.openSync(file, fs.constants.O_RDONLY | fs.constants.O_DIRECT);
  } catch {
    return null;
  }
}

/** Sequential reads of an image file that name what a short file cut off. */
class ImageFileReader {
  pos = 0;
  constructor(private readonly fd: number, readonly fileSize: number, readonly path: string) {}

  readExactly(target: Buffer, len: number, what: string): void {
    let done = 0;
    while (done < len) {
      const n = fs.readSync(this.fd, target, done, len - done, this.pos + done);
      if (n === 0) throw this.truncated(this.pos + done, what);
      done += n;
    }
    this.pos += len;
  }

  truncated(at: number, what: string): ImageError {
    return new ImageError(`truncated at byte ${at} (inside ${what}; file is ${this.fileSize} bytes)`);
  }
}

/** Every block through the addon, in batches; the verifier sees each header and CRC in order. */
async function readBlocksNative(
  native: NonNullable<ReturnType<typeof pageIo>>, fd: number, reader: ImageFileReader, verifier: ImageVerifier,
  views: readonly Buffer[], attachOnce: () => Promise<void>, hooks: LoadHooks,
): Promise<void> {
  const h = verifier.header;
  const stride = BLOCK_HEADER_BYTES + PAGE_BYTES;
  // Blocks the file holds whole; a cut-off one is reported below as the JS reader would.
  const whole = Math.min(h.blockCount, Math.max(0, Math.floor((reader.fileSize - IMAGE_HEADER_BYTES) / stride)));
  const headers = Buffer.alloc(LOAD_BATCH_BLOCKS * BLOCK_HEADER_BYTES);
  const crcs = new Uint32Array(LOAD_BATCH_BLOCKS);
  const threads = loadThreads();
  const directFd = openDirect(reader.path);
  try {
    await readBatches();
  } finally {
    if (directFd !== null) fs.closeSync(directFd);
  }
  async function readBatches(): Promise<void> {
    let block = 0;
    while (block < whole) {
      // The meta pages form the first batch, so the pool can be attached before the data pages come in.
      const end = block < h.metaPages ? Math.min(h.metaPages, whole) : whole;
      const count = Math.min(LOAD_BATCH_BLOCKS, end - block);
      let done: number;
      try {
        done = await native.readImageBlocks({
          fd: directFd ?? fd, direct: directFd !== null, first: imageBlockOffset(h, block), stride, count, pageSize: PAGE_BYTES,
          pageCount: h.pageCount, views, viewBytes: VIEW_BYTES, headers, crcs, threads,
        });
      } catch (err) {
        const failed = block + ((err as { block?: number }).block ?? 0);
        throw new ImageError(`block ${failed} (at byte ${imageBlockOffset(h, failed)}): ${(err as Error).message}`);
      }
      for (let i = 0; i <= done && i < count; i++) {
        const blockHeader = headers.subarray(i * BLOCK_HEADER_BYTES, (i + 1) * BLOCK_HEADER_BYTES);
        verifier.checkBlockHeader(blockHeader, imageBlockOffset(h, block + i));
        if (i === done) throw new ImageError(`block ${block + i}: refused by the loader`); // checkBlockHeader names why first
        verifier.acceptBlock(blockHeader, crcs[i]!);
      }
      block += done;
      if (block === h.metaPages) await attachOnce();
      hooks.onProgress?.(imageBlockOffset(h, block));
    }
    reader.pos = imageBlockOffset(h, block);
  }
  if (whole < h.blockCount) {
    // The file ends inside block `whole`: its header first (as far as it goes), then the payload.
    const at = reader.pos;
    const blockHeader = Buffer.alloc(BLOCK_HEADER_BYTES);
    reader.readExactly(blockHeader, BLOCK_HEADER_BYTES, `the header of block ${whole}`);
    const { page } = verifier.checkBlockHeader(blockHeader, at);
    throw reader.truncated(reader.fileSize, `block ${whole} (page ${page}, at byte ${at})`);
  }
}

/** Without the addon: one block at a time on this thread, yielding every LOAD_SLICE_MS. */
async function readBlocksInSlices(
  reader: ImageFileReader, verifier: ImageVerifier, views: readonly Buffer[], attachOnce: () => Promise<void>,
  hooks: LoadHooks,
): Promise<void> {
  const h = verifier.header;
  const blockHeader = Buffer.alloc(BLOCK_HEADER_BYTES);
  let sliceStart = performance.now();
  for (let block = 0; block < h.blockCount; block++) {
    const at = reader.pos;
    reader.readExactly(blockHeader, BLOCK_HEADER_BYTES, `the header of block ${block}`);
    const { page } = verifier.checkBlockHeader(blockHeader, at);
    const target = pageView(views, page);
    reader.readExactly(target, PAGE_BYTES, `block ${block} (page ${page}, at byte ${at})`);
    verifier.acceptBlock(blockHeader, blockCrc(page, target));
    if (block === h.metaPages - 1) await attachOnce();
    if (performance.now() - sliceStart >= LOAD_SLICE_MS) {
      hooks.onProgress?.(reader.pos);
      await new Promise<void>((resolve) => setImmediate(resolve));
      sliceStart = performance.now();
    }
  }
}

/**
 * Whether `path` holds a cleanly shut down pool that Pool.open would attach
 * (read from the file's header without mapping it), so start-up knows not to
 * replace it with an image.
 */
export function isCleanPoolFile(path: string, size: number, databases: number): boolean {
  try {
    if (!fs.existsSync(path) || fs.statSync(path).size !== size) return false;
    const fd = fs.openSync(path, 'r');
    try {
      const b = Buffer.alloc(128);
      fs.readSync(fd, b, 0, 128, 0);
      return b.readUInt32LE(W_MAGIC * 4) === POOL_MAGIC && b.readUInt32LE(W_LAYOUT_VERSION * 4) === LAYOUT_VERSION &&
        b.readDoubleLE(D_POOL_SIZE * 8) === size && b.readUInt32LE(W_CLEAN_SHUTDOWN * 4) === 1 &&
        b.readUInt32LE(W_DB_COUNT * 4) === databases;
    } finally {
      fs.closeSync(fd);
    }
  } catch {
    return false;
  }
}
