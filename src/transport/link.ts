// A Link is one connection between a poolkv server and a poolkv-receiver,
// over TCP (tcp-link.ts) or RDMA (rdma-link.ts). The snapshot protocol
// (protocol.ts) is written once against this interface; the two transports
// differ only in how bulk bytes move:
//   - control messages: small, ordered (TCP: framed on the stream; RDMA: SEND/RECV);
//   - bulk data: write() into a region the peer exposed (TCP: a framed copy the
//     peer's link places into the region; RDMA: an RDMA WRITE straight into the
//     peer's registered memory, no CPU on the peer's side).
//
// Ordering: bytes write() places are visible to the peer before it receives
// any message send() is called with after that write() was called (RDMA RC
// places a WRITE before a later SEND on the same QP; TCP is one stream). So a
// sender can write a block, then announce it, without waiting in between.
//
// Security: a region is exposed (and, for RDMA, its rkey sent) only when the
// protocol calls expose(), which it does only after the peer presented the
// right token. A link never exposes memory on its own.

export type LinkKind = 'tcp' | 'rdma';

/** Largest control message a link carries (bytes). */
export const LINK_MAX_MESSAGE = 4096;

export interface Link {
  readonly kind: LinkKind;
  /** For logs and INFO: "tcp 127.0.0.1:7070", "rdma 198.18.0.1:7070 (rxe0)". */
  readonly description: string;
  /** The peer's address as "host:port". */
  readonly remoteAddress: string;

  /**
   * Send one control message (at most LINK_MAX_MESSAGE bytes). Resolves once
   * the message has left (the buffer may be reused); rejects if the link is
   * closed or fails.
   */
  send(message: Buffer): Promise<void>;

  /**
   * Messages arrive in order, one call per message. Messages that arrive
   * before a handler is set are held and delivered when it is set. The
   * buffer belongs to the handler.
   */
  onMessage(handler: (message: Buffer) => void): void;

  /** Called once when the link is gone (peer closed, error, or close()). */
  onClose(handler: (reason: string) => void): void;

  /**
   * Let the peer write into `region` under the small integer `id`. The
   * region is a list of Buffers that together form one contiguous range of
   * bytes (the pool's 1 GiB views, or one landing buffer); offsets in
   * write() address that whole range. For RDMA the range must be one
   * contiguous piece of memory (the views of one mapping are), registered on
   * first use and kept registered for the life of the process (the pool is
   * registered once, not per snapshot). Resolves once the peer has been told
   * (the description is carried by an ordered internal message).
   */
  expose(id: number, region: Buffer[]): Promise<void>;

  /**
   * Place `parts` (concatenated) at `offset` in the peer's region `id`.
   * Resolves once the bytes have left this side: the parts may then be
   * reused. Rejects if the peer has not exposed `id`, the range does not fit,
   * or the link fails. Any size; the link splits as its transport needs.
   */
  write(id: number, offset: number, parts: Buffer[]): Promise<void>;

  /**
   * A buffer of `bytes` from which write() moves data without copying it
   * first (RDMA: registered memory; TCP: a plain Buffer), for hot paths that
   * can fill it in place. Give it back with releaseStaging() once the write
   * that used it resolved. Returns null when none is free. With the addon
   * built the memory starts on a 4 KiB boundary (O_DIRECT reads can fill it).
   */
  acquireStaging(bytes: number): Buffer | null;
  releaseStaging(buffer: Buffer): void;

  /** Close the link; pending operations reject with `reason`. Idempotent. */
  close(reason?: string): void;
}

/** A listening endpoint (the receiver side). */
export interface LinkListener {
  readonly kind: LinkKind;
  /** The bound address as "host:port" (port resolved when 0 was asked). */
  readonly address: string;
  readonly port: number;
  close(): Promise<void>;
}

export interface ListenOptions {
  host: string;
  port: number;
  onLink(link: Link): void;
  onError?(err: Error): void;
}

export interface ConnectOptions {
  host: string;
  port: number;
  /** Give up connecting after this long (ms). */
  timeoutMs?: number;
}

/** Parse "host:port" ("[::1]:7070" for IPv6). Throws with a clear message. */
export function parseHostPort(value: string, what = 'address'): { host: string; port: number } {
  const m = /^\[([^\]]+)\]:(\d+)$/.exec(value) ?? /^([^:]+):(\d+)$/.exec(value);
  if (m === null) throw new Error(`${what} must be HOST:PORT, got ${JSON.stringify(value)}`);
  const port = Number(m[2]);
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new Error(`${what}: port ${m[2]} is out of range`);
  return { host: m[1]!, port };
}
