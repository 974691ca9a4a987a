// The pool image format (docs/snapshot-format.md): a header, the meta pages,
// one block per page in use, and a trailer. Every block carries a CRC32 of
// its own header fields and payload; the trailer carries a CRC32 chained over
// the image header, every block header (each holding its block's CRC) and the
// trailer's own fields, so one value vouches for the whole image without
// hashing the payload twice.
import * as fs from 'fs';
import { crc32 } from 'zlib';
import { pageIo } from '../transport/native';

export const IMAGE_MAGIC = Buffer.from('PKVIMG01', 'latin1');
export const TRAILER_MAGIC = Buffer.from('PKVIMEND', 'latin1');
export const IMAGE_FORMAT_VERSION = 1;
export const IMAGE_HEADER_BYTES = 128;
export const BLOCK_HEADER_BYTES = 16;
export const TRAILER_BYTES = 24;
const BLOCK_TAG = 0x4b4c4250; // "PBLK" little-endian

export interface ImageHeader {
  formatVersion: number;
  /** The pool's layout version (src/pool/layout.ts LAYOUT_VERSION) at save time. */
  layoutVersion: number;
  poolSize: number;
  pageSize: number;
  pageCount: number;
  metaPages: number;
  databases: number;
  /** Bytes in allocated chunks and pages (the allocator's used bytes) at the cut. */
  usedBytes: number;
  /** ms since the epoch when the cut was taken. */
  createdAt: number;
  /** Blocks after the header: meta pages first, then data pages in ascending order. */
  blockCount: number;
  /** Of which data pages (blockCount - metaPages). */
  dataPages: number;
}

/** An image that cannot be loaded; the message says exactly where and why. */
export class ImageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ImageError';
  }
}

export function imageSize(h: Pick<ImageHeader, 'blockCount' | 'pageSize'>): number {
  return IMAGE_HEADER_BYTES + h.blockCount * (BLOCK_HEADER_BYTES + h.pageSize) + TRAILER_BYTES;
}

export function encodeHeader(h: ImageHeader): Buffer {
  const b = Buffer.alloc(IMAGE_HEADER_BYTES);
  IMAGE_MAGIC.copy(b, 0);
  b.writeUInt32LE(h.formatVersion, 8);
  b.writeUInt32LE(IMAGE_HEADER_BYTES, 12);
  b.writeDoubleLE(h.poolSize, 16);
  b.writeUInt32LE(h.pageSize, 24);
  b.writeUInt32LE(h.pageCount, 28);
  b.writeUInt32LE(h.metaPages, 32);
  b.writeUInt32LE(h.databases, 36);
  b.writeDoubleLE(h.usedBytes, 40);
  b.writeDoubleLE(h.createdAt, 48);
  b.writeUInt32LE(h.blockCount, 56);
  b.writeUInt32LE(h.dataPages, 60);
  b.writeUInt32LE(h.layoutVersion, 64);
  b.writeUInt32LE(crc32(b.subarray(0, IMAGE_HEADER_BYTES - 4)), IMAGE_HEADER_BYTES - 4);
  return b;
}

