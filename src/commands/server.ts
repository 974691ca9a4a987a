// The "server" command group: INFO, CONFIG, TIME, DBSIZE, FLUSHDB, FLUSHALL,
// SWAPDB. Declarations are Redis 7.0.15's (COMMAND INFO / COMMAND DOCS), and
// replies and errors follow its infoCommand, configGetCommand/configSetCommand,
// timeCommand, dbsizeCommand, flushdbCommand/flushallCommand and swapdbCommand.
import { performance } from 'perf_hooks';
import { ConfigError } from '../config/config';
import { string2ll } from '../config/units';
import { renderInfo } from '../server/info';
import { SnapshotService } from '../snapshot/service';
import { writeHelp } from './introspection';
import type { CommandContext, CommandFlag, CommandSpec } from './types';

const INT_MIN = -2147483648n;
const INT_MAX = 2147483647n;

function info(ctx: CommandContext, argv: Buffer[]): void {
  const sections: string[] = [];
  for (let i = 1; i < argv.length; i++) sections.push(argv[i]!.toString('latin1'));
  ctx.reply.verbatim(renderInfo(ctx.server, sections));
}

// ---- CONFIG -----------------------------------------------------------------------------

/** CONFIG GET pattern [pattern ...]: a map of option → value (RESP3 map, flat array in RESP2). */
function configGet(ctx: CommandContext, argv: Buffer[]): void {
  const patterns: string[] = [];
  for (let i = 2; i < argv.length; i++) patterns.push(argv[i]!.toString('utf8'));
  const pairs = ctx.server.config.getMany(patterns);
  ctx.reply.mapHeader(pairs.length);
  for (const [name, value] of pairs) {
    ctx.reply.bulk(name);
    ctx.reply.bulk(value);
  }
}

/**
 * CONFIG SET name value [name value ...]: all or nothing, as in Redis 7.0.
 * The config checks and applies the whole set (its listeners push maxmemory
 * into the pool and the policy into the keyspace); its errors are Redis's replies.
 */
function configSet(ctx: CommandContext, argv: Buffer[]): void {
  if ((argv.length & 1) === 1) {
    ctx.reply.error('ERR syntax error');
    return;
  }
  const pairs: Array<[string, string]> = [];
  for (let i = 2; i < argv.length; i += 2) pairs.push([argv[i]!.toString('utf8'), argv[i + 1]!.toString('utf8')]);
  try {
    ctx.server.config.setMany(pairs);
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    ctx.reply.error(err.message.replace(/[\r\n]/g, ' '));
    return;
  }
  ctx.reply.ok();
}

/** CONFIG RESETSTAT: server counters, per-command and per-error stats (peak memory stays, as in Redis). */
function configResetStat(ctx: CommandContext): void {
  ctx.server.stats.reset();
  ctx.server.keyspace.stats.expiredStalePerc = 0;
  ctx.server.commands.resetStats();
  ctx.reply.ok();
}

const CONFIG_HELP = [
  'GET <pattern>',
  '    Return parameters matching the glob-like <pattern> and their values.',
  'SET <directive> <value>',
  '    Set the configuration <directive> to <value>.',
  'RESETSTAT',
  '    Reset statistics reported by the INFO command.',
];

function configHelp(ctx: CommandContext, argv: Buffer[]): void {
  writeHelp(ctx, argv[0]!, CONFIG_HELP);
}

const CONFIG_FLAGS: CommandFlag[] = ['admin', 'noscript', 'loading', 'stale'];
const CONFIG_ACL = ['admin', 'slow', 'dangerous'];

/** CONFIG REWRITE is not offered: it answers the unknown-subcommand error. */
const configCommand: CommandSpec = {
  name: 'config', arity: -2, flags: [],
  firstKey: 0, lastKey: 0, step: 0, acl: ['slow'],
  group: 'server', since: '2.0.0', summary: 'A container for server configuration commands',
  complexity: 'Depends on subcommand.',
  subcommands: [
    {
      name: 'get', arity: -3, flags: CONFIG_FLAGS, firstKey: 0, lastKey: 0, step: 0, acl: CONFIG_ACL,
      group: 'server', since: '2.0.0', summary: 'Get the values of configuration parameters',
      complexity: 'O(N) when N is the number of configuration parameters provided',
      handler: configGet,
    },
    {
      name: 'help', arity: 2, flags: ['loading', 'stale'], firstKey: 0, lastKey: 0, step: 0, acl: ['slow'],
      group: 'server', since: '5.0.0', summary: 'Show helpful text about the different subcommands',
      complexity: 'O(1)',
      handler: configHelp,
    },
    {
      name: 'resetstat', arity: 2, flags: CONFIG_FLAGS, firstKey: 0, lastKey: 0, step: 0, acl: CONFIG_ACL,
      group: 'server', since: '2.0.0', summary: 'Reset the stats returned by INFO', complexity: 'O(1)',
      handler: configResetStat,
    },
    {
      name: 'set', arity: -4, flags: CONFIG_FLAGS, firstKey: 0, lastKey: 0, step: 0, acl: CONFIG_ACL,
      group: 'server', since: '2.0.0', summary: 'Set configuration parameters to the given values',
      complexity: 'O(N) when N is the number of configuration parameters provided',
      handler: configSet,
    },
  ],
};

