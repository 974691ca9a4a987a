// The COMMAND command: introspection of the command table. Every answer is
// built from the declarations in the family files (CommandSpec), rendered the
// way Redis 7.0's addReplyCommandInfo / addReplyCommandDocs render theirs:
// flags and ACL categories in Redis's canonical order, command tips from
// Redis 7.0's table, and one key spec derived from the legacy key range.
import { stringMatch } from '../util/glob';
import type { CommandEntry, CommandTable } from './table';
import type { CommandContext, CommandFlag, CommandSpec } from './types';

/** Redis's flag order in COMMAND INFO (addReplyFlagsForCommand). */
const FLAG_ORDER: readonly CommandFlag[] = [
  'write', 'readonly', 'denyoom', 'module', 'admin', 'pubsub', 'noscript', 'blocking', 'loading',
  'stale', 'skip_monitor', 'skip_slowlog', 'asking', 'fast', 'no_auth', 'may_replicate',
  'no_mandatory_keys', 'no_async_loading', 'no_multi', 'allow_busy',
];

/** Redis's ACL categories, in its table order (ACLCommandCategories); COMMAND INFO lists them so. */
export const ACL_CATEGORIES: readonly string[] = [
  'keyspace', 'read', 'write', 'set', 'sortedset', 'list', 'hash', 'string', 'bitmap', 'hyperloglog',
  'geo', 'stream', 'pubsub', 'admin', 'fast', 'slow', 'blocking', 'dangerous', 'connection',
  'transaction', 'scripting',
];

/**
 * Command tips as Redis 7.0.15 declares them (COMMAND INFO element 8), by full
 * name; commands not listed have none.
 */
