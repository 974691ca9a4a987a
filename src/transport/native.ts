// Typed loader for the poolkv_native addon (native/poolkv_native.cc), built by
// `npm install` (node-gyp → build/Release) or cmake-js (build/cmake/Release).
// It carries the RDMA snapshot transport (typed at the end of this file, used
// through rdma-link.ts) and reports what this build and host can do.
import * as fs from 'fs';
import * as path from 'path';

export interface NativeCapabilities {
  /** True when the addon was compiled against libibverbs/librdmacm. */
  rdma: boolean;
  /** Why RDMA is (un)usable, naming the packages to install when it is not compiled in. */
  reason: string;
  /** RDMA devices ibv_get_device_list() sees (0 when not compiled in). */
  devices: number;
  deviceNames: string[];
  /** Whether librdmacm could open an event channel (/dev/infiniband/rdma_cm). */
  rdmaCm: boolean;
}

export interface PoolkvNative extends PageIoNative {
  capabilities(): NativeCapabilities;
}

// ---- page_io.cc: off-thread page copy / CRC32 / file writes (the snapshot cut and the file sink)

/** Jobs of one snapshot cut; cancel() stops the queued ones and waits for the running ones. */
export interface CopyGroup {
  /** copyPageCrc in this group. */
  copyPageCrc(src: Uint8Array, dst: Uint8Array, seed?: number): Promise<number>;
  /** crc32Async in this group. */
  crc32Async(buf: Uint8Array, seed?: number): Promise<number>;
  /** Jobs not started yet reject with Error('cancelled'); returns once none is running (blocks briefly). */
  cancel(): void;
  readonly cancelled: boolean;
  /** Jobs that ran (not cancelled) so far. */
  readonly jobsRun: number;
}

export interface PageIoNative {
  /** zlib.crc32(buf, seed), computed on this thread (PCLMULQDQ when the CPU has it). */
  crc32(buf: Uint8Array, seed?: number): number;
  /** Copy src into dst (dst.length >= src.length, no overlap) and return crc32(copied bytes, seed); this thread. */
  copyPageCrcSync(src: Uint8Array, dst: Uint8Array, seed?: number): number;
  /** As copyPageCrcSync on the libuv threadpool; both buffers are held until the promise settles. */
  copyPageCrc(src: Uint8Array, dst: Uint8Array, seed?: number): Promise<number>;
  /** crc32 on the libuv threadpool. */
  crc32Async(buf: Uint8Array, seed?: number): Promise<number>;
  /**
   * Write all of `buffers` at `position` of `fd` (pwritev, retried until complete) on the threadpool,
   * then, if writebackLength > 0, start writeback of that range (sync_file_range SYNC_FILE_RANGE_WRITE).
   * Resolves with the bytes written; rejects with an Error carrying code/errno.
   */
  pwritev(fd: number, buffers: Uint8Array[], position: number, writebackOffset?: number, writebackLength?: number): Promise<number>;
  CopyGroup: new () => CopyGroup;
  /** How page jobs are scheduled ('idle': SCHED_IDLE worker plus a nice +5 rescuer; 'nice+N') and how many the rescuer took. */
  pageIoStats(): { mode: string; rescued: number };
  /** A Buffer of `bytes` whose memory starts on a 4096-byte boundary (for O_DIRECT I/O); not zero-filled, like allocUnsafe. */
  alignedBuffer(bytes: number): Buffer;
  /**
   * Read `count` image blocks (`stride` bytes apart from byte `first` of `fd`) straight into their
   * pages of `views` on `threads` threads off the event loop (native/image_load.cc). Block i's
   * 16-byte header lands in headers[16 i..] and the CRC32 of its fields and payload in crcs[i].
   * Resolves with how many blocks from the first are in place: less than `count` when the next
   * block's header must not be written (bad tag or length, page out of range), which the caller
   * reports. Rejects (Error with errno and block) when a read fails or the file ends early.
   * `direct`: fd was opened with O_DIRECT; groups of blocks are read into aligned buffers, then copied.
   */
  readImageBlocks(options: {
    fd: number; direct?: boolean; first: number; stride: number; count: number; pageSize: number; pageCount: number;
    views: readonly Buffer[]; viewBytes: number; headers: Buffer; crcs: Uint32Array; threads: number;
  }): Promise<number>;
  /**
   * Fault every page of `views` in for writing (MADV_POPULATE_WRITE) on `threads` threads, off the event loop.
   * Resolves false when the kernel lacks MADV_POPULATE_WRITE (nothing done).
   */
  populatePages(views: readonly Buffer[], threads: number): Promise<boolean>;
  /** 'pclmulqdq' or 'slicing-by-8'. */
  crc32Implementation: string;
}

/** Where the built addon may be, relative to the package root; node-gyp's output first. */
const ADDON_LOCATIONS = ['build/Release/poolkv_native.node', 'build/cmake/Release/poolkv_native.node'];

function packageRoot(): string {
  // dist/src/transport/native.js is three levels below the root; src/transport/native.ts two.
  for (const up of ['../../..', '../..']) {
    const root = path.resolve(__dirname, up);
    if (fs.existsSync(path.join(root, 'package.json')) && fs.existsSync(path.join(root, 'native'))) return root;
  }
  return path.resolve(__dirname, '../../..');
}

let loaded: PoolkvNative | null = null;

