// The snapshot protocol between a poolkv server and a poolkv-receiver
// (docs/snapshot-protocol.md): the control messages, their binary encoding,
// the limits every decoder enforces, and MessageChannel, which turns a Link's
// message stream into "await the next message" with timeouts. The two
// conversations (SAVE: server → receiver, LOAD: receiver → server) run on top
// of it in peer-sink.ts / peer-load.ts (server side) and
// src/receiver/session.ts (receiver side); they only use the Link interface,
// so TCP and RDMA carry them alike.
import { createHash, timingSafeEqual } from 'crypto';
import { BLOCK_HEADER_BYTES, IMAGE_HEADER_BYTES, TRAILER_BYTES } from '../snapshot/image';
import type { Link } from './link';

/**
 * Version 2 added IMAGE's page extent. A receiver speaks every version from MIN_PROTOCOL_VERSION up, so
 * servers of an older release keep working with a newer receiver (upgrade receivers first).
 */
export const PROTOCOL_VERSION = 2;
export const MIN_PROTOCOL_VERSION = 1;
/** Region the receiver exposes for a SAVE: the landing ring. */
export const RING_REGION = 1;
/** Region the server exposes for a LOAD: its whole pool. */
export const POOL_REGION = 2;
/** Landing slots the receiver offers per SAVE. */
export const RING_SLOTS = 8;
/** Blocks a receiver may have written and announced before the server credits them back (LOAD). */
export const LOAD_WINDOW = 32;
export const MAX_NAME_BYTES = 64;
export const MAX_TOKEN_BYTES = 1024;
export const MAX_REASON_BYTES = 2000;

/** Snapshot names: a directory name on the receiver, so a safe charset and no path tricks. */
const NAME_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;

export function snapshotNameProblem(name: string): string | null {
  if (NAME_PATTERN.test(name)) return null;
  return `snapshot name ${JSON.stringify(name.slice(0, 80))} is not valid: use 1 to ${MAX_NAME_BYTES} characters ` +
    'from A-Z a-z 0-9 . _ -, starting with a letter or digit';
}

/** Compare two tokens in constant time (hashes first, so lengths leak nothing either). */
export function tokensEqual(given: Buffer, expected: Buffer): boolean {
  const a = createHash('sha256').update(given).digest();
  const b = createHash('sha256').update(expected).digest();
  return timingSafeEqual(a, b) && expected.length > 0;
}

export type Role = 'save' | 'load';

export type Message =
  /** server → receiver: who I am and what I want. `header` (the encoded image header) only for save. */
  | { type: 'hello'; protocolVersion: number; role: Role; name: string; token: Buffer; formatVersion: number; header: Buffer | null }
  /** receiver → server (save): the ring is exposed as `region`, `slots` slots of `slotBytes`. */
  | { type: 'welcome'; region: number; slots: number; slotBytes: number }
  /** receiver → server: not accepted, and why; the receiver closes. */
  | { type: 'refuse'; reason: string }
  /** server → receiver (save): block `index` (its header + page) is in ring slot `slot`. */
  | { type: 'block'; slot: number; index: number }
  /** receiver → server (save): slot `slot` is free again (its block is on disk). */
  | { type: 'credit'; slot: number }
  /** server → receiver (save): every block was sent; the trailer. */
  | { type: 'commit'; trailer: Buffer }
  /** receiver → server (save): the image is durable and current, as `generation`. */
  | { type: 'committed'; generation: number }
  /** either way: the transfer is abandoned, and why. */
  | { type: 'failed'; reason: string }
  /**
   * receiver → server (load): the current image's header and generation; from version 2 also its page
   * extent, one past the highest page the image carries (the server exposes only the pool below it).
   */
  | { type: 'image'; generation: number; header: Buffer; pageExtent: number | null }
  /** receiver → server (load): no image under this name. */
  | { type: 'no-image' }
  /** server → receiver (load): the pool is exposed as `region`; send at most `window` blocks ahead. */
  | { type: 'ready'; region: number; window: number }
  /** receiver → server (load): block `index`'s page is in place; its block header. */
  | { type: 'load-block'; index: number; blockHeader: Buffer }
  /** server → receiver (load): `count` more blocks were verified. */
  | { type: 'load-credit'; count: number }
  /** receiver → server (load): every block was sent; the trailer. */
  | { type: 'end'; trailer: Buffer }
  /** server → receiver (load): the image verified; done. */
  | { type: 'loaded' };

export type MessageType = Message['type'];

const TYPE_CODES: Record<MessageType, number> = {
  hello: 1, welcome: 2, refuse: 3, block: 4, credit: 5, commit: 6, committed: 7, failed: 8,
  image: 9, 'no-image': 10, ready: 11, 'load-block': 12, 'load-credit': 13, end: 14, loaded: 15,
};
const TYPE_NAMES = new Map<number, MessageType>(Object.entries(TYPE_CODES).map(([name, code]) => [code, name as MessageType]));