const COMMAND_TIPS: Readonly<Record<string, readonly string[]>> = {
  'client|info': ['nondeterministic_output'],
  'client|list': ['nondeterministic_output'],
  'cluster|bumpepoch': ['nondeterministic_output'],
  'cluster|count-failure-reports': ['nondeterministic_output'],
  'cluster|getkeysinslot': ['nondeterministic_output'],
  'cluster|info': ['nondeterministic_output'],
  'cluster|links': ['nondeterministic_output'],
  'cluster|nodes': ['nondeterministic_output'],
  'cluster|replicas': ['nondeterministic_output'],
  'cluster|shards': ['nondeterministic_output'],
  'cluster|slaves': ['nondeterministic_output'],
  'cluster|slots': ['nondeterministic_output'],
  'command': ['nondeterministic_output_order'],
  'command|docs': ['nondeterministic_output_order'],
  'command|info': ['nondeterministic_output_order'],
  'command|list': ['nondeterministic_output_order'],
  'config|set': ['request_policy:all_nodes', 'response_policy:all_succeeded'],
  'dbsize': ['request_policy:all_shards', 'response_policy:agg_sum'],
  'del': ['request_policy:multi_shard', 'response_policy:agg_sum'],
  'dump': ['nondeterministic_output'],
  'exists': ['request_policy:multi_shard', 'response_policy:agg_sum'],
  'flushall': ['request_policy:all_shards', 'response_policy:all_succeeded'],
  'flushdb': ['request_policy:all_shards', 'response_policy:all_succeeded'],
  'function|delete': ['request_policy:all_shards', 'response_policy:all_succeeded'],
  'function|flush': ['request_policy:all_shards', 'response_policy:all_succeeded'],
  'function|kill': ['request_policy:all_shards', 'response_policy:one_succeeded'],
  'function|list': ['nondeterministic_output_order'],
  'function|load': ['request_policy:all_shards', 'response_policy:all_succeeded'],
  'function|restore': ['request_policy:all_shards', 'response_policy:all_succeeded'],
  'function|stats': ['nondeterministic_output', 'request_policy:all_shards', 'response_policy:special'],
  'hgetall': ['nondeterministic_output_order'],
  'hkeys': ['nondeterministic_output_order'],
  'hrandfield': ['nondeterministic_output'],
  'hscan': ['nondeterministic_output'],
  'hvals': ['nondeterministic_output_order'],
  'info': ['nondeterministic_output', 'request_policy:all_shards', 'response_policy:special'],
  'keys': ['request_policy:all_shards', 'nondeterministic_output_order'],
  'lastsave': ['nondeterministic_output'],
  'latency|doctor': ['nondeterministic_output', 'request_policy:all_nodes', 'response_policy:special'],
  'latency|graph': ['nondeterministic_output', 'request_policy:all_nodes', 'response_policy:special'],
  'latency|histogram': ['nondeterministic_output', 'request_policy:all_nodes', 'response_policy:special'],
  'latency|history': ['nondeterministic_output', 'request_policy:all_nodes', 'response_policy:special'],
  'latency|latest': ['nondeterministic_output', 'request_policy:all_nodes', 'response_policy:special'],
  'latency|reset': ['request_policy:all_nodes', 'response_policy:all_succeeded'],
  'memory|doctor': ['nondeterministic_output', 'request_policy:all_shards', 'response_policy:special'],
  'memory|malloc-stats': ['nondeterministic_output', 'request_policy:all_shards', 'response_policy:special'],
  'memory|purge': ['request_policy:all_shards', 'response_policy:all_succeeded'],
  'memory|stats': ['nondeterministic_output', 'request_policy:all_shards', 'response_policy:special'],
  'mget': ['request_policy:multi_shard'],
  'migrate': ['nondeterministic_output'],
  'module|list': ['nondeterministic_output_order'],
  'mset': ['request_policy:multi_shard', 'response_policy:all_succeeded'],
  'msetnx': ['request_policy:multi_shard', 'response_policy:agg_min'],
  'object|encoding': ['nondeterministic_output'],
  'object|freq': ['nondeterministic_output'],
  'object|idletime': ['nondeterministic_output'],
  'object|refcount': ['nondeterministic_output'],
  'ping': ['request_policy:all_shards', 'response_policy:all_succeeded'],
  'pttl': ['nondeterministic_output'],
  'randomkey': ['request_policy:all_shards', 'nondeterministic_output'],
  'scan': ['nondeterministic_output', 'request_policy:special'],
  'script|exists': ['request_policy:all_shards', 'response_policy:agg_logical_and'],
  'script|flush': ['request_policy:all_nodes', 'response_policy:all_succeeded'],
  'script|kill': ['request_policy:all_shards', 'response_policy:one_succeeded'],
  'script|load': ['request_policy:all_nodes', 'response_policy:all_succeeded'],
  'sdiff': ['nondeterministic_output_order'],
  'sinter': ['nondeterministic_output_order'],
  'slowlog|get': ['request_policy:all_nodes', 'nondeterministic_output'],
  'slowlog|len': ['request_policy:all_nodes', 'response_policy:agg_sum', 'nondeterministic_output'],
  'slowlog|reset': ['request_policy:all_nodes', 'response_policy:all_succeeded'],
  'smembers': ['nondeterministic_output_order'],
  'spop': ['nondeterministic_output'],
  'srandmember': ['nondeterministic_output'],
  'sscan': ['nondeterministic_output'],
  'sunion': ['nondeterministic_output_order'],
  'time': ['nondeterministic_output'],
  'touch': ['request_policy:multi_shard', 'response_policy:agg_sum'],
  'ttl': ['nondeterministic_output'],
  'unlink': ['request_policy:multi_shard', 'response_policy:agg_sum'],
  'wait': ['request_policy:all_shards', 'response_policy:agg_min'],
  'xadd': ['nondeterministic_output'],
  'xautoclaim': ['nondeterministic_output'],
  'xclaim': ['nondeterministic_output'],
  'xinfo|consumers': ['nondeterministic_output'],
  'xpending': ['nondeterministic_output'],
  'xtrim': ['nondeterministic_output'],
  'zrandmember': ['nondeterministic_output'],
  'zscan': ['nondeterministic_output'],
};

/** Redis 7.0 commands whose keys are not a plain range (they carry the `movablekeys` flag there). */
const MOVABLE_KEY_COMMANDS = new Set([
  'blmpop', 'bzmpop', 'eval', 'eval_ro', 'evalsha', 'evalsha_ro', 'fcall', 'fcall_ro', 'georadius',
  'georadiusbymember', 'lmpop', 'migrate', 'sintercard', 'sort', 'sort_ro', 'xread', 'xreadgroup', 'zdiff',
  'zdiffstore', 'zinter', 'zintercard', 'zinterstore', 'zmpop', 'zunion', 'zunionstore',
]);

export function commandTips(fullName: string): readonly string[] {
  return COMMAND_TIPS[fullName] ?? [];
}

/** The flags of a declaration in Redis's order (duplicates folded). */
export function orderedFlags(spec: CommandSpec): CommandFlag[] {
  return FLAG_ORDER.filter((flag) => spec.flags.includes(flag));
}

