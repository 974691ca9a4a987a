// Shipping an image to a poolkv-receiver (the SAVE conversation of
// docs/snapshot-protocol.md), as a SnapshotSink:
//
//   begin   connect, HELLO{save, name, token, format version, image header},
//           then WELCOME{ring region, slots, slot size} or REFUSE{reason}
//   write   wait for a free landing slot, write() block header + page into
//           it, BLOCK{slot, index}; the receiver verifies, stores it and
//           answers CREDIT{slot}. A block whose payload is one of this
//           sink's staging buffers (acquireBuffer) is not waited for: the
//           write and the BLOCK are posted and write() resolves, so up to a
//           ring's worth of blocks is on the wire at once; the staging buffer
//           goes back to the link once its write completed, whenever the
//           cut hands it back
//   commit  COMMIT{trailer}; resolves only on COMMITTED (the image is durable
//           and current on the receiver), rejects on FAILED{reason}
//   abort   FAILED{reason} (best effort) and close: the receiver drops the
//           transfer and keeps its previous image
//
// PeerSink is asynchronous (BGSAVE). SyncPeerSink gives SAVE the blocking
// sink it needs: the conversation runs in a worker thread
// (peer-save-worker.ts) while the main thread blocks in Atomics.wait, so the
// whole server waits exactly as Redis's SAVE does, and SAVE answers only
// once the receiver has committed.
import * as path from 'path';
import { Worker } from 'worker_threads';
import { PAGE_BYTES } from '../pool/memory';
import { BLOCK_HEADER_BYTES, IMAGE_FORMAT_VERSION, type ImageHeader } from '../snapshot/image';
import type { Link, LinkKind } from './link';
import { connectLink } from './links';
import { MessageChannel, printable, PROTOCOL_VERSION } from './protocol';
import type { SnapshotBlock, SnapshotSink } from './sink';

export interface PeerOptions {
  kind: LinkKind;
  host: string;
  port: number;
  token: string;
  name: string;
  /** Give up connecting after this long (ms). */
  connectTimeoutMs?: number;
  /** Longest wait for any answer from the receiver (ms). */
  replyTimeoutMs?: number;
}

const DEFAULT_CONNECT_TIMEOUT_MS = 5000;
const DEFAULT_REPLY_TIMEOUT_MS = 30000;
/** COMMIT makes the receiver fsync the whole image: allow for a slow disk. */
const COMMIT_TIMEOUT_MS = 300000;
const MAX_SLOTS = 64;

/** "tcp peer 10.0.0.2:7070" */
export function describePeer(options: Pick<PeerOptions, 'kind' | 'host' | 'port'>): string {
  const host = options.host.includes(':') ? `[${options.host}]` : options.host;
  return `${options.kind} peer ${host}:${options.port}`;
}

/** Shipping statistics, for INFO and the log. */
export interface ShipStats {
  bytesShipped: number;
  startedAt: number;
  finishedAt: number;
  /** The receiver's generation number for the committed image (0 until committed). */
  generation: number;
}

export class PeerSink implements SnapshotSink, ShipStats {
  readonly description: string;
  bytesShipped = 0;
  startedAt = 0;
  finishedAt = 0;
  generation = 0;
  private link: Link | null = null;
  private channel: MessageChannel | null = null;
  private region = 0;
  private slotBytes = 0;
  private readonly freeSlots: number[] = [];
  private failure: Error | null = null;
  private committed = false;
  /**
   * Staging slices handed out by acquireBuffer(), by the payload view given
   * to the cut (the slice minus BLOCK_HEADER_BYTES of room in front, where
   * write() puts the block header, so header + page go out as one range).
   * `writing` settles once the slice's last write completed.
   */
  private readonly staging = new Map<Buffer, { slice: Buffer; writing: Promise<void> | null }>();
  /** Woken on a credit, COMMITTED, a failure. */
  private waiter: (() => void) | null = null;
  private closed = false;
  /** The receiver sent FAILED: it expects us to close, without an answer. */
  private peerEnded = false;
  /** When the link was up, the receiver's WELCOME came, and COMMIT went out (the phases in the log). */
  private connectedAt = 0;
  private welcomedAt = 0;
  private commitAt = 0;

  constructor(private readonly options: PeerOptions) {
    this.description = `${describePeer(options)} (snapshot-name ${options.name})`;
  }

