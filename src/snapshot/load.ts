// Loading a pool image at start-up: map a pool of the image's size (a fresh
// memfd, or the configured pool-path), read the blocks straight into their
// pages while checking every checksum, then validate the pool header the way
// Pool.attach does. No per-key work: roots, allocator metadata and the hash
// seed come back with the meta pages.
import * as fs from 'fs';
import { PoolFormatError } from '../pool/errors';
import {
  LAYOUT_VERSION, POOL_MAGIC, W_CLEAN_SHUTDOWN, W_DB_COUNT, W_LAYOUT_VERSION, W_MAGIC, W_META_PAGES, W_PAGE_COUNT,
  D_POOL_SIZE,
} from '../pool/layout';
import { SharedMapping } from '../pool/mapping';
import { PAGE_BYTES, refOfPage } from '../pool/memory';
import { Pool } from '../pool/pool';
import { ImageError, type ImageHeader, readImageFile } from './image';

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

/** Load `file` into a new pool. Throws ImageError (bad image) or PoolFormatError (does not fit the options). */
export function loadImage(file: string, options: LoadOptions): LoadedImage {
  const started = process.hrtime.bigint();
  let mapping: SharedMapping | null = null;
  try {
    const header = readImageFile(file, {
      onHeader(h) {
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
        mapping = SharedMapping.open({ size: h.poolSize, path: options.path === '' ? undefined : options.path });
      },
      target(page) {
        const m = mapping!;
        const ref = refOfPage(page);
        const viewIndex = Math.floor(page * PAGE_BYTES / 2 ** 30);
        const view = m.views[viewIndex]!;
        const at = (ref * 8) - viewIndex * 2 ** 30;
        return view.subarray(at, at + PAGE_BYTES);
      },
    });
    const m = mapping as SharedMapping | null;
    if (m === null) throw new ImageError('no header');
    const pool = Pool.attach(m.views);
    const mem = pool.mem;
    // The meta pages must describe the geometry the header announced.
    if (mem.u32(0, W_MAGIC) !== POOL_MAGIC || mem.u32(0, W_LAYOUT_VERSION) !== LAYOUT_VERSION ||
        mem.f64(0, D_POOL_SIZE) !== header.poolSize || mem.u32(0, W_PAGE_COUNT) !== header.pageCount ||
        mem.u32(0, W_META_PAGES) !== header.metaPages || mem.u32(0, W_DB_COUNT) !== header.databases) {
      throw new ImageError('meta pages do not match the image header');
    }
    // In use from now on (only a clean SHUTDOWN marks a /dev/shm pool attachable).
    mem.setU32(0, W_CLEAN_SHUTDOWN, 0);
    const seconds = Number(process.hrtime.bigint() - started) / 1e9;
    return { pool, mapping: m, header, seconds };
  } catch (err) {
    (mapping as SharedMapping | null)?.close();
    throw err;
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
