// The consistent cut: a point-in-time image of the pool without fork().
//
// open(): in one synchronous step, copy the meta pages (header, class table,
// database roots, page table), read from that copy which pages are in use at
// this instant (class != FREE and below the first never-used page), and
// install PoolMemory's write barrier. From then on, the first write to a page
// of the cut that has not been taken yet first copies the page's pre-image
// aside; the worker walks the cut's pages in order and ships, for each page,
// either that pre-image or (never written since the cut) a fresh copy of the
// live page. Either way the bytes are the page as it was at the instant.
//
// Two engines do the walk:
//
// - native (the poolkv_native addon is built; BGSAVE): each page's copy and
//   CRC32 run on the libuv threadpool (page_io.cc copyPageCrc), a few pages
//   at once, so the event loop only orchestrates (~tens of µs per page). A
//   page being copied is IN_FLIGHT: the worker reads live pool memory while
//   the main thread may write it. The barrier on an IN_FLIGHT page copies the
//   pre-image first, on the main thread (exact: the page has not changed yet)
//   and marks the page; when the off-thread copy completes, a marked page's
//   possibly torn copy is discarded and the pre-image ships instead (its CRC
//   computed off-thread too). Blocks still go to the sink in order, one
//   write at a time.
// - js (no addon, or POOLKV_SNAPSHOT_ENGINE=js): copies and CRCs on the main
//   thread in slices of ~sliceMs between event-loop turns.
//
// SAVE (runSync) blocks by definition; it uses the addon's synchronous
// copy+CRC when available.
//
// Memory beyond the pool: the meta copy, a few staging pages (the pages in
// flight plus the one being written), and one pre-image per page written
// during the save (each freed once shipped). Live pool memory is never handed
// to the sink: every block is a private copy (or the sink's own staging
// buffer, see SnapshotSink.acquireBuffer).
import { performance } from 'perf_hooks';
import { crc32 as zlibCrc32 } from 'zlib';
import {
  D_USED_BYTES, LAYOUT_VERSION, P_CLASS, PAGE_ENTRY_BYTES, PAGE_FREE, W_DB_COUNT, W_META_PAGES, W_PAGE_COUNT,
  W_PAGE_TABLE_OFFSET, W_UNTOUCHED_PAGE,
} from '../pool/layout';
import { PAGE_BYTES, type PoolMemory, refOfPage } from '../pool/memory';
import type { Pool } from '../pool/pool';
import { PoolDict } from '../store/dict';
import { type CopyGroup, type PageIoNative, pageIo } from '../transport/native';
import type { SnapshotSink } from '../transport/sink';
import { blockFieldsCrc, encodeBlockHeader, encodeHeader, encodeTrailer, IMAGE_FORMAT_VERSION, ImageChecksum, type ImageHeader, imageSize } from './image';

const PENDING = 1; // in the cut, not taken, not written since the cut
const CAPTURED = 2; // in the cut, pre-image held aside
const IN_FLIGHT = 3; // being copied off-thread, not written since the cut
const IN_FLIGHT_WRITTEN = 4; // being copied off-thread, written meanwhile: the pre-image is held aside
// 0: not in the cut, or already taken

/** CRC work per step on the JS engine, so one slice never hashes a whole page (~0.4 ms per MiB with zlib). */
const CRC_CHUNK = 64 * 1024;
/** Spare page buffers kept for reuse (fresh 1 MiB allocations cost page faults). */
const SPARE_BUFFERS = 8;
/** Native engine: pages copied at once by default (the sink writes one more). */
const DEFAULT_IN_FLIGHT = 2;
const DEFAULT_PROGRESS_MS = 1000;

export type CutEngine = 'native' | 'js';

export interface CutProgress {
  /** Image bytes handed to the sink so far / in all. */
  bytesDone: number;
  bytesTotal: number;
  /** Blocks shipped / in all (meta pages included). */
  blocksDone: number;
  blockCount: number;
  /** Pre-image bytes held right now. */
  preimageBytes: number;
  /** ms since the cut was taken. */
  elapsedMs: number;
  /** True for the last call (everything shipped; the sink's commit follows). */
  done: boolean;
}