  async begin(_header: ImageHeader, encodedHeader: Buffer): Promise<void> {
    this.startedAt = Date.now();
    const where = describePeer(this.options);
    try {
      this.link = await connectLink(this.options.kind, {
        host: this.options.host, port: this.options.port, timeoutMs: this.options.connectTimeoutMs ?? DEFAULT_CONNECT_TIMEOUT_MS,
      });
    } catch (err) {
      throw new Error(`${where} is unreachable: ${(err as Error).message}`);
    }
    this.connectedAt = Date.now();
    const channel = new MessageChannel(this.link);
    this.channel = channel;
    await channel.send({
      type: 'hello', protocolVersion: PROTOCOL_VERSION, role: 'save', name: this.options.name,
      token: Buffer.from(this.options.token, 'utf8'), formatVersion: IMAGE_FORMAT_VERSION, header: encodedHeader,
    });
    let reply;
    try {
      reply = await channel.next('WELCOME', this.replyTimeout);
    } catch (err) {
      throw new Error(`${where}: ${(err as Error).message}`);
    }
    if (reply.type === 'refuse' || reply.type === 'failed') {
      // The receiver's last word: close now (it waits for us to).
      this.closed = true;
      this.link.close('refused');
      throw new Error(`${where} refused the snapshot: ${printable(reply.reason)}`);
    }
    if (reply.type !== 'welcome') throw new Error(`${where}: protocol error: expected WELCOME, got ${reply.type.toUpperCase()}`);
    if (reply.slots < 1 || reply.slots > MAX_SLOTS || reply.slotBytes < BLOCK_HEADER_BYTES + PAGE_BYTES) {
      throw new Error(`${where}: protocol error: unusable landing ring (${reply.slots} slots of ${reply.slotBytes} bytes)`);
    }
    this.welcomedAt = Date.now();
    this.region = reply.region;
    this.slotBytes = reply.slotBytes;
    for (let slot = 0; slot < reply.slots; slot++) this.freeSlots.push(slot);
    channel.listen((m) => {
      if (m.type === 'credit' && m.slot < reply.slots && !this.freeSlots.includes(m.slot)) this.freeSlots.push(m.slot);
      else if (m.type === 'committed') {
        this.committed = true;
        this.generation = m.generation;
      } else if (m.type === 'failed' || m.type === 'refuse') {
        this.peerEnded = true;
        this.fail(`${where} failed the transfer: ${printable(m.reason)}`);
      }
      else this.fail(`${where}: protocol error: unexpected ${m.type.toUpperCase()}`);
      this.wake();
    });
    channel.onClose((reason) => {
      if (!this.committed) this.fail(`connection to ${where} lost: ${reason}`);
      this.wake();
    });
    this.bytesShipped += encodedHeader.length;
  }

  async write(block: SnapshotBlock): Promise<void> {
    const slot = await this.until(() => this.freeSlots.shift() ?? null, 'a free landing slot', this.replyTimeout);
    const own = this.staging.get(block.payload);
    const link = this.link!;
    let written: Promise<void>;
    if (own !== undefined) {
      block.header.copy(own.slice, 0, 0, BLOCK_HEADER_BYTES);
      written = link.write(this.region, slot * this.slotBytes, [own.slice]);
    } else {
      written = link.write(this.region, slot * this.slotBytes, [block.header, block.payload]);
    }
    // The link places the write before the message: no need to wait in between.
    const announced = this.channel!.send({ type: 'block', slot, index: block.index });
    this.bytesShipped += block.header.length + block.payload.length;
    if (own !== undefined) {
      // Posted; a failure of either surfaces at the next write() or commit() (the receiver will not commit).
      own.writing = written.then(() => {}, (err: Error) => { this.linkFailure(err); this.wake(); });
      announced.catch((err: Error) => { this.linkFailure(err); this.wake(); });
      return;
    }
    await written.catch((err: Error) => {
      throw this.linkFailure(err);
    });
    await announced.catch((err: Error) => {
      throw this.linkFailure(err);
    });
  }

  /** "connect 412 ms, handshake 20 ms, blocks 6300 ms, commit 90 ms" once committed, else ''. */
  get phases(): string {
    if (!this.committed) return '';
    return `connect ${this.connectedAt - this.startedAt} ms, handshake ${this.welcomedAt - this.connectedAt} ms, ` +
      `blocks ${this.commitAt - this.welcomedAt} ms, commit ${this.finishedAt - this.commitAt} ms`;
  }

  async commit(trailer: Buffer): Promise<void> {
    this.commitAt = Date.now();
    await this.channel!.send({ type: 'commit', trailer }).catch((err: Error) => {
      throw this.linkFailure(err);
    });
    this.bytesShipped += trailer.length;
    await this.until(() => (this.committed ? true : null), 'COMMITTED', COMMIT_TIMEOUT_MS);
    this.finishedAt = Date.now();
    this.close('committed');
  }

  abort(reason: string): void {
    this.finishedAt = Date.now();
    if (this.failure === null) this.failure = new Error(reason);
    if (this.closed) return;
    this.closed = true;
    const channel = this.channel;
    if (channel !== null && channel.closedReason === null && !this.peerEnded) {
      // Tell the receiver why; it drops the transfer and closes (or we do, shortly).
      channel.send({ type: 'failed', reason }).catch(() => {});
      void channel.closeAfterPeer(reason, 1000);
    } else {
      this.link?.close(reason);
    }
  }