/** A message that cannot be decoded (the peer broke the protocol). */
export class ProtocolError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ProtocolError';
  }
}

class Writer {
  private readonly parts: Buffer[] = [];
  u8(v: number): this { const b = Buffer.allocUnsafe(1); b[0] = v; this.parts.push(b); return this; }
  u16(v: number): this { const b = Buffer.allocUnsafe(2); b.writeUInt16LE(v); this.parts.push(b); return this; }
  u32(v: number): this { const b = Buffer.allocUnsafe(4); b.writeUInt32LE(v >>> 0); this.parts.push(b); return this; }
  bytes(v: Buffer): this { this.parts.push(v); return this; }
  /** u16 length + bytes. */
  text(v: string, max: number): this {
    let b = Buffer.from(v, 'utf8');
    if (b.length > max) b = b.subarray(0, max);
    return this.u16(b.length).bytes(b);
  }
  done(): Buffer { return Buffer.concat(this.parts); }
}

class Reader {
  private at = 1;
  constructor(private readonly b: Buffer, private readonly what: string) {}
  private need(n: number): void {
    if (this.at + n > this.b.length) throw new ProtocolError(`${this.what} message is truncated (${this.b.length} bytes)`);
  }
  remaining(): number { return this.b.length - this.at; }
  u8(): number { this.need(1); return this.b[this.at++]!; }
  u16(): number { this.need(2); const v = this.b.readUInt16LE(this.at); this.at += 2; return v; }
  u32(): number { this.need(4); const v = this.b.readUInt32LE(this.at); this.at += 4; return v; }
  bytes(n: number): Buffer { this.need(n); const v = Buffer.from(this.b.subarray(this.at, this.at + n)); this.at += n; return v; }
  /** u16 length + bytes, at most `max`. */
  blob(max: number, field: string): Buffer {
    const n = this.u16();
    if (n > max) throw new ProtocolError(`${this.what}: ${field} of ${n} bytes exceeds ${max}`);
    return this.bytes(n);
  }
  text(max: number, field: string): string { return this.blob(max, field).toString('utf8'); }
  end(): void {
    if (this.at !== this.b.length) throw new ProtocolError(`${this.what} message has ${this.b.length - this.at} unexpected trailing bytes`);
  }
}

export function encodeMessage(m: Message): Buffer {
  const w = new Writer().u8(TYPE_CODES[m.type]);
  switch (m.type) {
    case 'hello':
      // The protocol version comes first, so any later version can still be read and refused.
      w.u16(m.protocolVersion).u8(m.role === 'save' ? 1 : 2).u32(m.formatVersion).text(m.name, 255);
      w.u16(m.token.length).bytes(m.token);
      if (m.header !== null) w.u8(1).bytes(m.header);
      else w.u8(0);
      break;
    case 'welcome': w.u32(m.region).u32(m.slots).u32(m.slotBytes); break;
    case 'refuse': case 'failed': w.text(m.reason, MAX_REASON_BYTES); break;
    case 'block': w.u32(m.slot).u32(m.index); break;
    case 'credit': w.u32(m.slot); break;
    case 'commit': case 'end': w.bytes(m.trailer); break;
    case 'committed': w.u32(m.generation); break;
    case 'image':
      w.u32(m.generation).bytes(m.header);
      if (m.pageExtent !== null) w.u32(m.pageExtent);
      break;
    case 'no-image': case 'loaded': break;
    case 'ready': w.u32(m.region).u32(m.window); break;
    case 'load-block': w.u32(m.index).bytes(m.blockHeader); break;
    case 'load-credit': w.u32(m.count); break;
  }
  return w.done();
}

/** Decode one message; throws ProtocolError on anything malformed. */
export function decodeMessage(b: Buffer): Message {
  if (b.length === 0) throw new ProtocolError('empty message');
  const type = TYPE_NAMES.get(b[0]!);
  if (type === undefined) throw new ProtocolError(`unknown message type ${b[0]}`);
  const r = new Reader(b, type);
  let m: Message;
  switch (type) {
    case 'hello': {
      const protocolVersion = r.u16();
      if (protocolVersion < MIN_PROTOCOL_VERSION || protocolVersion > PROTOCOL_VERSION) {
        // Whatever follows is another version's business.
        return { type, protocolVersion, role: 'save', name: '', token: Buffer.alloc(0), formatVersion: 0, header: null };
      }
      const roleCode = r.u8();
      if (roleCode !== 1 && roleCode !== 2) throw new ProtocolError(`hello: unknown role ${roleCode}`);
      const formatVersion = r.u32();
      const name = r.text(255, 'name');
      const token = r.blob(MAX_TOKEN_BYTES, 'token');
      const hasHeader = r.u8();
      const header = hasHeader === 1 ? r.bytes(IMAGE_HEADER_BYTES) : null;
      m = { type, protocolVersion, role: roleCode === 1 ? 'save' : 'load', name, token, formatVersion, header };
      break;
    }
    case 'welcome': m = { type, region: r.u32(), slots: r.u32(), slotBytes: r.u32() }; break;
    case 'refuse': case 'failed': m = { type, reason: r.text(MAX_REASON_BYTES, 'reason') }; break;
    case 'block': m = { type, slot: r.u32(), index: r.u32() }; break;
    case 'credit': m = { type, slot: r.u32() }; break;
    case 'commit': case 'end': m = { type, trailer: r.bytes(TRAILER_BYTES) }; break;
    case 'committed': m = { type, generation: r.u32() }; break;
    case 'image': m = { type, generation: r.u32(), header: r.bytes(IMAGE_HEADER_BYTES), pageExtent: r.remaining() > 0 ? r.u32() : null }; break;
    case 'no-image': case 'loaded': m = { type }; break;
    case 'ready': m = { type, region: r.u32(), window: r.u32() }; break;
    case 'load-block': m = { type, index: r.u32(), blockHeader: r.bytes(BLOCK_HEADER_BYTES) }; break;
    case 'load-credit': m = { type, count: r.u32() }; break;
  }
  r.end();
  return m;
}

