// One connection to the receiver: the HELLO handshake, then either a SAVE
// (a server ships an image into a landing ring; each block is verified and
// written to a temp file; COMMIT makes it the name's current image) or a
// LOAD (the receiver writes its current image's pages straight into the
// server's exposed pool). Everything the peer sends is checked; any problem
// ends this session only (FAILED or REFUSE with the reason, logged), removes
// its temp file and leaves the previous image current.
import * as fs from 'fs';
import { PAGE_BYTES } from '../pool/memory';
import type { Logger } from '../server/log';
import {
  blockCrc, blockFieldsCrc, BLOCK_HEADER_BYTES, IMAGE_FORMAT_VERSION, imageBlockOffset, imageSize, ImageVerifier, TRAILER_BYTES,
} from '../snapshot/image';
import { DirectImageWriter } from '../transport/direct-file';
import type { Link } from '../transport/link';
import { type PageIoNative, pageIo } from '../transport/native';
import {
  type Message, MessageChannel, MIN_PROTOCOL_VERSION, POOL_REGION, printable, PROTOCOL_VERSION, RING_REGION, RING_SLOTS, snapshotNameProblem,
  tokensEqual,
} from '../transport/protocol';
import type { ImageStore, StoredImage } from './store';

/** A connection must present its HELLO within this time. */
const HANDSHAKE_TIMEOUT_MS = 10000;
/** A transfer with no message from the server for this long is abandoned. */
const IDLE_TIMEOUT_MS = 60000;
/** Most blocks a loading server may ask to have in flight. */
const MAX_LOAD_WINDOW = 64;
/** Blocks read ahead from the image file while serving a LOAD. */
const LOAD_READ_AHEAD = 6;
/** O_DIRECT wants file offsets, lengths and memory on this boundary. */
const DIRECT_ALIGN = 4096;

/**
 * The addon when image files should be written and read with O_DIRECT, as the
 * server's BGSAVE does (POOLKV_SNAPSHOT_DIRECT=0 turns it off for both).
 * Why: a receiver stores images it may never read back; through the page
 * cache every byte costs a kernel copy and evicts the host's useful cache.
 * With O_DIRECT the device moves the bytes straight from our buffers.
 */
function directIo(): PageIoNative | null {
  return process.env.POOLKV_SNAPSHOT_DIRECT === '0' ? null : pageIo();
}

export interface SessionContext {
  readonly store: ImageStore;
  readonly token: Buffer;
  readonly log: Logger;
  /** A landing ring of `bytes` (reused across sessions: RDMA registers memory once). */
  acquireRing(bytes: number): Buffer;
  releaseRing(ring: Buffer): void;
}

/** Whether this receiver speaks protocol `version`. */
function speaks(version: number): boolean {
  return version >= MIN_PROTOCOL_VERSION && version <= PROTOCOL_VERSION;
}

function mib(bytes: number): string {
  return (bytes / (1 << 20)).toFixed(1);
}

function rate(bytes: number, ms: number): string {
  return ms > 0 ? `${(bytes / (1 << 20) / (ms / 1000)).toFixed(1)} MiB/s` : 'n/a';
}

async function writeFully(fh: fs.promises.FileHandle, buf: Buffer, offset: number, length: number, position: number): Promise<void> {
  await writeParts(fh, [buf.subarray(offset, offset + length)], position);
}

/** Write `parts` back to back at `position`. */
async function writeParts(fh: fs.promises.FileHandle, parts: Buffer[], position: number): Promise<void> {
  // The addon's pwritev runs off the event loop, retries short writes itself and starts the
  // range's writeback at once, so the fsync at COMMIT finds little left to do.
  const native = pageIo();
  const length = parts.reduce((n, p) => n + p.length, 0);
  if (native !== null) {
    await native.pwritev(fh.fd, parts, position, position, length);
    return;
  }
  for (const part of parts) {
    let done = 0;
    while (done < part.length) {
      const { bytesWritten } = await fh.write(part, done, part.length - done, position + done);
      done += bytesWritten;
    }
    position += part.length;
  }
}

