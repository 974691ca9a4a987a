// The consistent cut: a point-in-time image of the pool without fork().
//
// open(): in one synchronous step, copy the meta pages (header, class table,
// database roots, page table), read from that copy which pages are in use at
// this instant (class != FREE and below the first never-used page), and
// install PoolMemory's write barrier. From then on, the first write to a page
// of the cut that has not been shipped yet first copies the page's pre-image
// aside; the worker walks the cut's pages in order and ships, for each page,
// either that pre-image or (never written since the cut) a fresh copy of the
// live page. Either way the bytes are the page as it was at the instant.
//
// Memory beyond the pool: the meta copy, one staging page, and one pre-image
// per page written during the save (each freed once shipped). Live pool
// memory is never handed to I/O: every block is a private copy.
import { performance } from 'perf_hooks';
import { crc32 } from 'zlib';
import {
  D_USED_BYTES, LAYOUT_VERSION, P_CLASS, PAGE_ENTRY_BYTES, PAGE_FREE, W_DB_COUNT, W_META_PAGES, W_PAGE_COUNT,
  W_PAGE_TABLE_OFFSET, W_UNTOUCHED_PAGE,
} from '../pool/layout';
import { PAGE_BYTES, type PoolMemory, refOfPage } from '../pool/memory';
import type { Pool } from '../pool/pool';
import { PoolDict } from '../store/dict';
import type { SnapshotSink } from '../transport/sink';
import { blockFieldsCrc, encodeBlockHeader, encodeHeader, encodeTrailer, IMAGE_FORMAT_VERSION, ImageChecksum, type ImageHeader, imageSize } from './image';

const PENDING = 1; // in the cut, not shipped, not written since the cut
const CAPTURED = 2; // in the cut, pre-image held aside
// 0: not in the cut, or already taken by the worker

/** CRC work per step, so one slice never hashes a whole page (~0.6 ms per MiB). */
const CRC_CHUNK = 64 * 1024;
/** Spare page buffers kept for reuse (fresh 1 MiB allocations cost page faults). */
const SPARE_BUFFERS = 8;

export interface CutOptions {
  /** Work per slice before yielding to the event loop (ms). */
  sliceMs?: number;
}

export class CutAbortedError extends Error {
  constructor(reason: string) {
    super(reason);
    this.name = 'CutAbortedError';
  }
}

type Step = 'slice' | Promise<void> | void;

export class ConsistentCut {
  readonly header: ImageHeader;
  /** Image bytes shipped so far / in all. */
  bytesDone = 0;
  readonly bytesTotal: number;
  /** Bytes currently held as pre-images, and the most held at once (Redis's cow size). */
  preimageBytes = 0;
  preimagePeak = 0;
  /** Pre-images taken in all. */
  preimagesTaken = 0;
  readonly startedAt = Date.now();
  /** Longest synchronous stretch of worker work (ms), for the "loop never stalls" check. */
  longestSliceMs = 0;
  finished = false;

  private readonly mem: PoolMemory;
  private readonly meta: Buffer;
  private readonly metaPages: number;
  private readonly pages: Uint32Array;
  private readonly state: Uint8Array;
  private readonly preimages = new Map<number, Buffer>();
  private readonly spare: Buffer[] = [];
  private readonly sliceMs: number;
  private abortReason: string | null = null;
  private installed = false;
  private readonly savedCanResize: boolean;

