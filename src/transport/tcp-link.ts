// The Link interface (link.ts) over one TCP connection. Everything travels on
// the stream as frames, so ordering is the stream's:
//
//   MESSAGE  [1][u32 length][payload]                 a control message (≤ LINK_MAX_MESSAGE)
//   EXPOSE   [2][u32 region][f64 size]                "you may write into my region `region`"
//   WRITE    [3][u32 region][f64 offset][u32 length][bytes]   bulk bytes for an exposed region
//   CLOSE    [4][u32 length][reason]                  the sender is closing, and why
//
// The receiving link copies a WRITE's bytes straight from the socket's chunks
// into the exposed region (no per-frame buffer), so a frame's size never
// turns into an allocation. On the connecting side (the poolkv server, which
// receives the pages of a LOAD) the socket reads into buffers the link
// chooses (net's `onread`): while a WRITE's payload is expected, the kernel
// copies it straight into the region, with no chunk allocated or copied in JS. Every length is checked before anything is
// allocated or copied: a message longer than LINK_MAX_MESSAGE, a write frame
// longer than TCP_MAX_WRITE_FRAME, a write to a region this side has not
// exposed or outside its bounds, or an unknown frame type closes the link
// with a reason saying which.
import * as net from 'net';
import { LINK_MAX_MESSAGE, type ConnectOptions, type Link, type LinkListener, type ListenOptions } from './link';
import { pageIo } from './native';

const FRAME_MESSAGE = 1;
const FRAME_EXPOSE = 2;
const FRAME_WRITE = 3;
const FRAME_CLOSE = 4;
/** Bytes of each frame type's header (type byte included). */
const FRAME_HEADER_BYTES: Record<number, number> = { [FRAME_MESSAGE]: 5, [FRAME_EXPOSE]: 13, [FRAME_WRITE]: 17, [FRAME_CLOSE]: 5 };
const LONGEST_FRAME_HEADER = 17;

/** Largest WRITE frame (bytes after its header); write() splits larger writes. */
export const TCP_MAX_WRITE_FRAME = 16 * 1024 * 1024;
/** Region ids are small integers. */
const MAX_REGION_ID = 1023;
/** Messages held while no handler is set (a peer flooding before the protocol listens). */
const MAX_HELD_MESSAGES = 1024;
/** Spare staging buffers kept per size. */
const SPARE_STAGING = 8;
const DEFAULT_CONNECT_TIMEOUT_MS = 5000;

interface LocalRegion {
  views: Buffer[];
  /** starts[i] = offset of views[i] in the region. */
  starts: number[];
  size: number;
}

function formatHostPort(host: string | undefined, port: number | undefined): string {
  const h = host ?? '?';
  return h.includes(':') ? `[${h}]:${port ?? 0}` : `${h}:${port ?? 0}`;
}

export class TcpLink implements Link {
  readonly kind = 'tcp' as const;
  readonly description: string;
  readonly remoteAddress: string;

  private messageHandler: ((message: Buffer) => void) | null = null;
  private readonly held: Buffer[] = [];
  private closeHandler: ((reason: string) => void) | null = null;
  private closedReason: string | null = null;
  /** A CLOSE frame's reason, once the peer sent one. */
  private peerReason: string | null = null;
  private readonly localRegions = new Map<number, LocalRegion>();
  private readonly remoteRegions = new Map<number, number>();
  /** Settlers of operations in flight, rejected if the link closes under them. */
  private readonly pending = new Set<(err: Error) => void>();
  private readonly spare = new Map<number, Buffer[]>();

  // ---- frame reader state ----
  private readonly frameHeader = Buffer.alloc(LONGEST_FRAME_HEADER);
  private headerHave = 0;
  private headerNeed = 1;
  /** A MESSAGE or CLOSE payload being assembled. */
  private payload: Buffer | null = null;
  private payloadHave = 0;
  private payloadIsClose = false;
  /** A WRITE frame's bytes being placed. */
  private writeRegion: LocalRegion | null = null;
  private writeOffset = 0;
  private writeLeft = 0;

  /**
   * `reader`: the socket was created with net's `onread` bound to this
   * reader, which then feeds the link (instead of 'data' events).
   */
  constructor(private readonly socket: net.Socket, reader?: DirectReader) {
    this.remoteAddress = formatHostPort(socket.remoteAddress, socket.remotePort);
    this.description = `tcp ${this.remoteAddress}`;
    socket.setNoDelay(true);
    socket.setKeepAlive(true, 10000);
    if (reader !== undefined) reader.attach(this);
    else socket.on('data', (chunk: Buffer) => this.onData(chunk));
    socket.on('error', (err: Error) => this.finish(err.message));
    socket.on('end', () => socket.end());
    socket.on('close', () => this.finish(this.peerReason !== null ? `peer closed the link: ${this.peerReason}` : 'connection closed by the peer'));
  }