/**
 * The CRC of a block's payload as ImageVerifier.acceptBlock wants it, computed
 * off the event loop when the addon is there (the threadpool; several blocks
 * at once), so checking one block never holds up the messages of the others.
 */
export function blockCrcAsync(page: number, payload: Buffer): Promise<number> {
  const native = pageIo();
  if (native === null) return Promise.resolve(blockCrc(page, payload));
  return native.crc32Async(payload, blockFieldsCrc(page, payload.length));
}

/**
 * An image file opened for serving: with O_DIRECT where the filesystem allows
 * it (reads then cover whole aligned spans around the bytes wanted), else
 * through the page cache.
 */
class ServedImageFile {
  private constructor(readonly handle: fs.promises.FileHandle, private readonly native: PageIoNative | null) {}

  static async open(file: string): Promise<ServedImageFile> {
    const native = directIo();
    if (native !== null) {
      try {
        return new ServedImageFile(await fs.promises.open(file, fs.constants.O_RDONLY | fs.constants.O_DIRECT), native);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EINVAL') throw err;
      }
    }
    return new ServedImageFile(await fs.promises.open(file, 'r'), null);
  }

  get direct(): boolean {
    return this.native !== null;
  }

  /** Where read() starts reading for bytes at `position`: the 4 KiB boundary at or below it with O_DIRECT. */
  private spanStart(position: number): number {
    return this.native === null ? position : position - (position % DIRECT_ALIGN);
  }

  /** Size of the buffer read() needs for `length` bytes at `position`. */
  spanBytes(position: number, length: number): number {
    if (this.native === null) return length;
    return Math.ceil((position + length - this.spanStart(position)) / DIRECT_ALIGN) * DIRECT_ALIGN;
  }

  /**
   * Read `length` bytes at `position` into `buf` (spanBytes() long; with O_DIRECT it must start
   * on a 4 KiB boundary, as staging and alignedBuffer() memory does). Returns where they start in buf.
   */
  async read(buf: Buffer, position: number, length: number): Promise<number> {
    const start = this.spanStart(position);
    const at = position - start;
    const span = this.spanBytes(position, length);
    let done = 0;
    while (done < at + length) {
      const { bytesRead } = await this.handle.read(buf, done, span - done, start + done);
      done += bytesRead;
      // With O_DIRECT only the end of the file gives a read that is not whole blocks.
      if (done < at + length && (bytesRead === 0 || (this.native !== null && bytesRead % DIRECT_ALIGN !== 0))) {
        throw new Error(`the image file ends at byte ${start + done}`);
      }
    }
    return at;
  }

  /** A buffer for read() of `length` bytes at `position` that is not staging memory. */
  buffer(position: number, length: number): Buffer {
    const bytes = this.spanBytes(position, length);
    return this.native !== null ? this.native.alignedBuffer(bytes) : Buffer.allocUnsafeSlow(bytes);
  }

  close(): Promise<void> {
    return this.handle.close();
  }
}

export class ReceiverSession {
  private readonly channel: MessageChannel;
  private readonly peer: string;

  constructor(private readonly link: Link, private readonly ctx: SessionContext) {
    this.channel = new MessageChannel(link);
    this.peer = link.remoteAddress;
  }

  /** Runs the whole conversation; never rejects (problems are logged and end the session). */
  async run(): Promise<void> {
    try {
      const hello = await this.channel.next('HELLO', HANDSHAKE_TIMEOUT_MS);
      if (hello.type !== 'hello') {
        await this.refuse(`expected HELLO, got ${hello.type.toUpperCase()}`);
        return;
      }
      const problem = this.checkHello(hello);
      if (problem !== null) {
        await this.refuse(problem, hello.type === 'hello' && speaks(hello.protocolVersion) ? hello.name : undefined);
        return;
      }
      if (hello.role === 'save') await new SaveTransfer(this.link, this.channel, this.ctx, hello).run();
      else await new LoadTransfer(this.link, this.channel, this.ctx, hello.name, hello.protocolVersion).run();
    } catch (err) {
      this.ctx.log.warning(`Connection from ${this.peer} ended: ${(err as Error).message}`);
      this.link.close((err as Error).message);
    }
  }

