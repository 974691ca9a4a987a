// BGSAVE's file writes with O_DIRECT: the image is assembled, in file order,
// in 4 MiB chunks of aligned memory and each chunk goes to the disk in one
// write that bypasses the page cache.
//
// Why: a buffered write makes the kernel allocate and fill a page-cache page
// for every 4 KiB of the image, on the saving thread and then again in the
// writeback workers; on the 2-core reference machine that CPU work, not the
// disk, set BGSAVE's pace and competed with the event loop. With O_DIRECT the
// device reads the chunk straight from our memory. The cut copies each page
// (with its CRC) straight into its place in a chunk (acquireBuffer), so the
// bytes are copied once between the pool and the disk.
//
// O_DIRECT wants aligned memory, offsets and lengths. Blocks are 16 + 1 MiB
// long, so chunk boundaries fall inside blocks: a chunk is written up to its
// last 4 KiB boundary and the few bytes after it are carried to the start of
// the next chunk, which begins at that boundary in the file. The very end is
// padded to 4 KiB and the file is then truncated to the image's length.
import * as fs from 'fs';
import { type PageIoNative } from './native';

/** 4 MiB writes keep the device busy (dd: the same rate as 8 MiB) at half the memory per chunk. */
const CHUNK_BYTES = 4 * 1024 * 1024;
const ALIGN = 4096;
/** Room past CHUNK_BYTES: a block that starts just before the mark (16 + 1 MiB), the carry, the trailer. */
const CHUNK_SLACK = 1024 * 1024 + 2 * ALIGN;
/** Chunk writes in flight before write() makes the cut wait. */
const MAX_FLUSHING = 2;
const BLOCK_HEADER_BYTES = 16;

interface Chunk {
  buf: Buffer;
  /** File offset of buf[0] (a multiple of ALIGN). */
  fileOffset: number;
  /** Bytes placed or reserved from buf[0]. */
  used: number;
  /** Blocks reserved in this chunk whose header is not written yet. */
  open: number;
  /** No more reservations: the next chunk took over. */
  sealed: boolean;
}

interface Slot {
  chunk: Chunk;
  at: number;
  payload: Buffer;
}

export class DirectImageWriter {
  private readonly free: Buffer[] = [];
  /** Chunks in file order that are not written yet; the last one takes reservations. */
  private readonly chunks: Chunk[] = [];
  private readonly slots: Slot[] = [];
  private readonly flushing = new Set<Promise<void>>();
  private failure: Error | null = null;
  private size = 0;

  private constructor(readonly native: PageIoNative, private readonly handle: fs.promises.FileHandle) {}