export interface CutOptions {
  /** JS engine: work per slice before yielding to the event loop (ms). Native engine: the most main-thread work in one turn. */
  sliceMs?: number;
  /**
   * 'native' (needs the addon), 'js', or 'auto' (default: native when the addon
   * is built). The environment variable POOLKV_SNAPSHOT_ENGINE overrides 'auto'.
   */
  engine?: CutEngine | 'auto';
  /** Native engine: pages being copied off-thread at once (default 2; POOLKV_SNAPSHOT_IN_FLIGHT). */
  inFlight?: number;
  /**
   * Called during run() at most every progressIntervalMs (default 1000) and
   * once when every block has been shipped, e.g. for "n% saved" log lines.
   * Exceptions are ignored.
   */
  onProgress?: (progress: CutProgress) => void;
  progressIntervalMs?: number;
}

export class CutAbortedError extends Error {
  constructor(reason: string) {
    super(reason);
    this.name = 'CutAbortedError';
  }
}

type Step = 'slice' | Promise<void> | void;

/** A block being prepared by the native engine. */
interface Job {
  index: number;
  page: number;
  /** The buffer that will be shipped (replaced by the pre-image when the copy turned out torn). */
  payload: Buffer;
  /** Where payload came from, so it goes back to the right place. */
  source: 'meta' | 'own' | 'sink';
  /** Resolves with the block's CRC once payload holds the page's bytes at the cut. */
  crc: Promise<number>;
}

function envEngine(): CutEngine | 'auto' {
  const v = process.env.POOLKV_SNAPSHOT_ENGINE;
  return v === 'js' || v === 'native' ? v : 'auto';
}

export class ConsistentCut {
  readonly header: ImageHeader;
  /** Image bytes shipped so far / in all. */
  bytesDone = 0;
  readonly bytesTotal: number;
  /** Blocks shipped so far (meta included). */
  blocksDone = 0;
  /** Bytes currently held as pre-images, and the most held at once (Redis's cow size). */
  preimageBytes = 0;
  preimagePeak = 0;
  /** Pre-images taken in all. */
  preimagesTaken = 0;
  /** Native engine: pages written while their off-thread copy was in flight (copy discarded, pre-image shipped). */
  inFlightWrites = 0;
  readonly startedAt = Date.now();
  /** Longest synchronous stretch of worker work on the main thread (ms), for the "loop never stalls" check. */
  longestSliceMs = 0;
  /** Total main-thread time spent by the worker (ms), barrier copies excluded. */
  mainThreadMs = 0;
  finished = false;
  /** The engine run() uses (runSync always works on this thread). */
  readonly engine: CutEngine;

  private readonly mem: PoolMemory;
  private readonly meta: Buffer;
  private readonly metaPages: number;
  private readonly pages: Uint32Array;
  private readonly state: Uint8Array;
  /** Pages of the cut not taken yet; the barrier goes when this reaches 0. */
  private remaining: number;
  private readonly preimages = new Map<number, Buffer>();
  private readonly spare: Buffer[] = [];
  private readonly sliceMs: number;
  private readonly inFlight: number;
  private readonly native: PageIoNative | null;
  private group: CopyGroup | null = null;
  private readonly onProgress: ((progress: CutProgress) => void) | undefined;
  private readonly progressIntervalMs: number;
  private lastProgress = 0;
  private abortReason: string | null = null;
  private installed = false;
  private readonly savedCanResize: boolean;

