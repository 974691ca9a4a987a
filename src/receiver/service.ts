// The receiver service: listen on one transport, run a ReceiverSession per
// connection, and keep the images (ImageStore) under DIR. Landing rings are
// reused across sessions and never freed: with RDMA a ring stays registered
// for the life of the process, so there are only ever as many rings as saves
// ran at the same time.
import type { Logger } from '../server/log';
import type { Link, LinkKind, LinkListener } from '../transport/link';
import { listenLink } from '../transport/links';
import { ReceiverSession, type SessionContext } from './session';
import { ImageStore } from './store';

/** Connections served at once; more are closed at once (each save holds a landing ring of ~4 MiB). */
const MAX_CONNECTIONS = 64;

export interface ReceiverOptions {
  host: string;
  port: number;
  dir: string;
  token: string;
  transport: LinkKind;
  keep: number;
  log: Logger;
}

export class ReceiverService implements SessionContext {
  readonly store: ImageStore;
  readonly token: Buffer;
  readonly log: Logger;
  private listener: LinkListener | null = null;
  private readonly links = new Set<Link>();
  private readonly spareRings: Buffer[] = [];

  constructor(private readonly options: ReceiverOptions) {
    this.log = options.log;
    this.token = Buffer.from(options.token, 'utf8');
    this.store = new ImageStore(options.dir, options.keep, options.log);
  }

  /** Reload DIR, then listen. Resolves with the bound listener. */
  async start(): Promise<LinkListener> {
    this.store.loadAll();
    const summary = this.store.summary();
    if (summary.length === 0) this.log.notice(`No images in ${this.options.dir} yet`);
    this.listener = await listenLink(this.options.transport, {
      host: this.options.host,
      port: this.options.port,
      onLink: (link) => this.accept(link),
      onError: (err) => this.log.warning(`Listener error: ${err.message}`),
    });
    return this.listener;
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
    return Buffer.allocUnsafeSlow(bytes);
  }

  releaseRing(ring: Buffer): void {
    this.spareRings.push(ring);
  }

  /** Stop listening and drop every connection (their transfers are abandoned; temp files go at the next start). */
  async close(): Promise<void> {
    for (const link of [...this.links]) link.close('receiver shutting down');
    await this.listener?.close();
    this.listener = null;
  }
}