/** Load the addon (once). Throws with build instructions when it has not been built. */
export function loadNative(): PoolkvNative {
  if (loaded) return loaded;
  const root = packageRoot();
  // POOLKV_NATIVE_PATH: use a specific build (e.g. the ASan one from cmake-js) instead of the default ones.
  const override = process.env.POOLKV_NATIVE_PATH;
  const candidates = override ? [path.resolve(override)] : ADDON_LOCATIONS.map((p) => path.join(root, p));
  const found = candidates.find((file) => fs.existsSync(file));
  if (!found) {
    throw new Error(`poolkv_native addon not built (looked for ${candidates.join(', ')}); run \`npm rebuild\` or \`npm ci\``);
  }
  // A .node file can only be loaded through require().
  loaded = require(found) as PoolkvNative;
  return loaded;
}

/** The addon's capabilities, or an explanation of why the addon itself is unavailable. */
export function nativeCapabilities(): NativeCapabilities {
  try {
    return loadNative().capabilities();
  } catch (err) {
    return { rdma: false, reason: (err as Error).message, devices: 0, deviceNames: [], rdmaCm: false };
  }
}

let pageIoChecked = false;
let pageIoCached: PageIoNative | null = null;

/**
 * The addon's page_io functions, or null when the addon is not built (or is an
 * older build without them): callers then take their pure-JS path.
 */
export function pageIo(): PageIoNative | null {
  if (pageIoChecked) return pageIoCached;
  pageIoChecked = true;
  try {
    const n = loadNative();
    const needed = ['copyPageCrc', 'pwritev', 'CopyGroup', 'readImageBlocks', 'populatePages', 'alignedBuffer'] as const;
    if (needed.every((name) => typeof n[name] === 'function')) pageIoCached = n;
  } catch {
    pageIoCached = null;
  }
  return pageIoCached;
}

// ---- RDMA transport (native/rdma.cc, native/rdma_engine.cc) ----------------
// Declared as a second PoolkvNative block (interface merging) so the RDMA
// typings stay apart from the page-I/O ones. Used by rdma-link.ts.

/** Opaque handle to a native connection (a napi External); give it to `new RdmaConnection()`. */
export interface RdmaConnectionHandle {
  readonly __rdmaConnectionHandle: never;
}

/** What a connection's engine thread reports, in order, batched per JS call. */
export type RdmaLinkEvent =
  | { type: 'established'; device: string; local: string; remote: string }
  | { type: 'message'; data: Buffer }
  /** Every operation whose token is at most `token` has completed. */
  | { type: 'completed'; token: number }
  | { type: 'opFailed'; token: number; error: string }
  /** The engine thread is done; no native code touches the link's buffers after this. */
  | { type: 'closed'; reason: string };

export type RdmaListenerEvent =
  | { type: 'listening'; port: number; address: string }
  | { type: 'connection'; handle: RdmaConnectionHandle }
  | { type: 'error'; message: string }
  | { type: 'closed' };

export interface NativeRdmaConnection {
  /** Starts the engine thread; `onEvents` runs on the JS thread. */
  start(onEvents: (events: RdmaLinkEvent[]) => void): void;
  /** Each returns the operation's token; throws when the call is invalid. */
  send(message: Buffer): number;
  expose(id: number, region: Buffer[]): number;
  /** 0 when there is nothing to move (all parts empty). */
  write(id: number, offset: number, parts: Buffer[]): number;
  /** Queued operations, then a CLOSE message with `reason`, go out first (at most 2 s). */
  close(reason?: string): void;
  /** The device's registered staging arena, or why there is none. */
  stagingArena(): Buffer | string;
}

export interface NativeRdmaListener {
  close(): void;
}

export interface RdmaRegistration {
  /** The RDMA device the memory was registered with ("rxe0"). */
  device: string;
  bytes: number;
  /** False when an existing registration already covered the range. */
  registered: boolean;
}

export interface RdmaStats {
  /** ibv_reg_mr calls made for regions (pool, exposed regions, staging arenas). */
  registrations: number;
  /** Region registrations satisfied by an existing MR. */
  reuseHits: number;
  regionMrs: number;
  regionBytes: number;
  /** All bytes this process has pinned for RDMA (regions plus per-link buffers). */
  pinnedBytes: number;
  /** Native connection objects alive (a closed link's goes when its JS wrapper is collected). */
  connectionsOpen: number;
  listenersOpen: number;
  stagingBytes: number;
  writeBytesZeroCopy: number;
  writeBytesCopied: number;
}

export interface PoolkvNative {
  /** Null when an RDMA device and rdma_cm are usable, else why not (naming what to install or load). */
  rdmaUnavailableReason(): string | null;
  rdmaConnect(host: string, port: number, timeoutMs: number): RdmaConnectionHandle;
  RdmaConnection: new (handle: RdmaConnectionHandle) => NativeRdmaConnection;
  RdmaListener: new (host: string, port: number, onEvents: (events: RdmaListenerEvent[]) => void) => NativeRdmaListener;
  rdmaRegisterRegion(region: Buffer[], hostForDevice: string): Promise<RdmaRegistration>;
  rdmaStats(): RdmaStats;
  /**
   * Offset of a `bytes`-long slice of the device's staging arena (see
   * NativeRdmaConnection.stagingArena()), or -1 when none is free. Allocated
   * natively because the main thread and workers share the arena.
   */
  rdmaStagingAcquire(deviceName: string, bytes: number): number;
  /** False when the slice at `offset` was not handed out to this thread. */
  rdmaStagingRelease(deviceName: string, offset: number): boolean;
}