/** A short printable form of a peer-supplied string for logs. */
export function printable(text: string, max = 200): string {
  const clipped = text.length > max ? `${text.slice(0, max)}...` : text;
  return clipped.replace(/[\x00-\x1f\x7f]/g, '?');
}

/**
 * A Link's messages, decoded, as a queue: next() awaits the next one (with a
 * timeout), or listen() hands each to a callback. A malformed message or the
 * link closing rejects what is waiting with the reason; `closedReason` keeps it.
 */
export class MessageChannel {
  private readonly queue: Message[] = [];
  private waiter: { resolve(m: Message): void; reject(e: Error): void; timer: NodeJS.Timeout } | null = null;
  private listener: ((m: Message) => void) | null = null;
  private failure: Error | null = null;
  private closeListeners: Array<(reason: string) => void> = [];
  closedReason: string | null = null;

  constructor(readonly link: Link) {
    link.onMessage((bytes) => {
      if (this.failure !== null) return;
      let m: Message;
      try {
        m = decodeMessage(bytes);
      } catch (err) {
        this.fail(err as Error);
        link.close(`protocol error: ${(err as Error).message}`);
        return;
      }
      if (this.listener !== null) this.listener(m);
      else if (this.waiter !== null) {
        const w = this.waiter;
        this.waiter = null;
        clearTimeout(w.timer);
        w.resolve(m);
      } else this.queue.push(m);
    });
    link.onClose((reason) => {
      this.closedReason = reason;
      this.fail(new Error(reason));
      for (const listener of this.closeListeners.splice(0)) listener(reason);
    });
  }

  private fail(err: Error): void {
    if (this.failure === null) this.failure = err;
    const w = this.waiter;
    this.waiter = null;
    if (w !== null) {
      clearTimeout(w.timer);
      w.reject(this.failure);
    }
  }

  /** The next message; rejects after `timeoutMs` ("<what> timed out"), on a bad message or when the link closes. */
  next(what: string, timeoutMs: number): Promise<Message> {
    const queued = this.queue.shift();
    if (queued !== undefined) return Promise.resolve(queued);
    if (this.failure !== null) return Promise.reject(this.failure);
    return new Promise<Message>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiter = null;
        reject(new Error(`no answer from the peer within ${Math.round(timeoutMs / 1000)} s while waiting for ${what}`));
      }, timeoutMs);
      this.waiter = { resolve, reject, timer };
    });
  }

  /** From now on, every message goes to `handler` (queued ones first). */
  listen(handler: (m: Message) => void): void {
    this.listener = handler;
    while (this.queue.length > 0 && this.listener === handler) handler(this.queue.shift()!);
  }

  /** Called once when the link closes (at once if it already has). */
  onClose(handler: (reason: string) => void): void {
    if (this.closedReason !== null) queueMicrotask(() => handler(this.closedReason!));
    else this.closeListeners.push(handler);
  }

  send(m: Message): Promise<void> {
    return this.link.send(encodeMessage(m));
  }

  /**
   * After sending the last message of a conversation: let the peer close
   * first (it does once it has read that message), and close only after
   * `timeoutMs` otherwise. Closing at once could let the peer see the link
   * go down before the message (RDMA reports a disconnect on its own path).
   */
  closeAfterPeer(reason: string, timeoutMs = 2000): Promise<void> {
    if (this.closedReason !== null) return Promise.resolve();
    return new Promise<void>((resolve) => {
      const timer = setTimeout(() => {
        this.link.close(reason);
        resolve();
      }, timeoutMs);
      this.onClose(() => {
        clearTimeout(timer);
        resolve();
      });
    });
  }

  /** The error a failed peer conversation ends with. */
  get error(): Error | null {
    return this.failure;
  }
}