  acquireBuffer(): Buffer | null {
    const link = this.link;
    const slice = link?.acquireStaging(BLOCK_HEADER_BYTES + PAGE_BYTES) ?? null;
    if (slice === null) return null;
    const payload = slice.subarray(BLOCK_HEADER_BYTES);
    this.staging.set(payload, { slice, writing: null });
    return payload;
  }

  releaseBuffer(buffer: Buffer): void {
    const link = this.link;
    const own = this.staging.get(buffer);
    if (own === undefined || link === null) return;
    this.staging.delete(buffer);
    // A write may still be reading it: the slice goes back once that write is done (or failed).
    if (own.writing === null) link.releaseStaging(own.slice);
    else void own.writing.then(() => link.releaseStaging(own.slice));
  }

  private get replyTimeout(): number {
    return this.options.replyTimeoutMs ?? DEFAULT_REPLY_TIMEOUT_MS;
  }

  private close(reason: string): void {
    if (this.closed) return;
    this.closed = true;
    this.link?.close(reason);
  }

  private fail(reason: string): void {
    if (this.failure === null) this.failure = new Error(reason);
  }

  /** The error for a write or send the link refused: the known failure, else the link going down. */
  private linkFailure(err: Error): Error {
    if (this.failure === null) this.fail(`connection to ${describePeer(this.options)} lost: ${err.message}`);
    return this.failure!;
  }

  private wake(): void {
    const w = this.waiter;
    this.waiter = null;
    w?.();
  }

  /** Wait until `take` returns non-null; rejects with the failure, or after `timeoutMs` without one. */
  private async until<T>(take: () => T | null, what: string, timeoutMs: number): Promise<T> {
    for (;;) {
      if (this.failure !== null) throw this.failure;
      const value = take();
      if (value !== null) return value;
      await new Promise<void>((resolve, reject) => {
        const timer = setTimeout(() => {
          this.waiter = null;
          reject(new Error(`${describePeer(this.options)}: no answer within ${Math.round(timeoutMs / 1000)} s while waiting for ${what}`));
        }, timeoutMs);
        this.waiter = () => {
          clearTimeout(timer);
          resolve();
        };
      });
    }
  }
}

// ---- the blocking variant (SAVE) ------------------------------------------------------------

/** Layout of the Int32Array the worker reports through. */
export const SYNC_SEQ = 0;
export const SYNC_STATUS = 1;
export const SYNC_ERROR_LENGTH = 2;
export const SYNC_GENERATION = 3;
/** Set by the worker as it exits. */
export const SYNC_EXITED = 4;
export const SYNC_SLOTS_AT = 8;
export const SYNC_SLOTS = 4;
export const SYNC_CONTROL_WORDS = SYNC_SLOTS_AT + SYNC_SLOTS;
export const SYNC_ERROR_BYTES = 4096;
export const STATUS_STARTING = 0;
export const STATUS_READY = 1;
export const STATUS_COMMITTED = 2;
export const STATUS_FAILED = 3;
export const SYNC_SLOT_BYTES = BLOCK_HEADER_BYTES + PAGE_BYTES;

export interface SyncWorkerData {
  options: PeerOptions;
  control: SharedArrayBuffer;
  error: SharedArrayBuffer;
  ring: SharedArrayBuffer;
}

/** Messages the main thread posts to the worker. */
export type SyncWorkerRequest =
  | { op: 'begin'; header: Uint8Array }
  | { op: 'block'; slot: number; index: number; page: number; crc: number }
  | { op: 'commit'; trailer: Uint8Array }
  | { op: 'abort'; reason: string };

const WORKER_FILE = path.join(__dirname, 'peer-save-worker.js');
/** Longest wait for the save worker to exit after its conversation ended (ms). */
const WORKER_EXIT_WAIT_MS = 5000;

export class SyncPeerSink implements SnapshotSink, ShipStats {
  readonly description: string;
  bytesShipped = 0;
  startedAt = 0;
  finishedAt = 0;
  generation = 0;
  private worker: Worker | null = null;
  private readonly control = new Int32Array(new SharedArrayBuffer(SYNC_CONTROL_WORDS * 4));
  private readonly errorBytes = new Uint8Array(new SharedArrayBuffer(SYNC_ERROR_BYTES));
  private readonly ring = new SharedArrayBuffer(SYNC_SLOTS * SYNC_SLOT_BYTES);
  private readonly ringBytes = Buffer.from(this.ring);
  private nextSlot = 0;

  constructor(private readonly options: PeerOptions) {
    this.description = `${describePeer(options)} (snapshot-name ${options.name})`;
  }

