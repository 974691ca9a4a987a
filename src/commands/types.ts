// The command table's vocabulary. Every command is declared the way Redis's
// command table declares it (arity, flags, key positions, ACL categories), so
// COMMAND INFO / COMMAND DOCS can be answered from the same declarations that
// the dispatcher uses for arity checks and OOM / auth gating.
import type { ReplyWriter } from '../protocol/reply-writer';
import type { ClientState } from '../server/client-state';
import type { ServerContext } from '../server/server-context';

/** Redis command flags (lowercase, as COMMAND INFO prints them). */
export type CommandFlag =
  | 'write' | 'readonly' | 'denyoom' | 'admin' | 'pubsub' | 'noscript' | 'blocking'
  | 'loading' | 'stale' | 'skip_monitor' | 'skip_slowlog' | 'asking' | 'fast'
  | 'no_auth' | 'may_replicate' | 'no_mandatory_keys' | 'no_multi' | 'allow_busy'
  | 'module' | 'no_async_loading';

export type CommandHandler = (ctx: CommandContext, argv: Buffer[]) => void;

export interface CommandSpec {
  /** Lowercase name; for a subcommand just the subcommand part ("setname"). */
  name: string;
  /** Redis arity: n > 0 means exactly n arguments (name included), n < 0 means at least -n. */
  arity: number;
  flags: CommandFlag[];
  /** 1-based key positions as in COMMAND INFO; 0,0,0 for commands without keys. lastKey -1 = last arg. */
  firstKey: number;
  lastKey: number;
  step: number;
  /** ACL categories without the '@' ("string", "write", "fast", ...). */
  acl: string[];
  /** COMMAND DOCS fields. */
  group: string;
  since: string;
  summary: string;
  complexity?: string;
  /** Present on container commands (CLIENT, CONFIG, OBJECT, COMMAND). */
  subcommands?: CommandSpec[];
  /** Absent on containers: the dispatcher routes to the subcommand. */
  handler?: CommandHandler;
}

/** What a handler sees. One instance per connection, reused for every command (no per-request allocation). */
export interface CommandContext {
  readonly reply: ReplyWriter;
  readonly client: ClientState;
  readonly server: ServerContext;
}