  // ---- Link ---------------------------------------------------------------------------

  send(message: Buffer): Promise<void> {
    if (message.length > LINK_MAX_MESSAGE) {
      return Promise.reject(new Error(`message of ${message.length} bytes exceeds the ${LINK_MAX_MESSAGE}-byte limit`));
    }
    const header = Buffer.allocUnsafe(5);
    header[0] = FRAME_MESSAGE;
    header.writeUInt32LE(message.length, 1);
    return this.push([header, message]);
  }

  onMessage(handler: (message: Buffer) => void): void {
    this.messageHandler = handler;
    while (this.held.length > 0 && this.messageHandler === handler) handler(this.held.shift()!);
  }

  onClose(handler: (reason: string) => void): void {
    this.closeHandler = handler;
    if (this.closedReason !== null) queueMicrotask(() => handler(this.closedReason!));
  }

  async expose(id: number, region: Buffer[]): Promise<void> {
    if (!Number.isInteger(id) || id < 0 || id > MAX_REGION_ID) throw new Error(`region id ${id} is out of range`);
    const starts: number[] = [];
    let size = 0;
    for (const view of region) {
      starts.push(size);
      size += view.length;
    }
    this.localRegions.set(id, { views: region, starts, size });
    const frame = Buffer.allocUnsafe(FRAME_HEADER_BYTES[FRAME_EXPOSE]!);
    frame[0] = FRAME_EXPOSE;
    frame.writeUInt32LE(id, 1);
    frame.writeDoubleLE(size, 5);
    await this.push([frame]);
  }

  async write(id: number, offset: number, parts: Buffer[]): Promise<void> {
    const size = this.remoteRegions.get(id);
    if (size === undefined) throw new Error(`the peer has not exposed region ${id}`);
    let total = 0;
    for (const part of parts) total += part.length;
    if (!Number.isSafeInteger(offset) || offset < 0 || offset + total > size) {
      throw new Error(`write of ${total} bytes at offset ${offset} does not fit the peer's region ${id} (${size} bytes)`);
    }
    let done = 0;
    let partIndex = 0;
    let partOffset = 0;
    let last: Promise<void> = Promise.resolve();
    while (done < total) {
      const frameBytes = Math.min(TCP_MAX_WRITE_FRAME, total - done);
      const header = Buffer.allocUnsafe(FRAME_HEADER_BYTES[FRAME_WRITE]!);
      header[0] = FRAME_WRITE;
      header.writeUInt32LE(id, 1);
      header.writeDoubleLE(offset + done, 5);
      header.writeUInt32LE(frameBytes, 13);
      const frame: Buffer[] = [header];
      let left = frameBytes;
      while (left > 0) {
        const part = parts[partIndex]!;
        const take = Math.min(left, part.length - partOffset);
        if (take > 0) frame.push(partOffset === 0 && take === part.length ? part : part.subarray(partOffset, partOffset + take));
        left -= take;
        partOffset += take;
        if (partOffset === part.length) {
          partIndex++;
          partOffset = 0;
        }
      }
      // Pushed at once, never after waiting for 'drain': a send() called after this write() must go
      // out after its bytes (link.ts). The frames only reference the caller's buffers, which the
      // caller keeps until this resolves, so queueing them costs no copies.
      last = this.push(frame);
      done += frameBytes;
    }
    await last;
  }

  acquireStaging(bytes: number): Buffer | null {
    // 4 KiB aligned when the addon is built, as RDMA staging is, so O_DIRECT reads can fill it.
    return this.spare.get(bytes)?.pop() ?? pageIo()?.alignedBuffer(bytes) ?? Buffer.allocUnsafeSlow(bytes);
  }

  releaseStaging(buffer: Buffer): void {
    let list = this.spare.get(buffer.length);
    if (list === undefined) {
      list = [];
      this.spare.set(buffer.length, list);
    }
    if (list.length < SPARE_STAGING) list.push(buffer);
  }

  close(reason = 'closed'): void {
    if (this.closedReason !== null) return;
    const text = Buffer.from(reason.slice(0, 1000), 'utf8');
    const header = Buffer.allocUnsafe(5);
    header[0] = FRAME_CLOSE;
    header.writeUInt32LE(text.length, 1);
    // Best effort: tell the peer why, then go.
    if (this.socket.writable) this.socket.end(Buffer.concat([header, text]));
    this.finish(reason);
    // A peer that does not read must not keep the socket (and its buffers) alive.
    setTimeout(() => this.socket.destroy(), 2000).unref();
  }

  // ---- internals ------------------------------------------------------------------------