/** The ACL categories of a declaration in Redis's order; unknown names keep their place at the end. */
export function orderedCategories(spec: CommandSpec): string[] {
  const known = ACL_CATEGORIES.filter((cat) => spec.acl.includes(cat));
  const unknown = spec.acl.filter((cat) => !ACL_CATEGORIES.includes(cat));
  return [...known, ...unknown];
}

// ---- COMMAND INFO ----------------------------------------------------------------------

function writeFlagSet(ctx: CommandContext, names: readonly string[]): void {
  ctx.reply.setHeader(names.length);
  for (const name of names) ctx.reply.simple(name);
}

/** One key spec equivalent to the legacy (first, last, step) range, as Redis derives it. */
function writeKeySpecs(ctx: CommandContext, spec: CommandSpec): void {
  const reply = ctx.reply;
  if (spec.firstKey <= 0) {
    reply.setHeader(0);
    return;
  }
  const keyFlags: string[] = [];
  if (spec.flags.includes('write')) keyFlags.push('RW');
  else if (spec.flags.includes('readonly')) keyFlags.push('RO');
  reply.setHeader(1);
  reply.mapHeader(3);
  reply.bulk('flags');
  writeFlagSet(ctx, keyFlags);
  reply.bulk('begin_search');
  reply.mapHeader(2);
  reply.bulk('type');
  reply.bulk('index');
  reply.bulk('spec');
  reply.mapHeader(1);
  reply.bulk('index');
  reply.integer(spec.firstKey);
  reply.bulk('find_keys');
  reply.mapHeader(2);
  reply.bulk('type');
  reply.bulk('range');
  reply.bulk('spec');
  reply.mapHeader(3);
  reply.bulk('lastkey');
  reply.integer(spec.lastKey < 0 ? spec.lastKey : spec.lastKey - spec.firstKey);
  reply.bulk('keystep');
  reply.integer(spec.step);
  reply.bulk('limit');
  reply.integer(0);
}

/** addReplyCommandInfo: the 10-element description of one command (null for an unknown one). */
export function writeCommandInfo(ctx: CommandContext, entry: CommandEntry | undefined): void {
  const reply = ctx.reply;
  if (entry === undefined) {
    reply.nullBulk(); // addReplyNull: $-1 in RESP2
    return;
  }
  const spec = entry.spec;
  reply.arrayHeader(10);
  reply.bulk(entry.fullName);
  reply.integer(spec.arity);
  writeFlagSet(ctx, orderedFlags(spec));
  reply.integer(spec.firstKey);
  reply.integer(spec.lastKey);
  reply.integer(spec.step);
  writeFlagSet(ctx, orderedCategories(spec).map((cat) => `@${cat}`));
  const tips = commandTips(entry.fullName);
  reply.setHeader(tips.length);
  for (const tip of tips) reply.bulk(tip);
  writeKeySpecs(ctx, spec);
  if (entry.subcommands.length === 0) {
    reply.setHeader(0);
  } else {
    reply.arrayHeader(entry.subcommands.length);
    for (const sub of entry.subcommands) writeCommandInfo(ctx, sub);
  }
}

// ---- COMMAND DOCS ----------------------------------------------------------------------

/** addReplyCommandDocs: summary, since, group, complexity, subcommands. */
export function writeCommandDocs(ctx: CommandContext, entry: CommandEntry): void {
  const reply = ctx.reply;
  const spec = entry.spec;
  const hasComplexity = spec.complexity !== undefined && spec.complexity !== '';
  const hasSubcommands = entry.subcommands.length > 0;
  reply.mapHeader(3 + (hasComplexity ? 1 : 0) + (hasSubcommands ? 1 : 0));
  reply.bulk('summary');
  reply.bulk(spec.summary);
  reply.bulk('since');
  reply.bulk(spec.since);
  reply.bulk('group');
  reply.bulk(spec.group);
  if (hasComplexity) {
    reply.bulk('complexity');
    reply.bulk(spec.complexity!);
  }
  if (hasSubcommands) {
    reply.bulk('subcommands');
    reply.mapHeader(entry.subcommands.length);
    for (const sub of entry.subcommands) {
      reply.bulk(sub.fullName);
      writeCommandDocs(ctx, sub);
    }
  }
}

// ---- key extraction ----------------------------------------------------------------------

/**
 * The argument positions holding keys, from the declared range (Redis's
 * getKeysUsingKeySpecs on the equivalent range spec). Positions past the end
 * are dropped, as Redis does for variable-arity commands.
 */
