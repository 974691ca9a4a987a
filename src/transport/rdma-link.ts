// RDMA transport: the Link interface (link.ts) over reliable-connected queue
// pairs set up through rdma_cm, driven by the poolkv_native addon
// (native/rdma.cc, native/rdma_engine.cc).
//
//   - Control messages travel as SEND/RECV (at most LINK_MAX_MESSAGE bytes).
//   - expose(id, region) registers the region (once per memory range for the
//     life of the process, per device) and sends the peer its address and rkey
//     in an ordered internal message.
//   - write(id, offset, parts) is RDMA WRITE straight into the peer's region,
//     split into work requests of RDMA_WRITE_CHUNK_BYTES. Parts in registered
//     memory (the pool after registerRdmaRegion(), staging buffers) go out
//     without a copy; other parts are copied into the link's registered bounce
//     buffers on the engine thread first.
//   - Everything a link is asked to do is posted in call order on one QP, so
//     a write() called before a send() lands before the peer sees the message.
//
// Sizes: control messages up to LINK_MAX_MESSAGE; work requests of
// RDMA_WRITE_CHUNK_BYTES, at most 16 MiB of writes in flight per link; staging
// buffers up to RDMA_STAGING_MAX_BYTES from a RDMA_STAGING_ARENA_BYTES arena per
// device. For benchmarks on real hardware, POOLKV_RDMA_WRITE_CHUNK_BYTES and
// POOLKV_RDMA_WRITE_INFLIGHT_BYTES override the chunk size (at most 1 MiB) and
// the in-flight cap.
//
// Memory that is exposed or registered stays registered, and referenced, for
// the life of the process: expose the same landing region again rather than a
// fresh buffer per transfer.
//
// The JS thread never waits on the network: connection set-up and completion
// polling run on one native thread per link, registration of a region given to
// registerRdmaRegion() on the libuv pool. (expose() of a region that is not yet
// registered registers it on the link's thread, delaying that link's later
// operations, which wait behind it anyway.)
import type { ConnectOptions, Link, LinkListener, ListenOptions } from './link';
import { LINK_MAX_MESSAGE } from './link';
import {
  loadNative,
  type NativeRdmaConnection,
  type NativeRdmaListener,
  type PoolkvNative,
  type RdmaLinkEvent,
  type RdmaListenerEvent,
  type RdmaRegistration,
  type RdmaStats,
} from './native';

export type { RdmaRegistration, RdmaStats } from './native';

/** Bulk writes are split into RDMA WRITE work requests of at most this size. */
export const RDMA_WRITE_CHUNK_BYTES = 1 << 20;
/** Registered staging memory per RDMA device that acquireStaging() hands out from. */
export const RDMA_STAGING_ARENA_BYTES = 32 << 20;
/** Largest buffer acquireStaging() hands out (one pool page is 1 MiB). */
export const RDMA_STAGING_MAX_BYTES = 4 << 20;
const DEFAULT_CONNECT_TIMEOUT_MS = 10_000;

/**
 * Buffers whose memory was registered (or is being registered): registrations
 * are cached by address for the life of the process, so the memory must never
 * be freed and reused, or a later registration lookup would find a stale MR.
 */
const registeredMemory = new Set<ArrayBufferLike>();

function keepRegistered(region: Buffer[]): void {
  for (const view of region) registeredMemory.add(view.buffer);
}

/**
 * Calls a user callback from inside a native event batch. A throw must not
 * cut the batch short (later events may settle promises), so it is rethrown
 * on its own tick, where it surfaces as an uncaught exception as usual.
 */
function callUser<T>(callback: (value: T) => void, value: T): void {
  try {
    callback(value);
  } catch (err) {
    process.nextTick(() => {
      throw err;
    });
  }
}

function native(): PoolkvNative {
  const addon = loadNative();
  if (typeof addon.rdmaConnect !== 'function') {
    throw new Error('the poolkv_native addon was built before RDMA support existed; rebuild it (npm rebuild)');
  }
  return addon;
}

/**
 * Null when RDMA can be used here (the addon has verbs support, a device is
 * present and rdma_cm works); otherwise why not, naming what to install or load.
 */
export function rdmaUnavailableReason(): string | null {
  try {
    return native().rdmaUnavailableReason();
  } catch (err) {
    return (err as Error).message;
  }
}