  begin(_header: ImageHeader, encodedHeader: Buffer): void {
    this.startedAt = Date.now();
    const data: SyncWorkerData = { options: this.options, control: this.control.buffer as SharedArrayBuffer, error: this.errorBytes.buffer as SharedArrayBuffer, ring: this.ring };
    this.worker = new Worker(WORKER_FILE, { workerData: data, stdout: false, stderr: false });
    this.worker.unref();
    this.post({ op: 'begin', header: new Uint8Array(encodedHeader) });
    const budget = (this.options.connectTimeoutMs ?? DEFAULT_CONNECT_TIMEOUT_MS) + (this.options.replyTimeoutMs ?? DEFAULT_REPLY_TIMEOUT_MS) + 5000;
    this.waitFor(() => Atomics.load(this.control, SYNC_STATUS) !== STATUS_STARTING, 'the peer to accept the snapshot', budget);
    this.bytesShipped += encodedHeader.length;
  }

  write(block: SnapshotBlock): void {
    // Slots are used round robin; the worker ships them in order and frees each once its bytes left.
    const slot = this.nextSlot;
    this.nextSlot = (slot + 1) % SYNC_SLOTS;
    this.waitFor(() => Atomics.load(this.control, SYNC_SLOTS_AT + slot) === 0, 'a free landing slot', this.options.replyTimeoutMs ?? DEFAULT_REPLY_TIMEOUT_MS);
    const at = slot * SYNC_SLOT_BYTES;
    block.header.copy(this.ringBytes, at);
    block.payload.copy(this.ringBytes, at + BLOCK_HEADER_BYTES);
    Atomics.store(this.control, SYNC_SLOTS_AT + slot, 1);
    this.post({ op: 'block', slot, index: block.index, page: block.page, crc: block.crc });
    this.bytesShipped += block.header.length + block.payload.length;
  }

  commit(trailer: Buffer): void {
    this.post({ op: 'commit', trailer: new Uint8Array(trailer) });
    this.waitFor(() => Atomics.load(this.control, SYNC_STATUS) === STATUS_COMMITTED, 'COMMITTED', COMMIT_TIMEOUT_MS);
    this.bytesShipped += trailer.length;
    this.generation = Atomics.load(this.control, SYNC_GENERATION);
    this.finishedAt = Date.now();
    this.stopWorker();
  }

  abort(reason: string): void {
    this.finishedAt = Date.now();
    if (this.worker === null) return;
    if (Atomics.load(this.control, SYNC_STATUS) !== STATUS_FAILED) {
      this.post({ op: 'abort', reason });
      // A moment for the worker to tell the receiver (it reports FAILED once it has).
      const until = Date.now() + 1000;
      while (Atomics.load(this.control, SYNC_STATUS) !== STATUS_FAILED && Date.now() < until) {
        Atomics.wait(this.control, SYNC_SEQ, Atomics.load(this.control, SYNC_SEQ), 50);
      }
    }
    this.stopWorker();
  }

  private post(request: SyncWorkerRequest): void {
    this.worker!.postMessage(request);
  }

  /**
   * Let the worker finish: it closes its link and exits by itself. It is
   * never terminate()d: tearing down a thread whose RDMA link still delivers
   * native callbacks can abort the process. Wait briefly for the exit so a
   * SHUTDOWN right after SAVE does not cut it short either.
   */
  private stopWorker(): void {
    const worker = this.worker;
    this.worker = null;
    if (worker === null) return;
    const until = Date.now() + WORKER_EXIT_WAIT_MS;
    while (Atomics.load(this.control, SYNC_EXITED) === 0 && Date.now() < until) {
      Atomics.wait(this.control, SYNC_SEQ, Atomics.load(this.control, SYNC_SEQ), 50);
    }
  }

  /** Block the thread until `done()`, the worker reports a failure, or `timeoutMs` pass without any progress. */
  private waitFor(done: () => boolean, what: string, timeoutMs: number): void {
    let deadline = Date.now() + timeoutMs;
    let seq = Atomics.load(this.control, SYNC_SEQ);
    for (;;) {
      if (Atomics.load(this.control, SYNC_STATUS) === STATUS_FAILED) {
        const length = Atomics.load(this.control, SYNC_ERROR_LENGTH);
        throw new Error(Buffer.from(this.errorBytes.subarray(0, length)).toString('utf8'));
      }
      if (done()) return;
      const now = Date.now();
      if (now >= deadline) {
        throw new Error(`${describePeer(this.options)}: no progress within ${Math.round(timeoutMs / 1000)} s while waiting for ${what}`);
      }
      Atomics.wait(this.control, SYNC_SEQ, seq, deadline - now);
      const latest = Atomics.load(this.control, SYNC_SEQ);
      if (latest !== seq) {
        seq = latest;
        deadline = Date.now() + timeoutMs; // progress: the budget starts again
      }
    }
  }
}