export function keyPositions(spec: CommandSpec, argc: number): number[] {
  const out: number[] = [];
  const first = spec.firstKey;
  if (first <= 0 || first >= argc || spec.step <= 0) return out;
  const last = spec.lastKey < 0 ? argc + spec.lastKey : spec.lastKey;
  for (let i = first; i <= last && i < argc; i += spec.step) out.push(i);
  return out;
}

// ---- handlers ----------------------------------------------------------------------------

function table(ctx: CommandContext): CommandTable {
  return ctx.server.commands;
}

function argString(arg: Buffer): string {
  return arg.toString('latin1');
}

/** addReplyHelp: header, the lines, then HELP's own two lines, all as status replies. */
export function writeHelp(ctx: CommandContext, command: Buffer, lines: readonly string[]): void {
  const reply = ctx.reply;
  reply.arrayHeader(lines.length + 3);
  reply.simple(`${argString(command).toUpperCase()} <subcommand> [<arg> [value] [opt] ...]. Subcommands are:`);
  for (const line of lines) reply.simple(line);
  reply.simple('HELP');
  reply.simple('    Prints this help.');
}

function writeAllInfo(ctx: CommandContext): void {
  const entries = table(ctx).entries();
  ctx.reply.arrayHeader(entries.length);
  for (const entry of entries) writeCommandInfo(ctx, entry);
}

/** COMMAND with no subcommand: every command's info. */
function command(ctx: CommandContext): void {
  writeAllInfo(ctx);
}

function commandCount(ctx: CommandContext): void {
  ctx.reply.integer(table(ctx).count);
}

function commandInfo(ctx: CommandContext, argv: Buffer[]): void {
  if (argv.length === 2) {
    writeAllInfo(ctx);
    return;
  }
  ctx.reply.arrayHeader(argv.length - 2);
  for (let i = 2; i < argv.length; i++) writeCommandInfo(ctx, table(ctx).get(argString(argv[i]!)));
}

function commandDocs(ctx: CommandContext, argv: Buffer[]): void {
  const reply = ctx.reply;
  let found: CommandEntry[];
  if (argv.length === 2) {
    found = [...table(ctx).entries()];
  } else {
    found = [];
    for (let i = 2; i < argv.length; i++) {
      const entry = table(ctx).get(argString(argv[i]!));
      if (entry !== undefined) found.push(entry);
    }
  }
  reply.mapHeader(found.length);
  for (const entry of found) {
    reply.bulk(entry.fullName);
    writeCommandDocs(ctx, entry);
  }
}

type ListFilter = { kind: 'module' | 'aclcat' | 'pattern'; arg: Buffer } | null;

function passesFilter(entry: CommandEntry, filter: ListFilter): boolean {
  if (filter === null) return true;
  switch (filter.kind) {
    case 'module':
      return false; // no modules: no module commands
    case 'aclcat': {
      const name = argString(filter.arg).toLowerCase();
      return ACL_CATEGORIES.includes(name) && entry.spec.acl.includes(name);
    }
    case 'pattern':
      return stringMatch(filter.arg, entry.fullName, true);
  }
}

function commandList(ctx: CommandContext, argv: Buffer[]): void {
  let filter: ListFilter = null;
  for (let i = 2; i < argv.length; i++) {
    const moreArgs = argv.length - 1 - i;
    if (argString(argv[i]!).toLowerCase() === 'filterby' && moreArgs === 2) {
      const kind = argString(argv[i + 1]!).toLowerCase();
      if (kind !== 'module' && kind !== 'aclcat' && kind !== 'pattern') {
        ctx.reply.error('ERR syntax error');
        return;
      }
      filter = { kind, arg: argv[i + 2]! };
      i += 2;
    } else {
      ctx.reply.error('ERR syntax error');
      return;
    }
  }
  const names: string[] = [];
  const visit = (entry: CommandEntry): void => {
    if (passesFilter(entry, filter)) names.push(entry.fullName);
    for (const sub of entry.subcommands) visit(sub);
  };
  for (const entry of table(ctx).entries()) visit(entry);
  ctx.reply.bulkArray(names);
}