  /** Why a HELLO is not accepted, or null. The token is checked before anything else about the request. */
  private checkHello(hello: Extract<Message, { type: 'hello' }>): string | null {
    if (!speaks(hello.protocolVersion)) {
      return `protocol version ${hello.protocolVersion} not supported (this receiver speaks versions ${MIN_PROTOCOL_VERSION} to ${PROTOCOL_VERSION})`;
    }
    if (!tokensEqual(hello.token, this.ctx.token)) return 'wrong auth token';
    const nameProblem = snapshotNameProblem(hello.name);
    if (nameProblem !== null) return nameProblem;
    if (hello.formatVersion !== IMAGE_FORMAT_VERSION) {
      return `image format version ${hello.formatVersion} not supported (this receiver stores version ${IMAGE_FORMAT_VERSION})`;
    }
    if (hello.role === 'save' && hello.header === null) return 'a save must carry the image header';
    return null;
  }

  private async refuse(reason: string, name?: string): Promise<void> {
    this.ctx.log.warning(`Refused ${this.peer}${name !== undefined ? ` (image '${printable(name)}')` : ''}: ${reason}`);
    await this.channel.send({ type: 'refuse', reason }).catch(() => {});
    await this.channel.closeAfterPeer(`refused: ${reason}`);
  }
}

/** The receiver's side of a SAVE. */
class SaveTransfer {
  private readonly name: string;
  private readonly encodedHeader: Buffer;
  private verifier!: ImageVerifier;
  private file: fs.promises.FileHandle | null = null;
  /** Set instead of `file` when the temp file is written with O_DIRECT. */
  private direct: DirectImageWriter | null = null;
  private tempPath = '';
  private ring: Buffer | null = null;
  private slotBytes = 0;
  private readonly busy = new Array<boolean>(RING_SLOTS).fill(false);
  private readonly inflight = new Set<Promise<void>>();
  /** Blocks announced so far (the index the next BLOCK must carry). */
  private announced = 0;
  /** Verification in block order: each block's CRC is computed off-thread, accepted after the previous block's. */
  private verified: Promise<void> = Promise.resolve();
  /** COMMIT arrived (no BLOCK may follow). */
  private commitSeen = false;
  private committing = false;
  private finished = false;
  private bytesWritten = 0;
  private readonly startedAt = Date.now();
  private idleTimer: NodeJS.Timeout | null = null;
  private lastActivity = Date.now();
  /** When the last block arrived (the transfer part of the commit log line). */
  private lastBlockAt = 0;
  private settle: () => void = () => {};

  constructor(
    private readonly link: Link,
    private readonly channel: MessageChannel,
    private readonly ctx: SessionContext,
    hello: Extract<Message, { type: 'hello' }>,
  ) {
    this.name = hello.name;
    this.encodedHeader = hello.header!;
  }

  private get peer(): string {
    return this.link.remoteAddress;
  }

  /** "generation 4 stays current" / "there is still no image". */
  private previous(): string {
    const current = this.ctx.store.current(this.name);
    return current instanceof Error || current === null ? `'${this.name}' still has no usable image` : `generation ${current.generation} stays current`;
  }

