// The command table and the dispatcher. Commands are found by name without
// allocating (a bucketed index compared byte by byte, case-insensitively);
// then Redis 7.0's processCommand() checks run in its order: existence
// (unknown command / subcommand), arity, authentication, maxmemory, and the
// handler runs. Handler crashes are contained here: the server survives.
import { performance } from 'perf_hooks';
import { PoolFullError } from '../pool/errors';
import { PAGE_BYTES } from '../pool/memory';
import type { ServerContext } from '../server/server-context';
import type { ReplyWriter } from '../protocol/reply-writer';
import type { CommandContext, CommandFlag, CommandSpec } from './types';
import { authRequired } from './connection';
import { allCommandSpecs } from './index';
import { SnapshotService } from '../snapshot/service';

const FLAG_BITS: Record<CommandFlag, number> = {
  write: 1 << 0, readonly: 1 << 1, denyoom: 1 << 2, module: 1 << 3, admin: 1 << 4, pubsub: 1 << 5,
  noscript: 1 << 6, blocking: 1 << 7, loading: 1 << 8, stale: 1 << 9, skip_monitor: 1 << 10,
  skip_slowlog: 1 << 11, asking: 1 << 12, fast: 1 << 13, no_auth: 1 << 14, may_replicate: 1 << 15,
  no_mandatory_keys: 1 << 16, no_multi: 1 << 17, allow_busy: 1 << 18, no_async_loading: 1 << 19,
};
const NO_AUTH = FLAG_BITS.no_auth;
const DENY_OOM = FLAG_BITS.denyoom;
const WRITE = FLAG_BITS.write;

const OOM_ERROR = "OOM command not allowed when used memory > 'maxmemory'.";
const MISCONF_ERROR = "MISCONF Redis is configured to save RDB snapshots, but it's currently unable to persist to disk. " +
  'Commands that may modify the data set are disabled, because this instance is configured to report errors during writes ' +
  'if RDB snapshotting fails (stop-writes-on-bgsave-error option). Please check the Redis logs for details about the RDB error.';
const NOAUTH_ERROR = 'NOAUTH Authentication required.';
const INTERNAL_ERROR = 'ERR internal error';
/** Largest batch of slab pages emptied before one retry of a write that found the pool full (1, 2, 4, ... 2048). */
const MAX_PAGES_RECLAIMED = 2048;
const MINUS = 0x2d;

/** A command (or subcommand) as the table holds it: its declaration plus INFO commandstats counters. */
export class CommandEntry {
  /** "get", or "client|setname" for a subcommand (COMMAND INFO, errors, CLIENT LIST cmd=). */
  readonly fullName: string;
  /** Lowercase name bytes, for allocation-free lookup. */
  readonly nameBytes: Buffer;
  readonly flagBits: number;
  readonly subcommands: readonly CommandEntry[];
  private readonly subIndex: NameIndex | null;

  /** INFO commandstats: calls, usec, rejected_calls, failed_calls. */
  calls = 0;
  usec = 0;
  rejectedCalls = 0;
  failedCalls = 0;

  constructor(readonly spec: CommandSpec, readonly parent: CommandEntry | null) {
    const name = spec.name.toLowerCase();
    this.fullName = parent ? `${parent.fullName}|${name}` : name;
    this.nameBytes = Buffer.from(name, 'latin1');
    let bits = 0;
    for (const flag of spec.flags) bits |= FLAG_BITS[flag];
    this.flagBits = bits;
    // Declaration mistakes surface at start-up rather than as odd replies.
    if (spec.subcommands === undefined && spec.handler === undefined) {
      throw new Error(`command '${this.fullName}' has neither a handler nor subcommands`);
    }
    // A container runs bare only through its own handler (COMMAND, arity -1); otherwise it needs a subcommand.
    if (spec.subcommands !== undefined && spec.handler === undefined && spec.arity > -2) {
      throw new Error(`container command '${this.fullName}' without a handler must have arity <= -2`);
    }
    const subs = (spec.subcommands ?? []).map((sub) => new CommandEntry(sub, this));
    this.subcommands = subs;
    this.subIndex = subs.length > 0 ? new NameIndex(subs) : null;
  }

  get name(): string {
    return this.spec.name;
  }

  hasFlag(flag: CommandFlag): boolean {
    return (this.flagBits & FLAG_BITS[flag]) !== 0;
  }

  get isContainer(): boolean {
    return this.subIndex !== null;
  }

  /** The subcommand named by `name` (any case), if this is a container. */
  findSubcommand(name: Buffer | string): CommandEntry | undefined {
    if (this.subIndex === null) return undefined;
    return this.subIndex.find(typeof name === 'string' ? Buffer.from(name, 'latin1') : name);
  }

  resetStats(): void {
    this.calls = this.usec = this.rejectedCalls = this.failedCalls = 0;
    for (const sub of this.subcommands) sub.resetStats();
  }
}

