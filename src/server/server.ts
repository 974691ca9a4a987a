// The server: TCP listeners on every `bind` address, accepting connections
// (maxclients), a 100 ms cron (instantaneous metrics, idle-client timeout),
// and orderly close / SHUTDOWN. It is also the ServerContext that command
// handlers see.
import { Evictor, type EvictionPolicy } from '../store/eviction';
import { KeyspaceCron } from './keyspace-cron';
import type { LoadingState } from './loading';
import { randomBytes } from 'crypto';
import * as net from 'net';
import { CommandTable } from '../commands/table';
import type { Config } from '../config/config';
import type { Pool } from '../pool/pool';
import { ReplyWriter } from '../protocol/reply-writer';
import type { Keyspace } from '../store/keyspace';
import { ClientRegistry } from './client-registry';
import { Connection, formatAddress } from './connection';
import type { Logger } from './log';
import type { ServerContext } from './server-context';
import { METRIC_SAMPLE_INTERVAL_MS, ServerStats } from './stats';

export interface ServerDeps {
  pool: Pool;
  keyspace: Keyspace;
  config: Config;
  log: Logger;
  configFile: string;
  executable: string;
  /** A prepared command table (embedding, tests); by default every family in src/commands/index.ts. */
  commands?: CommandTable;
  /** Set while an image loads at start-up (src/server/loading.ts): no keyspace cron, no clean flag on exit. */
  loading?: LoadingState;
}

/** Redis's listen backlog default (tcp-backlog 511). */
const TCP_BACKLOG = 511;
/** Errors that make an optional ("-"-prefixed) bind address be skipped, as in Redis's listenToPort(). */
const SKIPPABLE_BIND_ERRORS = new Set([
  'EADDRNOTAVAIL', 'EAFNOSUPPORT', 'EPROTONOSUPPORT', 'ESOCKTNOSUPPORT', 'EPFNOSUPPORT', 'ENOPROTOOPT',
]);
const MAX_CLIENTS_ERROR = Buffer.from('-ERR max number of clients reached\r\n');
const MEMORY_SETTINGS = ['maxmemory', 'maxmemory-policy', 'maxmemory-samples', 'lfu-log-factor', 'lfu-decay-time'];

/** Ticks of the 100 ms cron between once-a-second jobs. */
const TICKS_PER_SECOND = 1000 / METRIC_SAMPLE_INTERVAL_MS;

export interface BindAddress {
  address: string;
  /** "-" prefix: skip the address if it is not available on this host. */
  optional: boolean;
}

/** Parse the `bind` setting ("127.0.0.1 -::1"; "*" is every IPv4 address, "::*" every IPv6 one). */
export function parseBindSetting(bind: string): BindAddress[] {
  const words = bind.split(/\s+/).filter((w) => w.length > 0);
  // Without any address Redis listens everywhere ("* -::*").
  if (words.length === 0) words.push('*', '-::*');
  return words.map((word) => {
    const optional = word.startsWith('-');
    let address = optional ? word.slice(1) : word;
    if (address === '*') address = '0.0.0.0';
    else if (address === '::*') address = '::';
    return { address, optional };
  });
}

export class Server implements ServerContext {
  readonly pool: Pool;
  readonly keyspace: Keyspace;
  readonly config: Config;
  readonly log: Logger;
  readonly stats: ServerStats;
  readonly clients: ClientRegistry;
  readonly commands: CommandTable;
  readonly startedAt = Date.now();
  readonly runId = randomBytes(20).toString('hex');
  readonly configFile: string;
  readonly executable: string;
  readonly loading: LoadingState | null;
  /** The port actually listened on (meaningful after listen(); port 0 picks a free one). */
  tcpPort = 0;

  /** Shared by all connections: single-threaded, drained at the end of every socket event. */
  readonly writer = new ReplyWriter();
  private readonly listeners: net.Server[] = [];
  private readonly shutdownHooks: Array<() => void> = [];
  /** maxmemory enforcement, shared by the dispatcher (before denyoom commands) and the cron. */
  readonly evictor: Evictor;
  private readonly keyspaceCron: KeyspaceCron;
  private cron: NodeJS.Timeout | null = null;
  private cronTicks = 0;
  private stopping = false;

  constructor(deps: ServerDeps) {
    this.pool = deps.pool;
    this.keyspace = deps.keyspace;
    this.config = deps.config;
    this.log = deps.log;
    this.configFile = deps.configFile;
    this.executable = deps.executable;
    this.loading = deps.loading ?? null;
    // The store counts hits/misses/expired/evicted in its own object; INFO reads them through stats.
    this.stats = new ServerStats(deps.keyspace.stats);
    this.clients = new ClientRegistry(() => this.config.getNumber('maxclients'));
    this.commands = deps.commands ?? new CommandTable();
    this.evictor = new Evictor(deps.keyspace, deps.pool);
    this.keyspaceCron = new KeyspaceCron(deps.keyspace, this.evictor, {
      hz: () => this.config.getNumber('hz'),
      activeRehashing: () => this.config.getBool('activerehashing'),
    });
    this.applyMemorySettings();
    for (const name of MEMORY_SETTINGS) this.config.onChange(name, () => this.applyMemorySettings());
  }

