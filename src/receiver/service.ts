// The receiver service: listen on one or more transports (the same images
// for hosts with and without RDMA), run a ReceiverSession per connection,
// and keep the images (ImageStore) under DIR, which it locks so no second
// receiver numbers generations in it at the same time. Landing rings are
// reused across sessions and never freed: with RDMA a ring stays registered
// for the life of the process, so there are only ever as many rings as saves
// ran at the same time.
import * as fs from 'fs';
import * as path from 'path';
import type { Logger } from '../server/log';
import type { Link, LinkKind, LinkListener } from '../transport/link';
import { listenLink, registerPoolRegion } from '../transport/links';
import { pageIo } from '../transport/native';
import { PAGE_BYTES } from '../pool/memory';
import { BLOCK_HEADER_BYTES } from '../snapshot/image';
import { RING_SLOTS } from '../transport/protocol';
import { ReceiverSession, type SessionContext } from './session';
import { ImageStore } from './store';

/** Connections served at once; more are closed at once (each save holds a landing ring of ~8 MiB). */
const MAX_CONNECTIONS = 64;

export interface ReceiverOptions {
  host: string;
  port: number;
  dir: string;
  token: string;
  /** Listen on each (same address and port). */
  transports: LinkKind[];
  keep: number;
  log: Logger;
}

/** DIR's lock: the pid of the receiver using it. */
export const LOCK_FILE = 'poolkv-receiver.pid';

/** DIR is held by another receiver. */
export class DirectoryLockedError extends Error {}

function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * Take DIR for this process (DIR/poolkv-receiver.pid, created exclusively);
 * a lock left by a process that is gone is taken over. Throws when another
 * live receiver holds it.
 */
export function lockDirectory(dir: string): () => void {
  const file = path.join(dir, LOCK_FILE);
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      fs.writeFileSync(file, `${process.pid}\n`, { flag: 'wx' });
      return () => {
        try {
          if (fs.readFileSync(file, 'utf8').trim() === String(process.pid)) fs.rmSync(file, { force: true });
        } catch {
          // already gone
        }
      };
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      const holder = Number(fs.readFileSync(file, 'utf8').trim());
      if (Number.isInteger(holder) && holder > 0 && holder !== process.pid && processAlive(holder)) {
        throw new DirectoryLockedError(`${dir} is in use by another poolkv-receiver (pid ${holder}, ${file})`);
      }
      fs.rmSync(file, { force: true }); // stale: its receiver is gone
    }
  }
  throw new Error(`could not lock ${dir} (${file})`);
}

export class ReceiverService implements SessionContext {
  readonly store: ImageStore;
  readonly token: Buffer;
  readonly log: Logger;
  private readonly listeners: LinkListener[] = [];
  private unlock: (() => void) | null = null;
  private readonly links = new Set<Link>();
  private readonly spareRings: Buffer[] = [];

  constructor(private readonly options: ReceiverOptions) {
    this.log = options.log;
    this.token = Buffer.from(options.token, 'utf8');
    this.store = new ImageStore(options.dir, options.keep, options.log);
  }

  /** Lock and reload DIR, then listen on every transport. Resolves with the bound listeners. */
  async start(): Promise<LinkListener[]> {
    this.unlock = lockDirectory(this.options.dir);
    try {
      this.store.loadAll();
      const summary = this.store.summary();
      if (summary.length === 0) this.log.notice(`No images in ${this.options.dir} yet`);
      let port = this.options.port;
      for (const kind of this.options.transports) {
        const listener = await listenLink(kind, {
          host: this.options.host,
          port,
          onLink: (link) => this.accept(link),
          onError: (err) => this.log.warning(`Listener error (${kind}): ${err.message}`),
        });
        this.listeners.push(listener);
        // Port 0: the first transport picks one, the others use the same.
        if (port === 0) port = listener.port;
        if (kind === 'rdma') await this.prepareRing();
      }
    } catch (err) {
      await this.close();
      throw err;
    }
    return this.listeners;
  }

  private accept(link: Link): void {
    if (this.links.size >= MAX_CONNECTIONS) {
      this.log.warning(`Refused ${link.remoteAddress}: already serving ${MAX_CONNECTIONS} connections`);
      link.close('too many connections');
      return;
    }
    this.links.add(link);
    link.onClose(() => this.links.delete(link));
    this.log.verbose(`Accepted ${link.description}`);
    // run() never rejects; the catch only guards against a bug taking the process down.
    new ReceiverSession(link, this).run().catch((err: unknown) => {
      this.log.warning(`Session with ${link.remoteAddress} failed: ${err instanceof Error ? err.stack ?? err.message : String(err)}`);
      link.close('internal error');
    });
  }

  acquireRing(bytes: number): Buffer {
    const at = this.spareRings.findIndex((ring) => ring.length === bytes);
    if (at >= 0) return this.spareRings.splice(at, 1)[0]!;
    return pageIo()?.alignedBuffer(bytes) ?? Buffer.allocUnsafeSlow(bytes);
  }

  /**
   * One landing ring registered for RDMA now, so the first save does not pay for faulting in and
   * pinning it (~0.1 s in a TCG VM). Best effort: a failure here only means the first save registers it.
   */
  private async prepareRing(): Promise<void> {
    const ring = this.acquireRing(RING_SLOTS * (BLOCK_HEADER_BYTES + PAGE_BYTES));
    try {
      await registerPoolRegion('rdma', [ring], this.options.host);
    } catch (err) {
      this.log.verbose(`Landing ring not registered ahead: ${(err as Error).message}`);
    }
    this.spareRings.push(ring);
  }

  releaseRing(ring: Buffer): void {
    this.spareRings.push(ring);
  }

  /** Stop listening and drop every connection (their transfers are abandoned; temp files go at the next start). */
  async close(): Promise<void> {
    for (const link of [...this.links]) link.close('receiver shutting down');
    await Promise.all(this.listeners.splice(0).map((listener) => listener.close()));
    this.unlock?.();
    this.unlock = null;
  }
}