  async run(): Promise<void> {
    try {
      this.verifier = new ImageVerifier(this.encodedHeader);
    } catch (err) {
      await this.refuse(`incompatible image: ${(err as Error).message}`);
      return;
    }
    const h = this.verifier.header;
    if (h.pageSize !== PAGE_BYTES) {
      await this.refuse(`incompatible image: page size ${h.pageSize} (this receiver takes ${PAGE_BYTES}-byte pages)`);
      return;
    }
    const total = imageSize(h);
    const free = await freeBytes(this.ctx.store.dir);
    if (free !== null && free < total) {
      await this.refuse(`not enough disk space in ${this.ctx.store.dir} (${total} bytes needed, ${free} free)`);
      return;
    }
    this.tempPath = this.ctx.store.tempPath(this.name);
    const native = directIo();
    // null when the filesystem refuses O_DIRECT (tmpfs): then the page cache it is.
    if (native !== null) this.direct = await DirectImageWriter.open(native, this.tempPath);
    if (this.direct === null) this.file = await fs.promises.open(this.tempPath, 'w', 0o644);
    const done = new Promise<void>((resolve) => { this.settle = resolve; });
    this.channel.onClose((reason) => {
      if (!this.committing) void this.fail(`connection lost: ${reason}`, false);
    });
    try {
      if (this.direct !== null) this.direct.append(this.encodedHeader);
      else await writeFully(this.file!, this.encodedHeader, 0, this.encodedHeader.length, 0);
      if (this.finished) return done; // the connection went away meanwhile; fail() cleaned up
      this.slotBytes = BLOCK_HEADER_BYTES + h.pageSize;
      this.ring = this.ctx.acquireRing(RING_SLOTS * this.slotBytes);
      await this.link.expose(RING_REGION, [this.ring]);
      await this.channel.send({ type: 'welcome', region: RING_REGION, slots: RING_SLOTS, slotBytes: this.slotBytes });
    } catch (err) {
      await this.fail((err as Error).message, true);
      return done;
    }
    this.ctx.log.notice(`Receiving image '${this.name}' from ${this.peer} (${total} bytes, ${h.blockCount} blocks; ` +
      `${this.direct !== null ? 'O_DIRECT' : 'buffered'} writes to ${this.tempPath})`);
    this.touch();
    this.channel.listen((m) => {
      if (this.finished) return;
      this.touch();
      try {
        this.onMessage(m);
      } catch (err) {
        void this.fail((err as Error).message, true);
      }
    });
    return done;
  }

  private async refuse(reason: string): Promise<void> {
    this.ctx.log.warning(`Refused ${this.peer} (image '${this.name}'): ${reason}`);
    await this.channel.send({ type: 'refuse', reason }).catch(() => {});
    await this.channel.closeAfterPeer(`refused: ${reason}`);
  }

  /** Note activity; a check every few seconds abandons a transfer idle for IDLE_TIMEOUT_MS. */
  private touch(): void {
    this.lastActivity = Date.now();
    if (this.idleTimer !== null) return;
    this.idleTimer = setInterval(() => {
      if (Date.now() - this.lastActivity >= IDLE_TIMEOUT_MS) void this.fail(`no message from the server for ${IDLE_TIMEOUT_MS / 1000} s`, true);
    }, Math.min(5000, IDLE_TIMEOUT_MS));
    this.idleTimer.unref();
  }

  private onMessage(m: Message): void {
    switch (m.type) {
      case 'block': this.onBlock(m.slot, m.index); return;
      case 'commit': void this.commit(m.trailer); return;
      case 'failed': void this.fail(`the server abandoned the transfer: ${printable(m.reason)}`, false); return;
      default: throw new Error(`protocol error: unexpected ${m.type.toUpperCase()} during a save`);
    }
  }