/** Counters from the native side (registrations, pinned bytes, zero-copy vs copied write bytes). */
export function rdmaStats(): RdmaStats {
  return native().rdmaStats();
}

/**
 * Register `region` (Buffer views forming one contiguous range, e.g. the
 * pool's 1 GiB views) for RDMA with the device that serves `hostForDevice` (a
 * local address of the RDMA netdev, or the peer's address), once, for the life
 * of the process. Later expose()/write() over any part of it reuse this
 * registration. Runs on the libuv pool. Rejects with a message naming
 * `ulimit -l` when the memlock limit is too low.
 */
export async function registerRdmaRegion(region: Buffer[], hostForDevice: string): Promise<RdmaRegistration> {
  keepRegistered(region);
  return native().rdmaRegisterRegion(region, hostForDevice);
}

// ---- staging buffers ----------------------------------------------------------

/**
 * Hands out slices of a device's registered staging arena. The arena is one
 * per device for the whole process; the native side allocates the slices, so
 * the main thread and worker threads never get the same memory.
 */
class StagingPool {
  constructor(
    readonly arena: Buffer,
    private readonly deviceName: string,
    private readonly addon: PoolkvNative,
  ) {}

  acquire(bytes: number): Buffer | null {
    const offset = this.addon.rdmaStagingAcquire(this.deviceName, bytes);
    return offset < 0 ? null : this.arena.subarray(offset, offset + bytes);
  }

  /** False when `buffer` is not a slice this pool handed out (or was already released). */
  release(buffer: Buffer): boolean {
    if (buffer.buffer !== this.arena.buffer) return false;
    return this.addon.rdmaStagingRelease(this.deviceName, buffer.byteOffset - this.arena.byteOffset);
  }
}

/** One pool per device, shared by all links on it; null when the arena could not be registered. */
const stagingPools = new Map<string, StagingPool | null>();

// ---- the link -----------------------------------------------------------------

interface PendingOperation {
  resolve(): void;
  reject(err: Error): void;
  /** Buffers the engine thread reads (write parts): kept alive until it is done with them. */
  buffers: Buffer[] | null;
}

interface SetupCallbacks {
  established(link: RdmaLink): void;
  failed(reason: string): void;
}

class RdmaLink implements Link {
  readonly kind = 'rdma' as const;
  description: string;
  remoteAddress: string;
  private deviceName = '';
  private established = false;
  /** In token order (Map keeps insertion order; tokens only grow). */
  private readonly pending = new Map<number, PendingOperation>();
  /** Buffers of rejected operations, held until the engine thread has exited. */
  private retained: Array<Buffer[]> = [];
  private engineDone = false;
  private heldMessages: Buffer[] = [];
  private messageHandler: ((message: Buffer) => void) | null = null;
  private closeHandlers: Array<(reason: string) => void> = [];
  private closedReason: string | null = null;
  /** The engine has ended the link; onClose runs on the next macrotask (see 'closed' below). */
  private endingReason: string | null = null;

  constructor(
    private readonly conn: NativeRdmaConnection,
    target: string,
    private readonly setup: SetupCallbacks,
  ) {
    this.description = `rdma ${target}`;
    this.remoteAddress = target;
    conn.start((events) => this.onEngineEvents(events));
  }

  send(message: Buffer): Promise<void> {
    if (!Buffer.isBuffer(message)) return Promise.reject(new TypeError('send() needs a Buffer'));
    if (message.length > LINK_MAX_MESSAGE) {
      return Promise.reject(
        new Error(`message of ${message.length} bytes exceeds LINK_MAX_MESSAGE (${LINK_MAX_MESSAGE} bytes)`),
      );
    }
    // The message is copied before send() returns, so it need not be kept.
    return this.submit(() => this.conn.send(message), null);
  }

  onMessage(handler: (message: Buffer) => void): void {
    this.messageHandler = handler;
    const held = this.heldMessages;
    this.heldMessages = [];
    for (const message of held) handler(message);
  }

  onClose(handler: (reason: string) => void): void {
    const reason = this.closedReason;
    if (reason !== null) {
      queueMicrotask(() => handler(reason));
      return;
    }
    this.closeHandlers.push(handler);
  }