/** Parse and check a header (magic, version, header checksum, geometry sanity). */
export function decodeHeader(b: Buffer): ImageHeader {
  if (b.length < IMAGE_HEADER_BYTES) throw new ImageError(`truncated at byte ${b.length} (inside the ${IMAGE_HEADER_BYTES}-byte header)`);
  if (!b.subarray(0, 8).equals(IMAGE_MAGIC)) {
    throw new ImageError(`not a poolkv pool image (bad magic ${JSON.stringify(b.toString('latin1', 0, 8))}, expected "PKVIMG01")`);
  }
  const formatVersion = b.readUInt32LE(8);
  if (formatVersion !== IMAGE_FORMAT_VERSION) {
    throw new ImageError(`format version ${formatVersion} not supported (this build reads version ${IMAGE_FORMAT_VERSION})`);
  }
  const stored = b.readUInt32LE(IMAGE_HEADER_BYTES - 4);
  const computed = crc32(b.subarray(0, IMAGE_HEADER_BYTES - 4));
  if (stored !== computed) throw new ImageError(`header: checksum mismatch (stored ${hex(stored)}, computed ${hex(computed)})`);
  const h: ImageHeader = {
    formatVersion,
    poolSize: b.readDoubleLE(16),
    pageSize: b.readUInt32LE(24),
    pageCount: b.readUInt32LE(28),
    metaPages: b.readUInt32LE(32),
    databases: b.readUInt32LE(36),
    usedBytes: b.readDoubleLE(40),
    createdAt: b.readDoubleLE(48),
    blockCount: b.readUInt32LE(56),
    dataPages: b.readUInt32LE(60),
    layoutVersion: b.readUInt32LE(64),
  };
  if (b.readUInt32LE(12) !== IMAGE_HEADER_BYTES) throw new ImageError(`header: length ${b.readUInt32LE(12)} not supported`);
  if (h.blockCount !== h.metaPages + h.dataPages || h.metaPages < 1 || h.pageCount < h.metaPages + 1 ||
      h.blockCount > h.pageCount || h.poolSize < h.pageCount * h.pageSize) {
    throw new ImageError(`header: inconsistent geometry (pool ${h.poolSize} bytes, ${h.pageCount} pages of ${h.pageSize}, ` +
      `${h.metaPages} meta pages, ${h.blockCount} blocks)`);
  }
  return h;
}

export function hex(n: number): string {
  return `0x${(n >>> 0).toString(16).padStart(8, '0')}`;
}

/** Block header: tag, page index, payload length, CRC32 over (tag, page, length) then the payload. */
export function blockFieldsCrc(page: number, length: number): number {
  const f = Buffer.allocUnsafe(12);
  f.writeUInt32LE(BLOCK_TAG, 0);
  f.writeUInt32LE(page, 4);
  f.writeUInt32LE(length, 8);
  return crc32(f);
}

export function encodeBlockHeader(page: number, length: number, crc: number): Buffer {
  const b = Buffer.allocUnsafe(BLOCK_HEADER_BYTES);
  b.writeUInt32LE(BLOCK_TAG, 0);
  b.writeUInt32LE(page, 4);
  b.writeUInt32LE(length, 8);
  b.writeUInt32LE(crc >>> 0, 12);
  return b;
}

/** The whole-image CRC: chained over the header, every block header and the trailer's first 16 bytes. */
export class ImageChecksum {
  value = 0;
  add(bytes: Buffer): void {
    this.value = crc32(bytes, this.value);
  }
}

export function encodeTrailer(blockCount: number, dataBytes: number, sum: ImageChecksum): Buffer {
  const b = Buffer.alloc(TRAILER_BYTES);
  TRAILER_MAGIC.copy(b, 0);
  b.writeUInt32LE(blockCount, 8);
  b.writeUInt32LE(0, 12);
  b.writeUInt32LE(dataBytes % 2 ** 32, 16);
  sum.add(b.subarray(0, 20));
  b.writeUInt32LE(sum.value >>> 0, 20);
  return b;
}

export interface ReadImageOptions {
  /** Where block payloads go: a Buffer of exactly pageSize bytes for `page` (e.g. the pool's own page). */
  target(page: number, header: ImageHeader): Buffer;
  /** Called once the header is read and checked, before any block is read. */
  onHeader?(header: ImageHeader): void;
}

/**
 * Read and validate an image file, placing each page where `target` says.
 * Throws ImageError with the block, page and byte offset of the first problem.
 */