  /**
   * A block landed in `slot`: its CRC (off-thread) and its write to the temp
   * file start at once and run alongside those of the blocks before it; the
   * block is checked and accepted in order once its CRC is known (header
   * fields, page order, CRC, the chained image checksum), and the slot is
   * credited back once the block is both accepted and in the file. A block
   * that fails its checks fails the transfer; nothing is committed unless
   * every block was accepted.
   */
  private onBlock(slot: number, index: number): void {
    if (this.commitSeen) throw new Error('protocol error: BLOCK after COMMIT');
    if (slot >= RING_SLOTS) throw new Error(`protocol error: block ${index} in slot ${slot}, but the ring has ${RING_SLOTS} slots`);
    if (this.busy[slot]) throw new Error(`protocol error: slot ${slot} reused before it was credited back`);
    if (index !== this.announced) throw new Error(`protocol error: block ${index} arrived, expected block ${this.announced}`);
    const h = this.verifier.header;
    if (index >= h.blockCount) throw new Error(`protocol error: block ${index} arrived, but the image has ${h.blockCount} blocks`);
    this.announced++;
    const ring = this.ring!;
    const at = slot * this.slotBytes;
    // The header is checked and stored from this copy; the payload is read in place.
    const blockHeader = Buffer.from(ring.subarray(at, at + BLOCK_HEADER_BYTES));
    const payload = ring.subarray(at + BLOCK_HEADER_BYTES, at + this.slotBytes);
    const claimedPage = blockHeader.readUInt32LE(4);
    this.lastBlockAt = Date.now();
    this.busy[slot] = true;
    const direct = this.direct;
    // O_DIRECT: the payload's place in the writer's next chunk (blocks arrive in image order).
    const target = direct !== null ? direct.acquire(h.pageSize) : null;
    // A page number out of range fails checkBlockHeader below; no CRC is needed for that.
    // O_DIRECT: the payload is copied out of the ring into its chunk in the same pass as its CRC (threadpool).
    const crc = claimedPage >= h.pageCount ? Promise.resolve(0)
      : target !== null ? direct!.native.copyPageCrc(payload, target, blockFieldsCrc(claimedPage, payload.length))
        : blockCrcAsync(claimedPage, payload);
    crc.catch(() => {});
    const accepted = this.verified.then(async () => {
      const computed = await crc;
      if (this.finished) return;
      this.verifier.checkBlockHeader(blockHeader);
      this.verifier.acceptBlock(blockHeader, computed);
      // In order, after acceptance; waits while the writer has its most chunks in flight (the ring's back-pressure).
      if (direct !== null) {
        await direct.write(blockHeader, target!).catch((err: Error) => {
          throw new Error(`writing ${this.tempPath}: ${err.message}`);
        });
      }
    });
    this.verified = accepted.catch(() => {});
    const stored = direct !== null ? Promise.resolve()
      : writeParts(this.file!, [blockHeader, payload], imageBlockOffset(h, index)).catch((err: Error) => {
        throw new Error(`writing ${this.tempPath}: ${err.message}`);
      });
    const done = Promise.all([accepted, stored]).then(() => {
      this.inflight.delete(done);
      this.busy[slot] = false;
      this.bytesWritten += this.slotBytes;
      if (!this.finished) this.channel.send({ type: 'credit', slot }).catch(() => {});
    }, (err: Error) => {
      this.inflight.delete(done);
      void this.fail(err.message, true);
    });
    this.inflight.add(done);
  }