  expose(id: number, region: Buffer[]): Promise<void> {
    if (!Array.isArray(region) || region.some((view) => !Buffer.isBuffer(view))) {
      return Promise.reject(new TypeError('expose() needs an array of Buffers'));
    }
    keepRegistered(region);
    return this.submit(() => this.conn.expose(id, region), null);
  }

  write(id: number, offset: number, parts: Buffer[]): Promise<void> {
    if (!Array.isArray(parts) || parts.some((part) => !Buffer.isBuffer(part))) {
      return Promise.reject(new TypeError('write() needs an array of Buffers'));
    }
    return this.submit(() => this.conn.write(id, offset, parts), parts);
  }

  acquireStaging(bytes: number): Buffer | null {
    if (this.closedReason !== null || !Number.isInteger(bytes) || bytes <= 0 || bytes > RDMA_STAGING_MAX_BYTES) {
      return null;
    }
    return this.stagingPool()?.acquire(bytes) ?? null;
  }

  releaseStaging(buffer: Buffer): void {
    for (const pool of stagingPools.values()) {
      if (pool?.release(buffer)) return;
    }
  }

  /**
   * Local promises reject at once; what was already asked for still goes out,
   * followed by a message with `reason` (the peer's onClose then says "peer
   * closed the link: <reason>"), for at most 2 s before the disconnect, as
   * the TCP link does.
   */
  close(reason = 'closed by this side'): void {
    if (this.closedReason !== null) return;
    this.conn.close(reason);
    this.finish(reason);
  }

  private stagingPool(): StagingPool | null {
    if (!this.established) return null;
    let pool = stagingPools.get(this.deviceName);
    if (pool === undefined) {
      const arena = this.conn.stagingArena();
      // A string says why there is no arena (e.g. memlock); hot paths then just copy.
      pool = typeof arena === 'string' ? null : new StagingPool(arena, this.deviceName, native());
      stagingPools.set(this.deviceName, pool);
    }
    return pool;
  }

  private submit(post: () => number, buffers: Buffer[] | null): Promise<void> {
    const ended = this.closedReason ?? this.endingReason;
    if (ended !== null) return Promise.reject(this.closedError(ended));
    let token: number;
    try {
      token = post();
    } catch (err) {
      return Promise.reject(err as Error);
    }
    if (token === 0) return Promise.resolve();
    return new Promise<void>((resolve, reject) => {
      this.pending.set(token, { resolve, reject, buffers });
    });
  }

  private closedError(reason: string): Error {
    return new Error(`${this.description} closed: ${reason}`);
  }

  private onEngineEvents(events: RdmaLinkEvent[]): void {
    for (const event of events) {
      switch (event.type) {
        case 'established':
          this.established = true;
          this.deviceName = event.device;
          this.remoteAddress = event.remote;
          this.description = `rdma ${event.remote} (${event.device})`;
          callUser(this.setup.established, this);
          break;
        case 'message':
          if (this.closedReason !== null) break;
          if (this.messageHandler) callUser(this.messageHandler, event.data);
          else this.heldMessages.push(event.data);
          break;
        case 'completed':
          for (const [token, operation] of this.pending) {
            if (token > event.token) break;
            this.pending.delete(token);
            operation.resolve();
          }
          break;
        case 'opFailed': {
          const operation = this.pending.get(event.token);
          if (operation) {
            this.pending.delete(event.token);
            operation.reject(new Error(event.error));
          }
          break;
        }
        case 'closed': {
          this.engineDone = true;
          this.retained = [];
          const reason = event.reason;
          if (!this.established && this.closedReason === null) {
            this.closedReason = reason;
            callUser(this.setup.failed, reason);
          } else if (this.closedReason === null) {
            // Its own macrotask, as a TCP link's close is its own I/O event: what
            // reacts to operations that completed just before (promise
            // continuations) runs before onClose does.
            this.endingReason = reason;
            setImmediate(() => this.finish(reason));
          }
          break;
        }
      }
    }
  }

