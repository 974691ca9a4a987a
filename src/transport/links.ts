// Picks the Link implementation for a transport kind. TCP is always there;
// RDMA (rdma-link.ts, over the native addon) is loaded only when asked for,
// so hosts without RDMA never touch it, and when it cannot work the error
// says why (rdmaUnavailableReason()).
import * as os from 'os';
import type { ConnectOptions, Link, LinkKind, LinkListener, ListenOptions } from './link';
import { pageIo } from './native';
import { connectTcp, listenTcp } from './tcp-link';

/** What rdma-link.ts provides (loaded lazily). */
interface RdmaModule {
  connectRdma(opts: ConnectOptions): Promise<Link>;
  listenRdma(opts: ListenOptions): Promise<LinkListener>;
  registerRdmaRegion(region: Buffer[], hostForDevice: string): unknown;
  rdmaUnavailableReason(): string | null;
}

let rdmaModule: RdmaModule | null = null;

/** The RDMA link module, or an Error saying why RDMA cannot be used here. */
function loadRdma(): RdmaModule {
  if (rdmaModule !== null) return rdmaModule;
  let loaded: RdmaModule;
  try {
    // Lazily: the module loads the native addon's verbs bindings.
    loaded = require('./rdma-link') as RdmaModule;
  } catch (err) {
    throw new Error(`the RDMA transport is not available in this build: ${(err as Error).message.split('\n')[0]}`);
  }
  const reason = loaded.rdmaUnavailableReason();
  if (reason !== null) throw new Error(`RDMA is not usable on this host: ${reason}`);
  rdmaModule = loaded;
  return loaded;
}

export function isLinkKind(value: string): value is LinkKind {
  return value === 'tcp' || value === 'rdma';
}

export function connectLink(kind: LinkKind, opts: ConnectOptions): Promise<Link> {
  if (kind === 'tcp') return connectTcp(opts);
  return Promise.resolve().then(() => loadRdma().connectRdma(opts));
}

export function listenLink(kind: LinkKind, opts: ListenOptions): Promise<LinkListener> {
  if (kind === 'tcp') return listenTcp(opts);
  return Promise.resolve().then(() => loadRdma().listenRdma(opts));
}

/**
 * Register `region` (the pool's views) for RDMA once, at start-up, on the
 * device that reaches `hostForDevice`. Throws with the reason (e.g. the
 * memlock limit) so start-up can fail clearly. A no-op for TCP.
 */
export async function registerPoolRegion(kind: LinkKind, region: Buffer[], hostForDevice: string): Promise<void> {
  if (kind !== 'rdma') return;
  // ibv_reg_mr faults every page in on one thread; fault them in on every CPU first.
  await populateRegion(region);
  await loadRdma().registerRdmaRegion(region, hostForDevice);
}

/** Fault every page of `region` in for writing on every CPU, off the event loop; false without the addon or the kernel's support. */
export async function populateRegion(region: readonly Buffer[]): Promise<boolean> {
  const io = pageIo();
  return io !== null && io.populatePages(region, Math.max(1, Math.min(8, os.availableParallelism())));
}