  private async commit(trailer: Buffer): Promise<void> {
    const h = this.verifier.header;
    this.commitSeen = true;
    // Every block announced is checked (or has failed the transfer) before the trailer is.
    await this.verified;
    if (this.finished) return;
    try {
      this.verifier.checkTrailer(trailer);
    } catch (err) {
      await this.fail(`the image does not verify: ${(err as Error).message}`, true);
      return;
    }
    // From here the image is whole and verified: it is committed even if the server goes away meanwhile.
    this.committing = true;
    const commitAt = Date.now();
    try {
      while (this.inflight.size > 0) await Promise.all([...this.inflight]);
      if (this.finished) return; // a write failed
      if (this.direct !== null) {
        // The last chunk and the trailer, the padding truncated away, fsync.
        await this.direct.finish(trailer);
        await this.direct.close();
        this.direct = null;
      } else {
        const file = this.file!;
        await writeFully(file, trailer, 0, TRAILER_BYTES, imageSize(h) - TRAILER_BYTES);
        await file.sync();
        await file.close();
        this.file = null;
      }
      const image = await this.ctx.store.commit(this.name, this.tempPath, h, this.encodedHeader);
      const now = Date.now();
      const ms = now - this.startedAt;
      const transferMs = (this.lastBlockAt || commitAt) - this.startedAt;
      this.ctx.log.notice(`Image '${this.name}' generation ${image.generation} committed from ${this.peer}: ` +
        `${image.bytes} bytes (${mib(image.bytes)} MiB) in ${ms} ms, ${rate(image.bytes, ms)} ` +
        `(blocks ${transferMs} ms, write-out and fsync ${now - commitAt} ms)`);
      this.finish();
      this.releaseRing();
      await this.channel.send({ type: 'committed', generation: image.generation }).catch(() => {});
      await this.channel.closeAfterPeer('committed');
    } catch (err) {
      this.committing = false;
      await this.fail(`committing the image: ${(err as Error).message}`, true);
    }
  }

  private finish(): void {
    this.finished = true;
    if (this.idleTimer !== null) clearInterval(this.idleTimer);
    this.idleTimer = null;
    this.settle();
  }

  /**
   * Abandon the transfer: tell the server (if it is still there), remove the
   * temp file, free the ring, then log (so the log line means it is all done).
   */
  private async fail(reason: string, tellPeer: boolean): Promise<void> {
    if (this.finished) return;
    this.finish();
    if (tellPeer) {
      await this.channel.send({ type: 'failed', reason }).catch(() => {});
      void this.channel.closeAfterPeer(reason);
    } else {
      this.link.close(reason);
    }
    await Promise.allSettled([...this.inflight]);
    if (this.file !== null) await this.file.close().catch(() => {});
    this.file = null;
    if (this.direct !== null) await this.direct.close().catch(() => {});
    this.direct = null;
    if (this.tempPath !== '') await fs.promises.rm(this.tempPath, { force: true }).catch(() => {});
    this.releaseRing();
    this.ctx.log.warning(`Transfer of image '${this.name}' from ${this.peer} failed: ${reason}; ${this.previous()}`);
  }

  private releaseRing(): void {
    if (this.ring !== null) this.ctx.releaseRing(this.ring);
    this.ring = null;
  }
}

/** Free bytes for unprivileged writers in `dir`, or null if the platform cannot tell. */
async function freeBytes(dir: string): Promise<number | null> {
  try {
    const s = await fs.promises.statfs(dir);
    return s.bavail * s.bsize;
  } catch {
    return null;
  }
}

/** The receiver's side of a LOAD. */
class LoadTransfer {
  private credits = 0;
  private creditWaiter: (() => void) | null = null;
  private failure: Error | null = null;
  /** The server sent FAILED: it expects us to close, without an answer. */
  private serverEnded = false;
  private loaded = false;
  private loadedWaiter: (() => void) | null = null;

  constructor(
    private readonly link: Link,
    private readonly channel: MessageChannel,
    private readonly ctx: SessionContext,
    private readonly name: string,
    /** The server's protocol version: IMAGE carries the page extent from version 2. */
    private readonly serverVersion: number,
  ) {}

  private get peer(): string {
    return this.link.remoteAddress;
  }