  /** Write frames in order; resolves when the last part has left for the kernel. */
  private push(parts: Buffer[]): Promise<void> {
    if (this.closedReason !== null) return Promise.reject(new Error(`link closed: ${this.closedReason}`));
    return new Promise<void>((resolve, reject) => {
      let settled = false;
      const settle = (err?: Error | null): void => {
        if (settled) return;
        settled = true;
        this.pending.delete(settle);
        if (err) reject(err);
        else resolve();
      };
      this.pending.add(settle);
      const socket = this.socket;
      socket.cork();
      for (let i = 0; i < parts.length; i++) {
        if (i === parts.length - 1) {
          socket.write(parts[i]!, (err) => settle(err ? new Error(`link closed: ${this.closedReason ?? err.message}`) : null));
        } else {
          socket.write(parts[i]!);
        }
      }
      socket.uncork();
    });
  }

  private finish(reason: string): void {
    if (this.closedReason !== null) return;
    this.closedReason = reason;
    this.localRegions.clear();
    this.remoteRegions.clear();
    this.writeRegion = null;
    this.payload = null;
    this.held.length = 0;
    const error = new Error(`link closed: ${reason}`);
    for (const settle of [...this.pending]) settle(error);
    this.pending.clear();
    if (!this.socket.destroyed && !this.socket.writableEnded) this.socket.destroy();
    const handler = this.closeHandler;
    if (handler !== null) queueMicrotask(() => handler(reason));
  }

  /** A protocol violation by the peer: say why and drop the connection. */
  private violation(reason: string): void {
    this.close(`protocol error from ${this.remoteAddress}: ${reason}`);
  }

  /**
   * Where the next socket read may land directly: the rest of the WRITE
   * payload being received, within one view (never past the frame, whose
   * next bytes belong to the following frame), or null.
   */
  directTarget(): Buffer | null {
    if (this.writeLeft === 0 || this.closedReason !== null) return null;
    const region = this.writeRegion!;
    const { views, starts } = region;
    let i = views.length - 1;
    while (i > 0 && starts[i]! > this.writeOffset) i--;
    const within = this.writeOffset - starts[i]!;
    const take = Math.min(this.writeLeft, views[i]!.length - within);
    return views[i]!.subarray(within, within + take);
  }

  /** `n` bytes were read straight into the target directTarget() returned. */
  landedDirectly(n: number): void {
    this.writeOffset += n;
    this.writeLeft -= n;
    if (this.writeLeft === 0) this.writeRegion = null;
  }

  onData(chunk: Buffer): void {
    let at = 0;
    while (at < chunk.length && this.closedReason === null) {
      if (this.writeLeft > 0) {
        const n = Math.min(this.writeLeft, chunk.length - at);
        copyIntoRegion(this.writeRegion!, this.writeOffset, chunk, at, n);
        this.writeOffset += n;
        this.writeLeft -= n;
        at += n;
        if (this.writeLeft === 0) this.writeRegion = null;
        continue;
      }
      if (this.payload !== null) {
        const n = Math.min(this.payload.length - this.payloadHave, chunk.length - at);
        chunk.copy(this.payload, this.payloadHave, at, at + n);
        this.payloadHave += n;
        at += n;
        if (this.payloadHave === this.payload.length) this.completePayload();
        continue;
      }
      if (this.headerHave === 0) {
        const need = FRAME_HEADER_BYTES[chunk[at]!];
        if (need === undefined) {
          this.violation(`unknown frame type ${chunk[at]}`);
          return;
        }
        this.headerNeed = need;
      }
      const n = Math.min(this.headerNeed - this.headerHave, chunk.length - at);
      chunk.copy(this.frameHeader, this.headerHave, at, at + n);
      this.headerHave += n;
      at += n;
      if (this.headerHave === this.headerNeed) {
        this.headerHave = 0;
        this.startFrame();
      }
    }
  }

  private startFrame(): void {
    const h = this.frameHeader;
    switch (h[0]) {
      case FRAME_MESSAGE:
      case FRAME_CLOSE: {
        const length = h.readUInt32LE(1);
        if (length > LINK_MAX_MESSAGE) {
          this.violation(`message of ${length} bytes exceeds the ${LINK_MAX_MESSAGE}-byte limit`);
          return;
        }
        this.payloadIsClose = h[0] === FRAME_CLOSE;
        this.payload = Buffer.allocUnsafe(length);
        this.payloadHave = 0;
        if (length === 0) this.completePayload();
        return;
      }
      case FRAME_EXPOSE: {
        const id = h.readUInt32LE(1);
        const size = h.readDoubleLE(5);
        if (id > MAX_REGION_ID || !Number.isSafeInteger(size) || size < 0) {
          this.violation(`bad region announcement (region ${id}, ${size} bytes)`);
          return;
        }
        this.remoteRegions.set(id, size);
        return;
      }
      case FRAME_WRITE: {
        const id = h.readUInt32LE(1);
        const offset = h.readDoubleLE(5);
        const length = h.readUInt32LE(13);
        const region = this.localRegions.get(id);
        if (region === undefined) {
          this.violation(`write of ${length} bytes to region ${id}, which is not exposed`);
          return;
        }
        if (length > TCP_MAX_WRITE_FRAME) {
          this.violation(`write frame of ${length} bytes exceeds the ${TCP_MAX_WRITE_FRAME}-byte limit`);
          return;
        }
        if (!Number.isSafeInteger(offset) || offset < 0 || offset + length > region.size) {
          this.violation(`write of ${length} bytes at offset ${offset} is outside region ${id} (${region.size} bytes)`);
          return;
        }
        this.writeRegion = length > 0 ? region : null;
        this.writeOffset = offset;
        this.writeLeft = length;
        return;
      }
    }
  }