export function readImageFile(file: string, options: ReadImageOptions): ImageHeader {
  const fd = fs.openSync(file, 'r');
  try {
    const fileSize = fs.fstatSync(fd).size;
    let pos = 0;
    const readExactly = (target: Buffer, start: number, len: number, what: string): void => {
      let done = 0;
      while (done < len) {
        const n = fs.readSync(fd, target, start + done, len - done, pos + done);
        if (n === 0) throw new ImageError(`truncated at byte ${pos + done} (inside ${what}; file is ${fileSize} bytes)`);
        done += n;
      }
      pos += len;
    };
    const headerBytes = Buffer.alloc(IMAGE_HEADER_BYTES);
    readExactly(headerBytes, 0, IMAGE_HEADER_BYTES, 'the header');
    const h = decodeHeader(headerBytes);
    options.onHeader?.(h);
    const sum = new ImageChecksum();
    sum.add(headerBytes);
    const bh = Buffer.alloc(BLOCK_HEADER_BYTES);
    let lastPage = -1;
    for (let block = 0; block < h.blockCount; block++) {
      const at = pos;
      readExactly(bh, 0, BLOCK_HEADER_BYTES, `the header of block ${block}`);
      const tag = bh.readUInt32LE(0);
      const page = bh.readUInt32LE(4);
      const length = bh.readUInt32LE(8);
      const stored = bh.readUInt32LE(12);
      const where = `block ${block} (page ${page}, at byte ${at})`;
      if (tag !== BLOCK_TAG) throw new ImageError(`block ${block} (at byte ${at}): bad block tag ${hex(tag)}`);
      if (length !== h.pageSize) throw new ImageError(`${where}: length ${length} is not the page size ${h.pageSize}`);
      if (page >= h.pageCount || page <= lastPage || (block < h.metaPages) !== (page < h.metaPages)) {
        throw new ImageError(`${where}: page index out of order or out of range (pool has ${h.pageCount} pages, ${h.metaPages} meta)`);
      }
      lastPage = page;
      const target = options.target(page, h);
      readExactly(target, 0, length, where);
      const computed = crc32(target.subarray(0, length), blockFieldsCrc(page, length));
      if (computed !== stored) {
        throw new ImageError(`block ${block} (page ${page}): checksum mismatch (stored ${hex(stored)}, computed ${hex(computed)})`);
      }
      sum.add(bh);
    }
    const trailer = Buffer.alloc(TRAILER_BYTES);
    readExactly(trailer, 0, TRAILER_BYTES, 'the trailer');
    if (!trailer.subarray(0, 8).equals(TRAILER_MAGIC)) throw new ImageError(`trailer (at byte ${pos - TRAILER_BYTES}): bad trailer magic`);
    if (trailer.readUInt32LE(8) !== h.blockCount) {
      throw new ImageError(`trailer: ${trailer.readUInt32LE(8)} blocks recorded, header says ${h.blockCount}`);
    }
    sum.add(trailer.subarray(0, 20));
    const stored = trailer.readUInt32LE(20);
    if (stored !== sum.value >>> 0) {
      throw new ImageError(`image checksum mismatch (stored ${hex(stored)}, computed ${hex(sum.value)})`);
    }
    if (fileSize !== pos) throw new ImageError(`${fileSize - pos} unexpected bytes after the trailer (at byte ${pos})`);
    return h;
  } finally {
    fs.closeSync(fd);
  }
}

/**
 * Checks an image block by block as it arrives from anywhere (a file read in
 * slices, a peer's stream, pages written straight into a pool): the same
 * rules and messages as readImageFile, and the whole-image checksum chained
 * along the way. Feed it the header, then for each block its header and its
 * payload's CRC, then the trailer.
 */
export class ImageVerifier {
  readonly header: ImageHeader;
  /** The next block expected (= blocks accepted so far). */
  nextBlock = 0;
  private lastPage = -1;
  private readonly sum = new ImageChecksum();

  /** Decodes and checks `encodedHeader` (throws ImageError). */
  constructor(encodedHeader: Buffer) {
    this.header = decodeHeader(encodedHeader);
    this.sum.add(encodedHeader.subarray(0, IMAGE_HEADER_BYTES));
  }