// ---- TIME, DBSIZE, FLUSH*, SWAPDB ------------------------------------------------------------

/** TIME: seconds and microseconds, both as bulk strings. */
function time(ctx: CommandContext): void {
  const us = Math.floor((performance.timeOrigin + performance.now()) * 1000);
  const seconds = Math.floor(us / 1e6);
  ctx.reply.arrayHeader(2);
  ctx.reply.bulk(String(seconds));
  ctx.reply.bulk(String(us - seconds * 1e6));
}

function dbsize(ctx: CommandContext): void {
  ctx.reply.integer(ctx.server.keyspace.db(ctx.client.db).size());
}

/** getFlushCommandFlags: nothing, SYNC or ASYNC (any case); anything else is a syntax error. */
function parseFlushMode(ctx: CommandContext, argv: Buffer[]): boolean {
  if (argv.length === 1) return true;
  if (argv.length === 2) {
    const mode = argv[1]!.toString('latin1').toLowerCase();
    // ASYNC frees nothing later here: emptying is already cheap (FLUSHALL hands pages back at once).
    if (mode === 'sync' || mode === 'async') return true;
  }
  ctx.reply.error('ERR syntax error');
  return false;
}

function flushdb(ctx: CommandContext, argv: Buffer[]): void {
  if (!parseFlushMode(ctx, argv)) return;
  ctx.server.keyspace.db(ctx.client.db).flush();
  ctx.reply.ok();
}

function flushall(ctx: CommandContext, argv: Buffer[]): void {
  if (!parseFlushMode(ctx, argv)) return;
  const snapshots = SnapshotService.of(ctx.server);
  snapshots.beforeFlushAll();
  ctx.server.keyspace.flushAll();
  snapshots.afterFlushAll();
  ctx.reply.ok();
}

/** getIntFromObjectOrReply with a custom message: any parse or int-range failure gives `message`. */
function parseIntArg(arg: Buffer): number | null {
  const n = string2ll(arg.toString('latin1'));
  if (n === null || n < INT_MIN || n > INT_MAX) return null;
  return Number(n);
}

function swapdb(ctx: CommandContext, argv: Buffer[]): void {
  const reply = ctx.reply;
  const a = parseIntArg(argv[1]!);
  if (a === null) {
    reply.error('ERR invalid first DB index');
    return;
  }
  const b = parseIntArg(argv[2]!);
  if (b === null) {
    reply.error('ERR invalid second DB index');
    return;
  }
  const count = ctx.server.keyspace.dbCount;
  if (a < 0 || a >= count || b < 0 || b >= count) {
    reply.error('ERR DB index is out of range');
    return;
  }
  ctx.server.keyspace.swapDb(a, b);
  reply.ok();
}

export const commands: CommandSpec[] = [
  {
    name: 'info', arity: -1, flags: ['loading', 'stale'],
    firstKey: 0, lastKey: 0, step: 0, acl: ['slow', 'dangerous'],
    group: 'server', since: '1.0.0', summary: 'Get information and statistics about the server',
    complexity: 'O(1)',
    handler: info,
  },
  configCommand,
  {
    name: 'time', arity: 1, flags: ['loading', 'stale', 'fast'],
    firstKey: 0, lastKey: 0, step: 0, acl: ['fast'],
    group: 'server', since: '2.6.0', summary: 'Return the current server time', complexity: 'O(1)',
    handler: time,
  },
  {
    name: 'dbsize', arity: 1, flags: ['readonly', 'fast'],
    firstKey: 0, lastKey: 0, step: 0, acl: ['keyspace', 'read', 'fast'],
    group: 'server', since: '1.0.0', summary: 'Return the number of keys in the selected database',
    complexity: 'O(1)',
    handler: dbsize,
  },
  {
    name: 'flushdb', arity: -1, flags: ['write'],
    firstKey: 0, lastKey: 0, step: 0, acl: ['keyspace', 'write', 'slow', 'dangerous'],
    group: 'server', since: '1.0.0', summary: 'Remove all keys from the current database',
    complexity: 'O(N) where N is the number of keys in the selected database',
    handler: flushdb,
  },
  {
    name: 'flushall', arity: -1, flags: ['write'],
    firstKey: 0, lastKey: 0, step: 0, acl: ['keyspace', 'write', 'slow', 'dangerous'],
    group: 'server', since: '1.0.0', summary: 'Remove all keys from all databases',
    complexity: 'O(N) where N is the total number of keys in all databases',
    handler: flushall,
  },
  {
    name: 'swapdb', arity: 3, flags: ['write', 'fast'],
    firstKey: 0, lastKey: 0, step: 0, acl: ['keyspace', 'write', 'fast', 'dangerous'],
    group: 'server', since: '4.0.0', summary: 'Swaps two Redis databases',
    complexity: 'O(N) where N is the count of clients watching or blocking on keys from both databases.',
    handler: swapdb,
  },
];