  async run(): Promise<void> {
    const log = this.ctx.log;
    let image: StoredImage | null | Error = this.ctx.store.current(this.name);
    let file: ServedImageFile | null = null;
    // The current image may be pruned between looking it up and opening it: look again.
    for (let attempt = 0; attempt < 3 && image !== null && !(image instanceof Error) && file === null; attempt++) {
      try {
        file = await ServedImageFile.open(image.file);
      } catch {
        image = this.ctx.store.current(this.name);
      }
    }
    if (image instanceof Error) {
      log.warning(`Load of image '${this.name}' by ${this.peer} refused: ${image.message}`);
      await this.channel.send({ type: 'failed', reason: image.message }).catch(() => {});
      await this.channel.closeAfterPeer(image.message);
      return;
    }
    if (image === null || file === null) {
      log.notice(`Load of image '${this.name}' by ${this.peer}: there is no image under this name`);
      await this.channel.send({ type: 'no-image' }).catch(() => {});
      await this.channel.closeAfterPeer('no image');
      return;
    }
    const started = Date.now();
    const reads: Array<Promise<{ buf: Buffer; at: number }>> = [];
    /** Writes posted and not yet completed (each gives its buffer back when done). */
    const writes = new Set<Promise<void>>();
    try {
      const pageExtent = this.serverVersion >= 2 ? await this.pageExtent(file, image) : null;
      await this.channel.send({ type: 'image', generation: image.generation, header: image.encodedHeader, pageExtent });
      const ready = await this.channel.next('READY', IDLE_TIMEOUT_MS);
      if (ready.type === 'failed') throw new Error(`the server gave up: ${printable(ready.reason)}`);
      if (ready.type !== 'ready') throw new Error(`protocol error: expected READY, got ${ready.type.toUpperCase()}`);
      if (ready.region !== POOL_REGION) throw new Error(`protocol error: READY names region ${ready.region}`);
      this.credits = Math.max(1, Math.min(MAX_LOAD_WINDOW, ready.window));
      this.listen();
      log.notice(`Serving image '${this.name}' generation ${image.generation} to ${this.peer} (${image.bytes} bytes; ` +
        `${file.direct ? 'O_DIRECT' : 'buffered'} reads)`);
      const pagesFrom = Date.now();
      const h = image.header;
      const blockBytes = BLOCK_HEADER_BYTES + h.pageSize;
      const served = file;
      // Read into staging memory (4 KiB aligned), which the link then writes from without a copy.
      const startRead = (index: number): Promise<{ buf: Buffer; at: number }> => {
        const position = imageBlockOffset(h, index);
        const buf = this.link.acquireStaging(served.spanBytes(position, blockBytes)) ?? served.buffer(position, blockBytes);
        return served.read(buf, position, blockBytes).then((at) => ({ buf, at }), (err: Error) => {
          this.link.releaseStaging(buf);
          throw err;
        });
      };
      let nextRead = 0;
      while (nextRead < Math.min(h.blockCount, LOAD_READ_AHEAD)) reads.push(startRead(nextRead++));
      for (let index = 0; index < h.blockCount; index++) {
        await this.takeCredit();
        const { buf, at } = await reads.shift()!;
        if (nextRead < h.blockCount) reads.push(startRead(nextRead++));
        const blockHeader = Buffer.from(buf.subarray(at, at + BLOCK_HEADER_BYTES));
        const page = blockHeader.readUInt32LE(4);
        if (page >= h.pageCount || blockHeader.readUInt32LE(8) !== h.pageSize) {
          throw new Error(`image '${this.name}' generation ${image.generation} is damaged: block ${index} names page ${page}`);
        }
        // Posted, not waited for: the link places the page before the LOAD_BLOCK that announces it, and
        // the window (credits) bounds how far ahead of the server's checks this runs.
        const write: Promise<void> = this.link.write(POOL_REGION, page * h.pageSize, [buf.subarray(at + BLOCK_HEADER_BYTES, at + blockBytes)])
          .catch((err: Error) => this.abort(err))
          .finally(() => {
            writes.delete(write);
            this.link.releaseStaging(buf);
          });
        writes.add(write);
        this.channel.send({ type: 'load-block', index, blockHeader }).catch((err: Error) => this.abort(err));
        if (this.failure !== null) throw this.failure;
      }
      const trailerAt = imageSize(h) - TRAILER_BYTES;
      const trailerSpan = file.buffer(trailerAt, TRAILER_BYTES);
      const at = await file.read(trailerSpan, trailerAt, TRAILER_BYTES);
      const trailer = Buffer.from(trailerSpan.subarray(at, at + TRAILER_BYTES));
      await this.channel.send({ type: 'end', trailer });
      await this.waitLoaded();
      const ms = Date.now() - started;
      const pagesMs = Date.now() - pagesFrom;
      log.notice(`Image '${this.name}' generation ${image.generation} loaded by ${this.peer}: ${image.bytes} bytes in ${ms} ms, ` +
        `${rate(image.bytes, ms)} (pages ${pagesMs} ms, ${rate(image.bytes, pagesMs)}, from READY to LOADED)`);
      this.link.close('loaded');
    } catch (err) {
      const reason = this.failure?.message ?? (err as Error).message;
      log.warning(`Serving image '${this.name}' to ${this.peer} failed: ${reason}`);
      if (this.serverEnded || this.channel.closedReason !== null) {
        this.link.close(reason);
      } else {
        await this.channel.send({ type: 'failed', reason }).catch(() => {});
        await this.channel.closeAfterPeer(reason);
      }
    } finally {
      // Blocks read ahead but never sent give their staging memory back.
      for (const read of await Promise.allSettled(reads)) if (read.status === 'fulfilled') this.link.releaseStaging(read.value.buf);
      await Promise.allSettled([...writes]);
      await file.close().catch(() => {});
    }
  }

