// Everything a command handler may reach on the server side. Built once at
// start-up (server/main.ts) and shared by all connections.
import type { Keyspace } from '../store/keyspace';
import type { Pool } from '../pool/pool';
import type { Config } from '../config/config';
import type { Logger } from './log';
import type { ServerStats } from './stats';
import type { ClientRegistry } from './client-registry';
import type { CommandTable } from '../commands/table';
import type { Evictor } from '../store/eviction';

export interface ServerContext {
  readonly pool: Pool;
  readonly keyspace: Keyspace;
  readonly config: Config;
  readonly log: Logger;
  readonly stats: ServerStats;
  readonly clients: ClientRegistry;
  readonly commands: CommandTable;
  /** maxmemory enforcement (Redis's performEvictions). */
  readonly evictor: Evictor;
  /** ms since the epoch when the server started. */
  readonly startedAt: number;
  /** 40 hex chars, random per process (INFO server run_id). */
  readonly runId: string;
  readonly tcpPort: number;
  readonly configFile: string;
  readonly executable: string;
  /** SHUTDOWN: stop accepting, close clients, release the pool, exit. */
  shutdown(reason: string, exitCode: number): void;
}