  private completePayload(): void {
    const payload = this.payload!;
    this.payload = null;
    if (this.payloadIsClose) {
      this.peerReason = payload.toString('utf8');
      return;
    }
    if (this.messageHandler !== null) {
      this.messageHandler(payload);
    } else if (this.held.length < MAX_HELD_MESSAGES) {
      this.held.push(payload);
    } else {
      this.violation(`more than ${MAX_HELD_MESSAGES} messages before the protocol started`);
    }
  }
}

/** Socket reads into buffers the link picks (net's `onread`): the region itself while a WRITE payload comes in. */
class DirectReader {
  private link: TcpLink | null = null;
  private readonly scratch = Buffer.allocUnsafe(64 * 1024);
  private direct: Buffer | null = null;

  attach(link: TcpLink): void {
    this.link = link;
  }

  /** net calls this before every read for the buffer to read into. */
  nextBuffer(): Buffer {
    this.direct = this.link?.directTarget() ?? null;
    return this.direct ?? this.scratch;
  }

  /** net calls this after every read; the data is buf[0, n). */
  onRead(n: number, buf: Buffer): void {
    const link = this.link;
    if (link === null) return;
    if (buf === this.direct) link.landedDirectly(n);
    else link.onData(buf.subarray(0, n));
  }
}

/** Copy src[srcStart, srcStart+n) to `offset` in a region made of consecutive views. */
function copyIntoRegion(region: LocalRegion, offset: number, src: Buffer, srcStart: number, n: number): void {
  const { views, starts } = region;
  let i = views.length - 1;
  while (i > 0 && starts[i]! > offset) i--;
  while (n > 0) {
    const view = views[i]!;
    const within = offset - starts[i]!;
    const take = Math.min(n, view.length - within);
    src.copy(view, within, srcStart, srcStart + take);
    offset += take;
    srcStart += take;
    n -= take;
    i++;
  }
}

/** Connect to a TCP listener (the receiver). Rejects with the address and the reason. */
export function connectTcp(opts: ConnectOptions): Promise<Link> {
  const timeoutMs = opts.timeoutMs ?? DEFAULT_CONNECT_TIMEOUT_MS;
  const where = formatHostPort(opts.host, opts.port);
  return new Promise<Link>((resolve, reject) => {
    const reader = new DirectReader();
    const socket = net.connect({
      host: opts.host,
      port: opts.port,
      onread: { buffer: () => reader.nextBuffer(), callback: (n: number, buf: Uint8Array) => { reader.onRead(n, buf as Buffer); return true; } },
    });
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`could not connect to ${where}: timed out after ${timeoutMs} ms`));
    }, timeoutMs);
    socket.once('error', (err: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      reject(new Error(`could not connect to ${where}: ${err.code === 'ECONNREFUSED' ? 'connection refused' : err.message}`));
    });
    socket.once('connect', () => {
      clearTimeout(timer);
      socket.removeAllListeners('error');
      resolve(new TcpLink(socket, reader));
    });
  });
}

/** Listen for TCP links. Resolves once bound (port 0 picks a free port). */
export function listenTcp(opts: ListenOptions): Promise<LinkListener> {
  return new Promise<LinkListener>((resolve, reject) => {
    const server = net.createServer((socket) => {
      socket.on('error', () => {}); // replaced by the link's handler
      opts.onLink(new TcpLink(socket));
    });
    server.once('error', reject);
    server.listen({ host: opts.host, port: opts.port, backlog: 128 }, () => {
      server.off('error', reject);
      server.on('error', (err) => opts.onError?.(err));
      const bound = server.address() as net.AddressInfo;
      resolve({
        kind: 'tcp',
        address: formatHostPort(bound.address, bound.port),
        port: bound.port,
        close: () => new Promise<void>((done) => server.close(() => done())),
      });
    });
  });
}