/**
 * Case-insensitive name → entry without allocating: entries are bucketed by
 * (length, first letter) and compared byte by byte, folding ASCII case.
 */
class NameIndex {
  private readonly buckets: Array<CommandEntry[] | undefined> = [];
  private readonly maxLength: number;

  constructor(entries: readonly CommandEntry[]) {
    let max = 0;
    for (const entry of entries) {
      const name = entry.nameBytes;
      max = Math.max(max, name.length);
      const key = NameIndex.key(name.length, name[0]!);
      const bucket = this.buckets[key] ?? (this.buckets[key] = []);
      if (bucket.some((other) => other.nameBytes.equals(name))) {
        throw new Error(`duplicate command declaration '${entry.fullName}'`);
      }
      bucket.push(entry);
    }
    this.maxLength = max;
  }

  private static key(length: number, firstByte: number): number {
    return length * 32 + (firstByte & 31);
  }

  find(name: Buffer): CommandEntry | undefined {
    const length = name.length;
    if (length === 0 || length > this.maxLength) return undefined;
    const bucket = this.buckets[NameIndex.key(length, name[0]!)];
    if (bucket === undefined) return undefined;
    outer: for (let k = 0; k < bucket.length; k++) {
      const entry = bucket[k]!;
      const lower = entry.nameBytes;
      for (let i = 0; i < length; i++) {
        const b = name[i]!;
        const l = lower[i]!;
        // Folding with |0x20 is only valid when the expected byte is a lowercase letter.
        if (b !== l && !(l >= 0x61 && l <= 0x7a && (b | 0x20) === l)) continue outer;
      }
      return entry;
    }
    return undefined;
  }
}

/** A C-string view of an argument (Redis formats them with %s, which stops at NUL), byte per char. */
function cString(arg: Buffer): string {
  const nul = arg.indexOf(0);
  return arg.toString('latin1', 0, nul === -1 ? arg.length : nul);
}

/** Replace CR and LF so a user-supplied string cannot break the reply framing (sdsmapchars in Redis). */
function sanitizeErrorText(s: string): string {
  return s.replace(/[\r\n]/g, ' ');
}

/** Write an error whose text may hold raw argument bytes: one char per byte, as Redis echoes them. */
function writeLatin1Error(reply: ReplyWriter, message: string): void {
  reply.raw(Buffer.from(`-${message}\r\n`, 'latin1'));
}

/** False when the arguments alone exceed the pool's data pages: emptying pages would evict for nothing. */
function mayFitPool(server: ServerContext, argv: readonly Buffer[]): boolean {
  let bytes = 0;
  for (const arg of argv) bytes += arg.length;
  const alloc = server.pool.allocator;
  return bytes < (alloc.pageCount - alloc.metaPages) * PAGE_BYTES;
}

/** Redis's "unknown command" error text (commandCheckExistence), argument list capped at 128 bytes. */
export function unknownCommandError(argv: readonly Buffer[]): string {
  let args = '';
  for (let i = 1; i < argv.length && args.length < 128; i++) {
    args += `'${cString(argv[i]!).slice(0, 128 - args.length)}' `;
  }
  return sanitizeErrorText(`ERR unknown command '${cString(argv[0]!).slice(0, 128)}', with args beginning with: ${args}`);
}

export function unknownSubcommandError(container: Buffer, subcommand: Buffer): string {
  return sanitizeErrorText(
    `ERR unknown subcommand '${cString(subcommand).slice(0, 128)}'. Try ${cString(container).toUpperCase()} HELP.`);
}

export function arityError(fullName: string): string {
  return `ERR wrong number of arguments for '${fullName}' command`;
}

/** The error code an error reply starts with ("ERR", "WRONGTYPE"...), read back from the reply buffer. */
function errorCodeAt(reply: ReplyWriter, at: number): string {
  const buf = reply.buf;
  const limit = Math.min(reply.length, at + 1 + 64);
  let i = at + 1;
  while (i < limit && buf[i] !== 0x20 && buf[i] !== 0x0d) i++;
  return buf.toString('latin1', at + 1, i);
}

export class CommandTable {
  private readonly top: readonly CommandEntry[];
  private readonly index: NameIndex;
  private readonly byLowerName = new Map<string, CommandEntry>();

  constructor(specs: readonly CommandSpec[] = allCommandSpecs()) {
    this.top = specs.map((spec) => new CommandEntry(spec, null));
    this.index = new NameIndex(this.top);
    for (const entry of this.top) this.byLowerName.set(entry.fullName, entry);
  }

  /** Top-level commands, in declaration order (COMMAND, COMMAND COUNT, COMMAND LIST). */
  entries(): readonly CommandEntry[] {
    return this.top;
  }

  get count(): number {
    return this.top.length;
  }