  private constructor(pool: Pool, private readonly sink: SnapshotSink, options: CutOptions) {
    this.mem = pool.mem;
    this.sliceMs = options.sliceMs ?? 0.5;
    const requested = options.engine === undefined || options.engine === 'auto' ? envEngine() : options.engine;
    this.native = requested === 'js' ? null : pageIo();
    if (requested === 'native' && this.native === null) throw new Error('the native snapshot engine needs the poolkv_native addon (npm rebuild)');
    this.engine = this.native !== null ? 'native' : 'js';
    const envInFlight = Number(process.env.POOLKV_SNAPSHOT_IN_FLIGHT);
    this.inFlight = Math.max(1, Math.floor(options.inFlight ?? (envInFlight > 0 ? envInFlight : DEFAULT_IN_FLIGHT)));
    this.onProgress = options.onProgress;
    this.progressIntervalMs = options.progressIntervalMs ?? DEFAULT_PROGRESS_MS;
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
    this.remaining = inUse.length;
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

  /** Pages whose off-thread copy is in flight right now (tests use it to write into exactly those pages). */
  pagesInFlight(): number[] {
    const out: number[] = [];
    for (const page of this.pages) if (this.state[page] === IN_FLIGHT || this.state[page] === IN_FLIGHT_WRITTEN) out.push(page);
    return out;
  }

  /** Where the cut stands, as onProgress gets it. */
  progress(): CutProgress {
    return {
      bytesDone: this.bytesDone, bytesTotal: this.bytesTotal, blocksDone: this.blocksDone, blockCount: this.header.blockCount,
      preimageBytes: this.preimageBytes, elapsedMs: Date.now() - this.startedAt, done: this.blocksDone === this.header.blockCount,
    };
  }

  /** The write barrier: keep the pre-image of a cut page not taken yet (or being copied off-thread). */
  private onWrite(page: number): void {
    const s = this.state[page];
    if (s !== PENDING && s !== IN_FLIGHT) return;
    const buf = this.buffer();
    this.mem.copyOut(refOfPage(page), 0, PAGE_BYTES, buf, 0);
    this.preimages.set(page, buf);
    this.state[page] = s === PENDING ? CAPTURED : IN_FLIGHT_WRITTEN;
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

  /** The pre-image held for `page`; the page leaves the cut. */
  private takePreimage(page: number): Buffer {
    const buf = this.preimages.get(page)!;
    this.preimages.delete(page);
    this.preimageBytes -= PAGE_BYTES;
    this.leave(page);
    return buf;
  }

  /** `page` is in hand (its bytes at the cut are in a private buffer or being copied from a pre-image). */
  private leave(page: number): void {
    this.state[page] = 0;
    if (--this.remaining === 0) this.uninstall(); // every page is in hand: writes are free again
  }

  /** JS engine: the page's bytes at the cut, in a private buffer; the page leaves the cut. */
  private take(page: number): Buffer {
    if (this.state[page] === CAPTURED) return this.takePreimage(page);
    const buf = this.buffer();
    this.mem.copyOut(refOfPage(page), 0, PAGE_BYTES, buf, 0);
    this.leave(page);
    return buf;
  }

  /** Remove the barrier and restore dict resizing (all pages taken, or aborted). */
  private uninstall(): void {
    if (!this.installed) return;
    this.installed = false;
    this.mem.barrier = null;
    PoolDict.canResize = this.savedCanResize;
  }

  /**
   * Stop: queued off-thread copies are cancelled and running ones waited for
   * (so the pool may be unmapped right after), the barrier goes at once; the
   * worker notices at its next step and aborts the sink.
   */
  abort(reason: string): void {
    if (this.finished || this.abortReason !== null) return;
    this.abortReason = reason;
    this.group?.cancel();
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

  private reportProgress(force: boolean): void {
    if (this.onProgress === undefined) return;
    const now = Date.now();
    if (!force && now - this.lastProgress < this.progressIntervalMs) return;
    this.lastProgress = now;
    try {
      this.onProgress(this.progress());
    } catch {
      // a logging callback must not break the save
    }
  }

  /** A sink staging buffer for the next block, or null. */
  private sinkBuffer(): Buffer | null {
    const buf = this.sink.acquireBuffer?.() ?? null;
    if (buf !== null && buf.length < PAGE_BYTES) throw new Error(`snapshot sink ${this.sink.description} handed out a ${buf.length}-byte buffer`);
    return buf === null ? null : buf.length === PAGE_BYTES ? buf : buf.subarray(0, PAGE_BYTES);
  }

  // ---- JS engine (and SAVE) ------------------------------------------------------------

  /** The work, as steps: 'slice' = a good moment to yield; a Promise = wait for the sink. */
  private *steps(): Generator<Step, void, void> {
    const h = this.header;
    const encoded = encodeHeader(h);
    const sum = new ImageChecksum();
    sum.add(encoded);
    yield this.sink.begin(h, encoded);
    this.checkAbort();
    this.bytesDone += encoded.length;
    // The addon's synchronous CRC (and fused copy+CRC) is ~6x zlib's; same results.
    const crcOf = this.native?.crc32 ?? zlibCrc32;
    let sliceStart = performance.now();
    for (let index = 0; index < h.blockCount; index++) {
      const isMeta = index < this.metaPages;
      const page = isMeta ? index : this.pages[index - this.metaPages]!;
      let payload = isMeta ? this.meta.subarray(index * PAGE_BYTES, (index + 1) * PAGE_BYTES) : this.take(page);
      const staging = this.sinkBuffer();
      let crc = blockFieldsCrc(page, PAGE_BYTES);
      if (staging !== null && this.native !== null) {
        crc = this.native.copyPageCrcSync(payload, staging, crc);
        if (!isMeta) this.recycle(payload);
        payload = staging;
      } else {
        if (staging !== null) {
          payload.copy(staging);
          if (!isMeta) this.recycle(payload);
          payload = staging;
        }
        for (let off = 0; off < PAGE_BYTES; off += CRC_CHUNK) {
          const now = performance.now();
          if (now - sliceStart >= this.sliceMs) {
            this.longestSliceMs = Math.max(this.longestSliceMs, now - sliceStart);
            this.mainThreadMs += now - sliceStart;
            yield 'slice';
            this.checkAbort();
            sliceStart = performance.now();
          }
          crc = crcOf(payload.subarray(off, off + CRC_CHUNK), crc);
        }
      }
      const header = encodeBlockHeader(page, PAGE_BYTES, crc);
      sum.add(header);
      const pending = this.sink.write({ index, page, header, payload, crc });
      if (pending !== undefined) {
        const now = performance.now();
        this.longestSliceMs = Math.max(this.longestSliceMs, now - sliceStart);
        this.mainThreadMs += now - sliceStart;
        try {
          yield pending;
        } finally {
          if (staging !== null) this.sink.releaseBuffer?.(staging);
        }
        sliceStart = performance.now();
      } else if (staging !== null) {
        this.sink.releaseBuffer?.(staging);
      }
      this.checkAbort();
      if (!isMeta && staging === null) this.recycle(payload);
      this.bytesDone += header.length + PAGE_BYTES;
      this.blocksDone++;
      this.reportProgress(index === h.blockCount - 1);
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
      this.fail(err);
      throw err;
    } finally {
      this.uninstall();
    }
  }

  /** BGSAVE: copy off-thread (native engine) or in slices between event-loop turns; resolves when the sink has committed. */
  async run(): Promise<void> {
    try {
      if (this.native !== null) {
        await this.runNative(this.native);
      } else {
        for (const step of this.steps()) {
          if (step === 'slice') await new Promise<void>((resolve) => setImmediate(resolve));
          else if (step instanceof Promise) await step;
        }
      }
    } catch (err) {
      await this.failAsync(err);
      throw err;
    } finally {
      this.uninstall();
    }
  }

  // ---- native engine ---------------------------------------------------------------------

  /** Start preparing block `index` off-thread. */
  private startJob(index: number, group: CopyGroup): Job {
    if (index < this.metaPages) {
      const meta = this.meta.subarray(index * PAGE_BYTES, (index + 1) * PAGE_BYTES);
      const seed = blockFieldsCrc(index, PAGE_BYTES);
      const staging = this.sinkBuffer();
      if (staging !== null) return { index, page: index, payload: staging, source: 'sink', crc: group.copyPageCrc(meta, staging, seed) };
      return { index, page: index, payload: meta, source: 'meta', crc: group.crc32Async(meta, seed) };
    }
    const page = this.pages[index - this.metaPages]!;
    const seed = blockFieldsCrc(page, PAGE_BYTES);
    const staging = this.sinkBuffer();
    if (this.state[page] === CAPTURED) {
      const pre = this.takePreimage(page);
      if (staging === null) return { index, page, payload: pre, source: 'own', crc: group.crc32Async(pre, seed) };
      const crc = group.copyPageCrc(pre, staging, seed);
      return { index, page, payload: staging, source: 'sink', crc: crc.finally(() => this.recycle(pre)) };
    }
    // PENDING: copy the live page off-thread; the barrier may fire meanwhile.
    this.state[page] = IN_FLIGHT;
    const dst = staging ?? this.buffer();
    const job: Job = { index, page, payload: dst, source: staging !== null ? 'sink' : 'own', crc: Promise.resolve(0) };
    const live = this.mem.peek(refOfPage(page), 0, PAGE_BYTES);
    job.crc = group.copyPageCrc(live, dst, seed).then((crc) => {
      this.checkAbort();
      if (this.state[page] !== IN_FLIGHT_WRITTEN) {
        this.leave(page);
        return crc;
      }
      // Written while being copied: the copy may be torn; the pre-image is exact.
      this.inFlightWrites++;
      const pre = this.takePreimage(page);
      if (job.source === 'sink') return group.copyPageCrc(pre, dst, seed).finally(() => this.recycle(pre));
      this.recycle(dst);
      job.payload = pre;
      return group.crc32Async(pre, seed);
    });
    return job;
  }

  private async runNative(native: PageIoNative): Promise<void> {
    const h = this.header;
    const group = new native.CopyGroup();
    this.group = group;
    if (this.abortReason !== null) group.cancel();
    const encoded = encodeHeader(h);
    const sum = new ImageChecksum();
    sum.add(encoded);
    await this.sink.begin(h, encoded);
    this.checkAbort();
    this.bytesDone += encoded.length;
    const queue: Job[] = [];
    let next = 0;
    let turnStart = performance.now();
    const endTurn = (): void => {
      const t = performance.now() - turnStart;
      this.mainThreadMs += t;
      if (t > this.longestSliceMs) this.longestSliceMs = t;
    };
    const enqueue = (): void => {
      const job = this.startJob(next++, group);
      job.crc.catch(() => {}); // awaited in order below; a rejection before then (abort: 'cancelled') is not unhandled
      queue.push(job);
    };
    let head: Job | null = null; // shifted from the queue, not yet handed back
    try {
      while (this.blocksDone < h.blockCount) {
        while (next < h.blockCount && queue.length < this.inFlight) enqueue();
        const job = queue.shift()!;
        head = job;
        // Keep inFlight copies going while this block is awaited and written.
        if (next < h.blockCount) enqueue();
        endTurn();
        let crc: number;
        try {
          crc = await job.crc;
        } finally {
          turnStart = performance.now();
          this.checkAbort(); // an abort (cancelled copies) fails with its reason
        }
        const header = encodeBlockHeader(job.page, PAGE_BYTES, crc);
        sum.add(header);
        const pending = this.sink.write({ index: job.index, page: job.page, header, payload: job.payload, crc });
        if (pending !== undefined) {
          endTurn();
          try {
            await pending;
          } finally {
            turnStart = performance.now();
            head = null;
            this.release(job);
          }
        } else {
          head = null;
          this.release(job);
        }
        this.checkAbort();
        this.bytesDone += header.length + PAGE_BYTES;
        this.blocksDone++;
        this.reportProgress(this.blocksDone === h.blockCount);
        // Never run long on the loop, whatever the sink does (a synchronous sink returns void).
        if (performance.now() - turnStart >= this.sliceMs) {
          endTurn();
          await new Promise<void>((resolve) => setImmediate(resolve));
          turnStart = performance.now();
          this.checkAbort();
        }
      }
      endTurn();
    } catch (err) {
      // No buffer may be reused or handed back while a job still writes into it;
      // then the sink gets its staging buffers back (blocks never written included).
      group.cancel();
      const outstanding = head !== null ? [head, ...queue] : queue;
      await Promise.allSettled(outstanding.map((j) => j.crc));
      for (const j of outstanding) if (j.source === 'sink') this.sink.releaseBuffer?.(j.payload);
      throw err;
    }
    if (h.blockCount === 0) this.uninstall();
    const trailer = encodeTrailer(h.blockCount, h.blockCount * PAGE_BYTES, sum);
    await this.sink.commit(trailer);
    this.bytesDone += trailer.length;
    this.finished = true;
  }

  private release(job: Job): void {
    if (job.source === 'sink') this.sink.releaseBuffer?.(job.payload);
    else if (job.source === 'own') this.recycle(job.payload);
  }

  private fail(err: unknown): void {
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