  /** One past the highest page of the image: its last block's, as blocks come in ascending page order. */
  private async pageExtent(file: ServedImageFile, image: StoredImage): Promise<number> {
    const h = image.header;
    const position = imageBlockOffset(h, h.blockCount - 1);
    const span = file.buffer(position, BLOCK_HEADER_BYTES);
    const at = await file.read(span, position, BLOCK_HEADER_BYTES);
    const page = span.readUInt32LE(at + 4);
    if (page >= h.pageCount) {
      throw new Error(`image '${this.name}' generation ${image.generation} is damaged: its last block names page ${page}`);
    }
    return page + 1;
  }

  private listen(): void {
    this.channel.listen((m) => {
      if (m.type === 'load-credit') {
        this.credits += m.count;
        this.wake();
      } else if (m.type === 'loaded') {
        this.loaded = true;
        this.wake();
      } else if (m.type === 'failed') {
        this.serverEnded = true;
        this.abort(new Error(`the server gave up: ${printable(m.reason)}`));
      } else {
        this.abort(new Error(`protocol error: unexpected ${m.type.toUpperCase()} during a load`));
      }
    });
    this.channel.onClose((reason) => this.abort(new Error(`connection lost: ${reason}`)));
  }

  private abort(err: Error): void {
    if (this.failure === null) this.failure = err;
    this.wake();
  }

  private wake(): void {
    const waiters = [this.creditWaiter, this.loadedWaiter];
    this.creditWaiter = null;
    this.loadedWaiter = null;
    for (const w of waiters) w?.();
  }

  private async takeCredit(): Promise<void> {
    for (;;) {
      if (this.failure !== null) throw this.failure;
      if (this.credits > 0) {
        this.credits--;
        return;
      }
      await this.wait('credit');
    }
  }

  private async waitLoaded(): Promise<void> {
    for (;;) {
      if (this.loaded) return;
      if (this.failure !== null) throw this.failure;
      await this.wait('loaded');
    }
  }

  private wait(what: 'credit' | 'loaded'): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no answer from the server for ${IDLE_TIMEOUT_MS / 1000} s`)), IDLE_TIMEOUT_MS);
      const done = (): void => {
        clearTimeout(timer);
        resolve();
      };
      if (what === 'credit') this.creditWaiter = done;
      else this.loadedWaiter = done;
    });
  }
}