  private finish(reason: string): void {
    if (this.closedReason !== null) return;
    this.closedReason = reason;
    const error = this.closedError(reason);
    for (const operation of this.pending.values()) {
      if (operation.buffers && !this.engineDone) this.retained.push(operation.buffers);
      operation.reject(error);
    }
    this.pending.clear();
    const handlers = this.closeHandlers;
    this.closeHandlers = [];
    for (const handler of handlers) callUser(handler, reason);
  }
}

// ---- connect / listen -----------------------------------------------------------

function validPort(port: number, allowZero: boolean): boolean {
  return Number.isInteger(port) && port >= (allowZero ? 0 : 1) && port <= 65535;
}

/**
 * Connect to an RDMA listener at opts.host:opts.port (an address of the
 * peer's RDMA netdev; rdma_cm cannot use 127.0.0.1). Rejects with what went
 * wrong: no device, address/route resolution failed, nothing listening
 * (RDMA_CM_EVENT_REJECTED), unreachable, or the timeout (default 10 s).
 */
export function connectRdma(opts: ConnectOptions): Promise<Link> {
  const target = `${opts.host}:${opts.port}`;
  return new Promise<Link>((resolve, reject) => {
    if (!validPort(opts.port, false)) {
      reject(new Error(`cannot connect over RDMA to ${target}: port out of range`));
      return;
    }
    let conn: NativeRdmaConnection;
    try {
      const addon = native();
      conn = new addon.RdmaConnection(addon.rdmaConnect(opts.host, opts.port, opts.timeoutMs ?? DEFAULT_CONNECT_TIMEOUT_MS));
    } catch (err) {
      reject(new Error(`cannot connect over RDMA to ${target}: ${(err as Error).message}`));
      return;
    }
    new RdmaLink(conn, target, {
      established: (link) => resolve(link),
      failed: (reason) => reject(new Error(reason)),
    });
  });
}

class RdmaListenerHandle implements LinkListener {
  readonly kind = 'rdma' as const;
  address = '';
  port = 0;
  private closing: Promise<void> | null = null;
  private resolveClosed: () => void = () => {};
  private readonly closed: Promise<void>;
  handle: NativeRdmaListener | null = null;

  constructor() {
    this.closed = new Promise<void>((resolve) => {
      this.resolveClosed = resolve;
    });
  }

  get isClosing(): boolean {
    return this.closing !== null;
  }

  markClosed(): void {
    this.resolveClosed();
  }

  /** Stops accepting; links already made stay up. Resolves once the listener's thread is done. */
  close(): Promise<void> {
    if (this.closing === null) {
      this.handle?.close();
      this.closing = this.closed;
    }
    return this.closing;
  }
}

/**
 * Listen for RDMA connections on opts.host:opts.port (port 0 picks one; the
 * listener's `port` says which). opts.onLink gets each link once it is
 * established; set-up failures of incoming connections go to opts.onError.
 */
export function listenRdma(opts: ListenOptions): Promise<LinkListener> {
  const target = `${opts.host}:${opts.port}`;
  return new Promise<LinkListener>((resolve, reject) => {
    if (!validPort(opts.port, true)) {
      reject(new Error(`cannot listen for RDMA on ${target}: port out of range`));
      return;
    }
    const listener = new RdmaListenerHandle();
    let listening = false;
    let addon: PoolkvNative;
    const onEvents = (events: RdmaListenerEvent[]): void => {
      for (const event of events) {
        switch (event.type) {
          case 'listening':
            listening = true;
            listener.port = event.port;
            listener.address = event.address;
            resolve(listener);
            break;
          case 'error':
            if (!listening) reject(new Error(event.message));
            else if (opts.onError) callUser(opts.onError, new Error(event.message));
            break;
          case 'connection': {
            const conn = new addon.RdmaConnection(event.handle);
            if (listener.isClosing) {
              conn.close('the listener is closing');
              break;
            }
            new RdmaLink(conn, 'incoming', {
              established: (link) => opts.onLink(link),
              failed: (reason) => opts.onError?.(new Error(`incoming RDMA connection failed: ${reason}`)),
            });
            break;
          }
          case 'closed':
            listener.markClosed();
            break;
        }
      }
    };
    try {
      addon = native();
      listener.handle = new addon.RdmaListener(opts.host, opts.port, onEvents);
    } catch (err) {
      reject(new Error(`cannot listen for RDMA on ${target}: ${(err as Error).message}`));
    }
  });
}