  /** Push maxmemory and eviction settings from the config into the pool, store and evictor. */
  private applyMemorySettings(): void {
    const policy = this.config.getString('maxmemory-policy') as EvictionPolicy;
    this.pool.maxmemory = this.config.getNumber('maxmemory');
    this.evictor.policy = policy;
    this.evictor.samples = this.config.getNumber('maxmemory-samples');
    this.keyspace.lfu = policy === 'allkeys-lfu' || policy === 'volatile-lfu';
    this.keyspace.lfuLogFactor = this.config.getNumber('lfu-log-factor');
    this.keyspace.lfuDecayTime = this.config.getNumber('lfu-decay-time');
  }

  /** Bind every `bind` address on `port`; resolves once all listeners are up. */
  async listen(): Promise<void> {
    const requestedPort = this.config.getNumber('port');
    let port = requestedPort;
    for (const { address, optional } of parseBindSetting(this.config.getString('bind'))) {
      try {
        const listener = await this.listenOn(address, port);
        this.listeners.push(listener);
        // With port 0 the first listener picks the port; the other addresses share it.
        if (port === 0) port = (listener.address() as net.AddressInfo).port;
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code ?? '';
        if (optional && SKIPPABLE_BIND_ERRORS.has(code)) {
          this.log.notice(`Skipping optional bind address ${address}: ${(err as Error).message}`);
          continue;
        }
        this.log.warning(`Warning: Could not create server TCP listening socket ${address}:${requestedPort}: ` +
          `${(err as Error).message}`);
        await this.closeListeners();
        throw err;
      }
    }
    if (this.listeners.length === 0) {
      throw new Error(`Failed listening on port ${requestedPort} (tcp): no bind address is available`);
    }
    this.tcpPort = port;
    this.cron = setInterval(() => this.tick(), METRIC_SAMPLE_INTERVAL_MS);
    this.cron.unref();
    this.log.notice('Ready to accept connections');
  }

  private listenOn(address: string, port: number): Promise<net.Server> {
    return new Promise((resolve, reject) => {
      const listener = net.createServer((socket) => this.accept(socket));
      listener.once('error', reject);
      // IPv6 sockets are v6-only, as Redis sets them, so "0.0.0.0" and "::" can both be bound.
      listener.listen({ host: address, port, backlog: TCP_BACKLOG, ipv6Only: address.includes(':') }, () => {
        listener.off('error', reject);
        listener.on('error', (err) => this.log.warning(`Listener ${address} error: ${err.message}`));
        resolve(listener);
      });
    });
  }

  private accept(socket: net.Socket): void {
    if (this.stopping) {
      socket.destroy();
      return;
    }
    socket.on('error', () => {}); // replaced by the connection's handler; a reset before that is harmless
    if (!this.clients.hasRoom()) {
      // Best effort, as Redis: tell the client why, then close.
      this.stats.rejectedConnections++;
      socket.end(MAX_CLIENTS_ERROR);
      return;
    }
    const authenticated = this.config.getString('requirepass') === '';
    const connection = new Connection(this, this.writer, socket, this.clients.nextId(), authenticated);
    this.clients.add(connection);
    this.stats.totalConnectionsReceived++;
    this.log.verbose(`Accepted ${formatAddress(socket.remoteAddress, socket.remotePort)}`);
  }

  /** serverCron's share for this layer: metrics every tick, idle clients once a second. */
  private tick(): void {
    const now = Date.now();
    this.stats.sample(now);
    // While an image loads, the data pages are not all in place: no expiry, rehashing or eviction.
    if (this.loading === null || !this.loading.active) this.keyspaceCron.run();
    if (++this.cronTicks % TICKS_PER_SECOND === 0) this.closeIdleClients(now);
  }

  /** `timeout` (seconds, 0 = never): close clients idle that long; subscribers are exempt, as in Redis. */
  private closeIdleClients(now: number): void {
    const timeout = this.config.getNumber('timeout');
    if (timeout <= 0) return;
    for (const handle of [...this.clients.handles()]) {
      const client = handle.client;
      if (client.subscriptions === 0 && now - client.lastInteraction > timeout * 1000) {
        handle.close('idle timeout');
      }
    }
  }

  /** Run `hook` during SHUTDOWN before the pool is released (e.g. stop a snapshot in progress). */
  addShutdownHook(hook: () => void): void {
    this.shutdownHooks.push(hook);
  }

  /** Stop listening and close every client. The pool is left to its owner. */
  async close(): Promise<void> {
    this.stopping = true;
    if (this.cron !== null) clearInterval(this.cron);
    this.cron = null;
    this.clients.closeAll('server closing');
    await this.closeListeners();
  }

  private async closeListeners(): Promise<void> {
    const listeners = this.listeners.splice(0);
    await Promise.all(listeners.map((listener) => new Promise<void>((resolve) => listener.close(() => resolve()))));
  }

  /** SHUTDOWN: stop accepting, close clients, mark the pool clean and release it, exit. */
  shutdown(reason: string, exitCode: number): void {
    this.log.warning(reason);
    this.stopping = true;
    if (this.cron !== null) clearInterval(this.cron);
    this.cron = null;
    for (const listener of this.listeners.splice(0)) listener.close();
    this.clients.closeAll('server shutting down');
    for (const hook of this.shutdownHooks) {
      try {
        hook();
      } catch (err) {
        this.log.warning(`Shutdown hook failed: ${err instanceof Error ? err.stack ?? err.message : String(err)}`);
      }
    }
    // A clean flag lets the next start attach the pool as it stands (warm restart); never a half-loaded one.
    if (this.loading === null || !this.loading.active) this.pool.setClean(true);
    this.pool.close();
    this.log.warning('Redis is now ready to exit, bye bye...');
    process.exit(exitCode);
  }
}