  /** Open `file` for O_DIRECT writing; null when the filesystem refuses O_DIRECT (EINVAL). */
  static async open(native: PageIoNative, file: string): Promise<DirectImageWriter | null> {
    const flags = fs.constants.O_WRONLY | fs.constants.O_CREAT | fs.constants.O_TRUNC | fs.constants.O_DIRECT;
    let handle: fs.promises.FileHandle;
    try {
      handle = await fs.promises.open(file, flags, 0o644);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'EINVAL') return null;
      throw err;
    }
    return new DirectImageWriter(native, handle);
  }

  /** Append bytes that need no slot (the image header). */
  append(bytes: Buffer): void {
    const at = this.reserve(bytes.length);
    bytes.copy(at.chunk.buf, at.at);
  }

  /** The place of the next block's payload; blocks must be acquired in image order. */
  acquire(pageBytes: number): Buffer {
    const at = this.reserve(BLOCK_HEADER_BYTES + pageBytes);
    at.chunk.open++;
    const payload = at.chunk.buf.subarray(at.at + BLOCK_HEADER_BYTES, at.at + BLOCK_HEADER_BYTES + pageBytes);
    this.slots.push({ chunk: at.chunk, at: at.at, payload });
    return payload;
  }

  /** Block written by the cut: its header goes in front of its payload, full chunks go to disk. */
  async write(header: Buffer, payload: Buffer): Promise<void> {
    this.throwIfFailed();
    let slot = this.slots[0];
    if (slot === undefined) {
      // The cut filled a buffer of its own: place a copy.
      this.acquire(payload.length);
      slot = this.slots[0]!;
      payload.copy(slot.payload);
    } else if (slot.payload.buffer !== payload.buffer || slot.payload.byteOffset !== payload.byteOffset) {
      throw new Error('internal error: snapshot blocks written out of the order their buffers were acquired');
    }
    this.slots.shift();
    header.copy(slot.chunk.buf, slot.at);
    slot.chunk.open--;
    this.flushReady();
    while (this.flushing.size > MAX_FLUSHING) await Promise.race(this.flushing);
    this.throwIfFailed();
  }

  /** Append the trailer, write everything out (the end padded, then truncated), fsync. */
  async finish(trailer: Buffer): Promise<void> {
    this.throwIfFailed();
    this.append(trailer);
    const last = this.chunks[this.chunks.length - 1]!;
    last.sealed = true;
    this.flushReady();
    await Promise.all(this.flushing);
    this.throwIfFailed();
    await this.handle.truncate(this.size);
    await this.handle.sync();
  }

  /** Wait for writes in flight (they use our memory), then close. */
  async close(): Promise<void> {
    await Promise.allSettled(this.flushing);
    await this.handle.close();
  }

  private throwIfFailed(): void {
    if (this.failure !== null) throw this.failure;
  }

  private reserve(bytes: number): { chunk: Chunk; at: number } {
    let chunk = this.chunks[this.chunks.length - 1];
    if (chunk === undefined || chunk.used >= CHUNK_BYTES) {
      const next: Chunk = { buf: this.chunkBuffer(), fileOffset: 0, used: 0, open: 0, sealed: false };
      if (chunk !== undefined) {
        // The next chunk starts at the last 4 KiB boundary of this one; the bytes after it move over when this one is written.
        const aligned = chunk.used - (chunk.used % ALIGN);
        next.fileOffset = chunk.fileOffset + aligned;
        next.used = chunk.used - aligned;
        chunk.sealed = true;
      }
      this.chunks.push(next);
      chunk = next;
    }
    const at = chunk.used;
    chunk.used += bytes;
    this.size += bytes;
    return { chunk, at };
  }

  /** Write every leading chunk that is sealed and complete. */
  private flushReady(): void {
    while (this.chunks.length > 0) {
      const chunk = this.chunks[0]!;
      if (!chunk.sealed || chunk.open > 0) return;
      this.chunks.shift();
      const next = this.chunks[0];
      let length: number;
      if (next !== undefined) {
        length = chunk.used - (chunk.used % ALIGN);
        chunk.buf.copy(next.buf, 0, length, chunk.used); // the carry: bytes past the boundary
      } else {
        // The end of the image: pad to the boundary (finish() truncates the padding away).
        length = Math.ceil(chunk.used / ALIGN) * ALIGN;
        chunk.buf.fill(0, chunk.used, length);
      }
      const write = this.writeFully(chunk.buf, length, chunk.fileOffset).then(
        () => { this.free.push(chunk.buf); },
        (err: unknown) => {
          const e = err instanceof Error ? err : new Error(String(err));
          // A device needing more than 4 KiB alignment: say how to write without O_DIRECT.
          if ((err as NodeJS.ErrnoException).code === 'EINVAL') e.message += ' (O_DIRECT write refused; POOLKV_SNAPSHOT_DIRECT=0 writes through the page cache)';
          this.failure ??= e;
        },
      ).finally(() => { this.flushing.delete(write); });
      this.flushing.add(write);
    }
  }

  private async writeFully(buf: Buffer, length: number, position: number): Promise<void> {
    let done = 0;
    while (done < length) {
      const { bytesWritten } = await this.handle.write(buf, done, length - done, position + done);
      if (bytesWritten === 0) throw new Error(`short write at byte ${position + done}`);
      done += bytesWritten;
    }
  }

  private chunkBuffer(): Buffer {
    return this.free.pop() ?? this.native.alignedBuffer(CHUNK_BYTES + CHUNK_SLACK);
  }
}