function commandGetKeys(ctx: CommandContext, argv: Buffer[]): void {
  const reply = ctx.reply;
  const args = argv.slice(2);
  const entry = table(ctx).lookup(args);
  if (entry === undefined) {
    reply.error('ERR Invalid command specified');
    return;
  }
  const spec = entry.spec;
  if (spec.firstKey <= 0) {
    reply.error('ERR The command has no key arguments');
    return;
  }
  if ((spec.arity > 0 && spec.arity !== args.length) || args.length < -spec.arity) {
    reply.error('ERR Invalid number of arguments specified for command');
    return;
  }
  if (MOVABLE_KEY_COMMANDS.has(entry.fullName)) {
    // Their keys depend on options (STORE, numkeys...), which a range cannot describe.
    reply.error(`ERR COMMAND GETKEYS does not support '${entry.fullName}' yet`);
    return;
  }
  const positions = keyPositions(spec, args.length);
  if (positions.length === 0) {
    if (spec.flags.includes('no_mandatory_keys')) reply.arrayHeader(0);
    else reply.error('ERR Invalid arguments specified for command');
    return;
  }
  reply.arrayHeader(positions.length);
  for (const pos of positions) reply.bulk(args[pos]!);
}

const COMMAND_HELP = [
  '(no subcommand)',
  '    Return details about all Redis commands.',
  'COUNT',
  '    Return the total number of commands in this Redis server.',
  'LIST',
  '    Return a list of all commands in this Redis server.',
  'INFO [<command-name> ...]',
  '    Return details about multiple Redis commands.',
  '    If no command names are given, documentation details for all',
  '    commands are returned.',
  'DOCS [<command-name> ...]',
  '    Return documentation details about multiple Redis commands.',
  '    If no command names are given, documentation details for all',
  '    commands are returned.',
  'GETKEYS <full-command>',
  '    Return the keys from a full Redis command.',
];

function commandHelp(ctx: CommandContext, argv: Buffer[]): void {
  writeHelp(ctx, argv[0]!, COMMAND_HELP);
}

const SUB_FLAGS: CommandFlag[] = ['loading', 'stale'];
const SUB_ACL = ['slow', 'connection'];

export const commands: CommandSpec[] = [
  {
    // A container that also runs bare: COMMAND alone lists every command.
    name: 'command', arity: -1, flags: ['loading', 'stale'],
    firstKey: 0, lastKey: 0, step: 0, acl: ['slow', 'connection'],
    group: 'server', since: '2.8.13', summary: 'Get array of Redis command details',
    complexity: 'O(N) where N is the total number of Redis commands',
    handler: command,
    subcommands: [
      {
        name: 'count', arity: 2, flags: SUB_FLAGS, firstKey: 0, lastKey: 0, step: 0, acl: SUB_ACL,
        group: 'server', since: '2.8.13', summary: 'Get total number of Redis commands', complexity: 'O(1)',
        handler: commandCount,
      },
      {
        name: 'docs', arity: -2, flags: SUB_FLAGS, firstKey: 0, lastKey: 0, step: 0, acl: SUB_ACL,
        group: 'server', since: '7.0.0', summary: 'Get array of specific Redis command documentation',
        complexity: 'O(N) where N is the number of commands to look up',
        handler: commandDocs,
      },
      {
        name: 'getkeys', arity: -4, flags: SUB_FLAGS, firstKey: 0, lastKey: 0, step: 0, acl: SUB_ACL,
        group: 'server', since: '2.8.13', summary: 'Extract keys given a full Redis command',
        complexity: 'O(N) where N is the number of arguments to the command',
        handler: commandGetKeys,
      },
      {
        name: 'help', arity: 2, flags: SUB_FLAGS, firstKey: 0, lastKey: 0, step: 0, acl: SUB_ACL,
        group: 'server', since: '5.0.0', summary: 'Show helpful text about the different subcommands',
        complexity: 'O(1)',
        handler: commandHelp,
      },
      {
        name: 'info', arity: -2, flags: SUB_FLAGS, firstKey: 0, lastKey: 0, step: 0, acl: SUB_ACL,
        group: 'server', since: '2.8.13', summary: 'Get array of specific Redis command details, or all when no argument is given.',
        complexity: 'O(N) where N is the number of commands to look up',
        handler: commandInfo,
      },
      {
        name: 'list', arity: -2, flags: SUB_FLAGS, firstKey: 0, lastKey: 0, step: 0, acl: SUB_ACL,
        group: 'server', since: '7.0.0', summary: 'Get an array of Redis command names',
        complexity: 'O(N) where N is the total number of Redis commands',
        handler: commandList,
      },
    ],
  },
];