  /**
   * Check the next block's 16-byte header before its payload is trusted:
   * tag, length, page order and range. Returns the page and the stored CRC.
   * `at` (a byte offset) only makes messages more precise.
   */
  checkBlockHeader(blockHeader: Buffer, at = imageBlockOffset(this.header, this.nextBlock)): { page: number; crc: number } {
    const h = this.header;
    const block = this.nextBlock;
    if (block >= h.blockCount) throw new ImageError(`block ${block}: the image has only ${h.blockCount} blocks`);
    if (blockHeader.length < BLOCK_HEADER_BYTES) throw new ImageError(`block ${block}: short block header (${blockHeader.length} bytes)`);
    const tag = blockHeader.readUInt32LE(0);
    const page = blockHeader.readUInt32LE(4);
    const length = blockHeader.readUInt32LE(8);
    const where = `block ${block} (page ${page}, at byte ${at})`;
    if (tag !== BLOCK_TAG) throw new ImageError(`block ${block} (at byte ${at}): bad block tag ${hex(tag)}`);
    if (length !== h.pageSize) throw new ImageError(`${where}: length ${length} is not the page size ${h.pageSize}`);
    if (page >= h.pageCount || page <= this.lastPage || (block < h.metaPages) !== (page < h.metaPages)) {
      throw new ImageError(`${where}: page index out of order or out of range (pool has ${h.pageCount} pages, ${h.metaPages} meta)`);
    }
    return { page, crc: blockHeader.readUInt32LE(12) };
  }

  /**
   * Accept the block whose header passed checkBlockHeader, given the CRC
   * computed over its payload (crc32(payload, blockFieldsCrc(page, length))).
   */
  acceptBlock(blockHeader: Buffer, computedCrc: number): void {
    const block = this.nextBlock;
    const page = blockHeader.readUInt32LE(4);
    const stored = blockHeader.readUInt32LE(12);
    if ((computedCrc >>> 0) !== stored) {
      throw new ImageError(`block ${block} (page ${page}): checksum mismatch (stored ${hex(stored)}, computed ${hex(computedCrc)})`);
    }
    this.sum.add(blockHeader.subarray(0, BLOCK_HEADER_BYTES));
    this.lastPage = page;
    this.nextBlock++;
  }

  /** Check the trailer once every block was accepted (throws ImageError). */
  checkTrailer(trailer: Buffer): void {
    const h = this.header;
    if (this.nextBlock !== h.blockCount) throw new ImageError(`trailer after ${this.nextBlock} of ${h.blockCount} blocks`);
    if (trailer.length !== TRAILER_BYTES || !trailer.subarray(0, 8).equals(TRAILER_MAGIC)) {
      throw new ImageError(`trailer (at byte ${imageSize(h) - TRAILER_BYTES}): bad trailer magic`);
    }
    if (trailer.readUInt32LE(8) !== h.blockCount) {
      throw new ImageError(`trailer: ${trailer.readUInt32LE(8)} blocks recorded, header says ${h.blockCount}`);
    }
    const sum = new ImageChecksum();
    sum.value = this.sum.value;
    sum.add(trailer.subarray(0, 20));
    const stored = trailer.readUInt32LE(20);
    if (stored !== sum.value >>> 0) throw new ImageError(`image checksum mismatch (stored ${hex(stored)}, computed ${hex(sum.value)})`);
  }
}

/** Byte offset of block `index` in an image file (its block header's first byte). */
export function imageBlockOffset(h: Pick<ImageHeader, 'pageSize'>, index: number): number {
  return IMAGE_HEADER_BYTES + index * (BLOCK_HEADER_BYTES + h.pageSize);
}

/** The CRC a block header must carry for `payload` at `page` (the addon's PCLMULQDQ CRC32 when built; equal to zlib's). */
export function blockCrc(page: number, payload: Buffer): number {
  const native = pageIo();
  const seed = blockFieldsCrc(page, payload.length);
  return native !== null ? native.crc32(payload, seed) : crc32(payload, seed);
}