  private constructor(pool: Pool, private readonly sink: SnapshotSink, options: CutOptions) {
    this.mem = pool.mem;
    this.sliceMs = options.sliceMs ?? 0.5;
    const mem = this.mem;
    if (mem.barrier !== null) throw new Error('a snapshot is already in progress');
    // ---- the instant: everything below runs without yielding ----
    this.metaPages = mem.u32(0, W_META_PAGES);
    this.meta = Buffer.allocUnsafeSlow(this.metaPages * PAGE_BYTES);
    mem.copyOut(0, 0, this.meta.length, this.meta, 0);
    const meta = this.meta;
    const pageCount = meta.readUInt32LE(W_PAGE_COUNT * 4);
    const untouched = meta.readUInt32LE(W_UNTOUCHED_PAGE * 4);
    const ptOffset = meta.readUInt32LE(W_PAGE_TABLE_OFFSET * 4);
    this.state = new Uint8Array(pageCount);
    const inUse: number[] = [];
    for (let page = this.metaPages; page < untouched && page < pageCount; page++) {
      if (meta.readUInt32LE(ptOffset + page * PAGE_ENTRY_BYTES + P_CLASS * 4) !== PAGE_FREE) {
        inUse.push(page);
        this.state[page] = PENDING;
      }
    }
    this.pages = Uint32Array.from(inUse);
    this.savedCanResize = PoolDict.canResize;
    PoolDict.canResize = false;
    mem.barrier = (page) => this.onWrite(page);
    this.installed = true;
    // ---- end of the instant ----
    const blockCount = this.metaPages + inUse.length;
    this.header = {
      formatVersion: IMAGE_FORMAT_VERSION,
      layoutVersion: LAYOUT_VERSION,
      poolSize: pool.size,
      pageSize: PAGE_BYTES,
      pageCount,
      metaPages: this.metaPages,
      databases: meta.readUInt32LE(W_DB_COUNT * 4),
      usedBytes: meta.readDoubleLE(D_USED_BYTES * 8),
      createdAt: this.startedAt,
      blockCount,
      dataPages: inUse.length,
    };
    this.bytesTotal = imageSize(this.header);
  }

  /** Take the cut now (synchronously) and return the worker, not yet started. */
  static open(pool: Pool, sink: SnapshotSink, options: CutOptions = {}): ConsistentCut {
    return new ConsistentCut(pool, sink, options);
  }

  get sinkDescription(): string {
    return this.sink.description;
  }

  /** Pages in the cut (data pages, meta excluded). */
  get dataPages(): number {
    return this.pages.length;
  }

  /** The write barrier: keep the pre-image of a cut page not yet shipped. */
  private onWrite(page: number): void {
    if (this.state[page] !== PENDING) return;
    const buf = this.buffer();
    const ref = refOfPage(page);
    this.mem.copyOut(ref, 0, PAGE_BYTES, buf, 0);
    this.preimages.set(page, buf);
    this.state[page] = CAPTURED;
    this.preimagesTaken++;
    this.preimageBytes += PAGE_BYTES;
    if (this.preimageBytes > this.preimagePeak) this.preimagePeak = this.preimageBytes;
  }

  private buffer(): Buffer {
    return this.spare.pop() ?? Buffer.allocUnsafeSlow(PAGE_BYTES);
  }

  private recycle(buf: Buffer): void {
    if (buf.length === PAGE_BYTES && this.spare.length < SPARE_BUFFERS) this.spare.push(buf);
  }

  /** The page's bytes at the cut, in a private buffer; the page leaves the cut. */
  private take(page: number): Buffer {
    let buf: Buffer;
    if (this.state[page] === CAPTURED) {
      buf = this.preimages.get(page)!;
      this.preimages.delete(page);
      this.preimageBytes -= PAGE_BYTES;
    } else {
      buf = this.buffer();
      this.mem.copyOut(refOfPage(page), 0, PAGE_BYTES, buf, 0);
    }
    this.state[page] = 0;
    return buf;
  }

  /** Remove the barrier and restore dict resizing (all pages taken, or aborted). */
  private uninstall(): void {
    if (!this.installed) return;
    this.installed = false;
    this.mem.barrier = null;
    PoolDict.canResize = this.savedCanResize;
  }