  /** A top-level command by name, any case; "container|sub" finds a subcommand (COMMAND INFO, ACL). */
  get(name: string): CommandEntry | undefined {
    const lower = name.toLowerCase();
    const bar = lower.indexOf('|');
    if (bar === -1) return this.byLowerName.get(lower);
    return this.byLowerName.get(lower.slice(0, bar))?.findSubcommand(lower.slice(bar + 1));
  }

  /** The top-level command argv[0] names, without resolving subcommands. */
  findTop(name: Buffer): CommandEntry | undefined {
    return this.index.find(name);
  }

  /** Redis's lookupCommand(): a container with an argument resolves to its subcommand (or nothing). */
  lookup(argv: readonly Buffer[]): CommandEntry | undefined {
    const base = this.index.find(argv[0]!);
    if (base === undefined || argv.length === 1 || !base.isContainer) return base;
    return base.findSubcommand(argv[1]!);
  }

  /** CONFIG RESETSTAT. */
  resetStats(): void {
    for (const entry of this.top) entry.resetStats();
  }

  /** Run one command for a client: the checks of processCommand(), then the handler. */
  dispatch(ctx: CommandContext, argv: Buffer[]): void {
    const client = ctx.client;
    const reply = ctx.reply;
    const server = ctx.server;
    reply.resp = client.resp;

    const base = this.index.find(argv[0]!);
    let entry = base;
    if (base !== undefined && argv.length > 1 && base.isContainer) entry = base.findSubcommand(argv[1]!);
    if (entry === undefined) {
      client.lastCommand = 'NULL';
      const message = base !== undefined ? unknownSubcommandError(argv[0]!, argv[1]!) : unknownCommandError(argv);
      writeLatin1Error(reply, message);
      server.stats.countError('ERR');
      return;
    }
    client.lastCommand = entry.fullName;

    const arity = entry.spec.arity;
    if ((arity > 0 && arity !== argv.length) || argv.length < -arity) {
      this.reject(ctx, entry, arityError(entry.fullName), 'ERR');
      return;
    }
    if (!client.authenticated && (entry.flagBits & NO_AUTH) === 0 && authRequired(client, server.config)) {
      this.reject(ctx, entry, NOAUTH_ERROR, 'NOAUTH');
      return;
    }
    // Like processCommand: try to evict first; refuse only if memory is still over the limit.
    if ((entry.flagBits & DENY_OOM) !== 0 && server.pool.maxmemory > 0 && !server.evictor.freeMemoryIfNeeded()) {
      this.reject(ctx, entry, OOM_ERROR, 'OOM');
      return;
    }
    // As processCommand: after a failed save (with save rules and stop-writes-on-bgsave-error), writes and PING are refused.
    if (((entry.flagBits & WRITE) !== 0 || entry.fullName === 'ping') && SnapshotService.of(server).writesDenied) {
      this.reject(ctx, entry, MISCONF_ERROR, 'MISCONF');
      return;
    }
    // Non-containers always have a handler; a bare container either has one (COMMAND) or failed
    // the arity check above (both enforced when the table is built).
    const handler = entry.spec.handler!;

    const mark = reply.length;
    const started = performance.now();
    // A command that fails with PoolFullError has changed nothing, so after the evictor empties pages of
    // other size classes it runs again: 1, 2, 4, ... pages each time, for values that need many pages.
    for (let reclaim = 1; ; reclaim *= 2) {
      try {
        handler(ctx, argv);
      } catch (err) {
        reply.rewind(mark);
        if (err instanceof PoolFullError) {
          if (reclaim <= MAX_PAGES_RECLAIMED && mayFitPool(server, argv) && server.evictor.reclaimPages(reclaim)) continue;
          reply.error(OOM_ERROR);
        } else {
          server.log.warning(`Command '${entry.fullName}' failed: ${err instanceof Error ? err.stack ?? err.message : String(err)}`);
          reply.error(INTERNAL_ERROR);
          server.stats.unexpectedErrorReplies++;
        }
      }
      break;
    }
    entry.usec += Math.round((performance.now() - started) * 1000);
    entry.calls++;
    server.stats.totalCommandsProcessed++;
    if (reply.length > mark && reply.buf[mark] === MINUS) {
      entry.failedCalls++;
      server.stats.countError(errorCodeAt(reply, mark));
    } else if ((entry.flagBits & WRITE) !== 0) {
      // server.dirty, coarsely: one per write command that did not fail (Redis counts keys changed).
      if (server.stats.dirtyAccounted) server.stats.dirtyAccounted = false;
      else server.stats.dirty++;
    }
  }

  private reject(ctx: CommandContext, entry: CommandEntry, message: string, code: string): void {
    entry.rejectedCalls++;
    ctx.reply.error(message);
    ctx.server.stats.countError(code);
  }
}