  /** Stop: the barrier goes at once; the worker notices at its next step and aborts the sink. */
  abort(reason: string): void {
    if (this.finished || this.abortReason !== null) return;
    this.abortReason = reason;
    this.uninstall();
    this.preimages.clear();
    this.preimageBytes = 0;
    this.state.fill(0);
  }

  get aborted(): boolean {
    return this.abortReason !== null;
  }

  private checkAbort(): void {
    if (this.abortReason !== null) throw new CutAbortedError(this.abortReason);
  }

  /** The work, as steps: 'slice' = a good moment to yield; a Promise = wait for the sink. */
  private *steps(): Generator<Step, void, void> {
    const h = this.header;
    const encoded = encodeHeader(h);
    const sum = new ImageChecksum();
    sum.add(encoded);
    yield this.sink.begin(h, encoded);
    this.checkAbort();
    this.bytesDone += encoded.length;
    let sliceStart = performance.now();
    for (let index = 0; index < h.blockCount; index++) {
      const isMeta = index < this.metaPages;
      const page = isMeta ? index : this.pages[index - this.metaPages]!;
      const payload = isMeta ? this.meta.subarray(index * PAGE_BYTES, (index + 1) * PAGE_BYTES) : this.take(page);
      if (index === h.blockCount - 1) this.uninstall(); // every page is in hand: writes are free again
      let crc = blockFieldsCrc(page, PAGE_BYTES);
      for (let off = 0; off < PAGE_BYTES; off += CRC_CHUNK) {
        const now = performance.now();
        if (now - sliceStart >= this.sliceMs) {
          this.longestSliceMs = Math.max(this.longestSliceMs, now - sliceStart);
          yield 'slice';
          this.checkAbort();
          sliceStart = performance.now();
        }
        crc = crc32(payload.subarray(off, off + CRC_CHUNK), crc);
      }
      const header = encodeBlockHeader(page, PAGE_BYTES, crc);
      sum.add(header);
      const pending = this.sink.write({ index, page, header, payload, crc });
      if (pending !== undefined) {
        this.longestSliceMs = Math.max(this.longestSliceMs, performance.now() - sliceStart);
        yield pending;
        sliceStart = performance.now();
      }
      this.checkAbort();
      if (!isMeta) this.recycle(payload);
      this.bytesDone += header.length + PAGE_BYTES;
    }
    if (h.blockCount === 0) this.uninstall();
    const trailer = encodeTrailer(h.blockCount, h.blockCount * PAGE_BYTES, sum);
    yield this.sink.commit(trailer);
    this.bytesDone += trailer.length;
    this.finished = true;
  }

  /** SAVE: run to completion now, blocking (the sink must be synchronous). */
  runSync(): void {
    try {
      for (const step of this.steps()) {
        if (step instanceof Promise) throw new Error(`snapshot sink ${this.sink.description} is asynchronous; SAVE needs a synchronous one`);
      }
    } catch (err) {
      this.fail(err, true);
      throw err;
    } finally {
      this.uninstall();
    }
  }

  /** BGSAVE: run in slices of ~sliceMs between event-loop turns; resolves when the sink has committed. */
  async run(): Promise<void> {
    try {
      for (const step of this.steps()) {
        if (step === 'slice') await new Promise<void>((resolve) => setImmediate(resolve));
        else if (step instanceof Promise) await step;
      }
    } catch (err) {
      await this.failAsync(err);
      throw err;
    } finally {
      this.uninstall();
    }
  }

  private fail(err: unknown, _sync: boolean): void {
    const reason = err instanceof Error ? err.message : String(err);
    this.abort(reason);
    try {
      const r = this.sink.abort(reason);
      if (r instanceof Promise) r.catch(() => {});
    } catch {
      // the original error is what matters
    }
  }

  private async failAsync(err: unknown): Promise<void> {
    const reason = err instanceof Error ? err.message : String(err);
    this.abort(reason);
    try {
      await this.sink.abort(reason);
    } catch {
      // the original error is what matters
    }
  }
}
