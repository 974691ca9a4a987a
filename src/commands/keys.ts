// The "generic" command group, keyspace half: DEL UNLINK EXISTS TYPE KEYS
// SCAN RANDOMKEY RENAME RENAMENX COPY MOVE TOUCH OBJECT. (The TTL half lives
// in expire.ts.) Declarations are Redis 7.0.15's command table; replies and
// error texts follow db.c / object.c of that release, including which lookups
// count keyspace hits/misses and which touch the LRU/LFU clock.
import type { Database, Keyspace } from '../store/keyspace';
import { Lookup } from '../store/keyspace';
import { ValueType } from '../store/entry';
import { compileGlob } from '../util/glob';
import type { CommandContext, CommandSpec } from './types';

// ---- shared helpers (also used by expire.ts) -------------------------------------

export const SYNTAX_ERROR = 'ERR syntax error';
export const NOT_INTEGER_ERROR = 'ERR value is not an integer or out of range';
export const NO_SUCH_KEY_ERROR = 'ERR no such key';
export const SAME_OBJECT_ERROR = 'ERR source and destination objects are the same';
export const DB_RANGE_ERROR = 'ERR DB index is out of range';
const INT_RANGE_ERROR = 'ERR value is out of range, value must between -2147483648 and 2147483647';

const LLONG_MAX = 9223372036854775807n;
const LLONG_MIN = -9223372036854775808n;

/**
 * Redis's string2ll(): the exact decimal form of a signed 64-bit integer
 * (no sign but '-', no leading zeros, no "-0", no spaces). null when invalid.
 */
export function parseLongLong(arg: Buffer): bigint | null {
  const len = arg.length;
  if (len === 0 || len > 20) return null;
  if (len === 1 && arg[0] === 0x30) return 0n;
  let i = 0;
  if (arg[0] === 0x2d) {
    i = 1;
    if (len === 1) return null;
  }
  const first = arg[i]!;
  if (first < 0x31 || first > 0x39) return null;
  for (let k = i + 1; k < len; k++) {
    const c = arg[k]!;
    if (c < 0x30 || c > 0x39) return null;
  }
  const value = BigInt(arg.toString('latin1'));
  if (value > LLONG_MAX || value < LLONG_MIN) return null;
  return value;
}

/** String form of an argument as Redis's %s prints it: one char per byte, cut at a NUL. */
export function cString(arg: Buffer): string {
  const nul = arg.indexOf(0);
  return arg.toString('latin1', 0, nul === -1 ? arg.length : nul);
}

/** addReplyErrorFormat(): CR/LF become spaces; bytes are echoed as they came. */
export function errorWithArg(ctx: CommandContext, message: string): void {
  ctx.reply.raw(Buffer.from(`-${message.replace(/[\r\n]/g, ' ')}\r\n`, 'latin1'));
}

/**
 * strcasecmp(arg, word) === 0 with a lowercase word. Like C, the argument ends
 * at its first NUL byte, so "NX\0junk" is NX.
 */
export function argIs(arg: Buffer, lower: string): boolean {
  const nul = arg.indexOf(0);
  const len = nul === -1 ? arg.length : nul;
  if (len !== lower.length) return false;
  for (let i = 0; i < len; i++) {
    const c = arg[i]!;
    const l = lower.charCodeAt(i);
    if (c !== l && !(l >= 0x61 && l <= 0x7a && (c | 0x20) === l)) return false;
  }
  return true;
}

/**
 * lookupKeyReadWithFlags(db, key, LOOKUP_NOTOUCH): no LRU/LFU update, but
 * keyspace_hits / keyspace_misses are counted (EXISTS, TYPE, TTL, OBJECT).
 */
export function lookupNoTouchCounted(ks: Keyspace, db: Database, key: Buffer): number {
  const e = db.lookup(key, Lookup.NoTouch);
  if (e !== 0) ks.stats.keyspaceHits++;
  else ks.stats.keyspaceMisses++;
  return e;
}

/** getIntFromObjectOrReply(..., NULL) + selectDb(): the database index, or -1 after replying. */
function parseDbIndexOrReply(ctx: CommandContext, arg: Buffer): number {
  const n = parseLongLong(arg);
  if (n === null) {
    ctx.reply.error(NOT_INTEGER_ERROR);
    return -1;
  }
  if (n < -2147483648n || n > 2147483647n) {
    ctx.reply.error(INT_RANGE_ERROR);
    return -1;
  }
  const index = Number(n);
  if (index < 0 || index >= ctx.server.keyspace.dbCount) {
    ctx.reply.error(DB_RANGE_ERROR);
    return -1;
  }
  return index;
}

function currentDb(ctx: CommandContext): Database {
  return ctx.server.keyspace.db(ctx.client.db);
}

// ---- DEL / UNLINK / EXISTS / TOUCH / TYPE ---------------------------------------

function del(ctx: CommandContext, argv: Buffer[]): void {
  const db = currentDb(ctx);
  let deleted = 0;
  for (let i = 1; i < argv.length; i++) {
    if (db.deleteKey(argv[i]!)) deleted++;
  }
  ctx.reply.integer(deleted);
}

function exists(ctx: CommandContext, argv: Buffer[]): void {
  const ks = ctx.server.keyspace;
  const db = ks.db(ctx.client.db);
  let count = 0;
  for (let i = 1; i < argv.length; i++) {
    if (lookupNoTouchCounted(ks, db, argv[i]!) !== 0) count++;
  }
  ctx.reply.integer(count);
}

function touch(ctx: CommandContext, argv: Buffer[]): void {
  const db = currentDb(ctx);
  let count = 0;
  for (let i = 1; i < argv.length; i++) {
    if (db.lookup(argv[i]!, Lookup.Read) !== 0) count++;
  }
  ctx.reply.integer(count);
}

function type(ctx: CommandContext, argv: Buffer[]): void {
  const ks = ctx.server.keyspace;
  const db = ks.db(ctx.client.db);
  const e = lookupNoTouchCounted(ks, db, argv[1]!);
  ctx.reply.simple(e === 0 ? 'none' : db.typeName(e));
}

// ---- KEYS / SCAN / RANDOMKEY ------------------------------------------------------

function keys(ctx: CommandContext, argv: Buffer[]): void {
  const db = currentDb(ctx);
  const pattern = argv[1]!;
  const allKeys = pattern.length === 1 && pattern[0] === 0x2a;
  const match = allKeys ? null : compileGlob(pattern);
  // Entries stay valid through the walk: forEachLive only frees expired
  // entries, and only after visiting, and none of them is collected here.
  const found: number[] = [];
  let scratch = Buffer.allocUnsafe(256);
  db.forEachLive((e) => {
    if (match !== null) {
      const len = db.keyLength(e);
      if (len > scratch.length) scratch = Buffer.allocUnsafe(Math.max(len, scratch.length * 2));
      db.copyKey(e, scratch, 0);
      if (!match(scratch.subarray(0, len))) return;
    }
    found.push(e);
  });
  const reply = ctx.reply;
  reply.arrayHeader(found.length);
  for (const e of found) {
    const at = reply.beginBulk(db.keyLength(e));
    db.copyKey(e, reply.buf, at);
    reply.endBulk();
  }
}

const ULONG_MAX = 18446744073709551615n;

/**
 * parseScanCursorOrReply(): strtoul(s, &end, 10) that must consume the whole
 * argument (up to a NUL), without a leading space, and must not overflow.
 * strtoul accepts a sign ("-1" wraps to ULONG_MAX) and an empty string (cursor 0).
 */
export function parseScanCursor(arg: Buffer): bigint | null {
  // C sees the argument up to its first NUL.
  const nul = arg.indexOf(0);
  const len = nul === -1 ? arg.length : nul;
  if (len === 0) return 0n;
  let i = 0;
  const c0 = arg[0]!;
  // isspace(): ' ', \t, \n, \v, \f, \r
  if (c0 === 0x20 || (c0 >= 0x09 && c0 <= 0x0d)) return null;
  let negative = false;
  if (c0 === 0x2b || c0 === 0x2d) {
    negative = c0 === 0x2d;
    i = 1;
  }
  if (i === len) return null; // a lone sign: strtoul consumes nothing, end points at the sign
  for (let k = i; k < len; k++) {
    const c = arg[k]!;
    if (c < 0x30 || c > 0x39) return null;
  }
  const magnitude = BigInt(arg.toString('latin1', i, len));
  if (magnitude > ULONG_MAX) return null; // ERANGE
  if (!negative || magnitude === 0n) return magnitude;
  return ULONG_MAX + 1n - magnitude;
}

function scan(ctx: CommandContext, argv: Buffer[]): void {
  const reply = ctx.reply;
  const parsed = parseScanCursor(argv[1]!);
  if (parsed === null) {
    reply.error('ERR invalid cursor');
    return;
  }
  let count = 10;
  let pattern: Buffer | null = null;
  let typeName: Buffer | null = null;
  for (let i = 2; i < argv.length;) {
    const remaining = argv.length - i;
    const opt = argv[i]!;
    if (argIs(opt, 'count') && remaining >= 2) {
      const n = parseLongLong(argv[i + 1]!);
      if (n === null) {
        reply.error(NOT_INTEGER_ERROR);
        return;
      }
      if (n < 1n) {
        reply.error(SYNTAX_ERROR);
        return;
      }
      count = n > 1000000000n ? 1000000000 : Number(n);
      i += 2;
    } else if (argIs(opt, 'match') && remaining >= 2) {
      pattern = argv[i + 1]!;
      i += 2;
    } else if (argIs(opt, 'type') && remaining >= 2) {
      typeName = argv[i + 1]!;
      i += 2;
    } else {
      reply.error(SYNTAX_ERROR);
      return;
    }
  }

  const ks = ctx.server.keyspace;
  const db = ks.db(ctx.client.db);
  // The dict's cursor is 32 bits wide; Redis's is 64, but dictScan masks the
  // cursor with the table size and clears every bit above it on the way out,
  // so the high half never changes which buckets are visited or what comes back.
  let cursor = Number(parsed & 0xffffffffn);
  const collectedKeys: Buffer[] = [];
  const collectedTypes: string[] = [];
  const visit = (e: number): void => {
    collectedKeys.push(db.keyOf(e));
    if (typeName !== null) collectedTypes.push(db.typeName(e));
  };
  // At most COUNT*10 steps, so a sparse table cannot stall the server.
  let maxIterations = count * 10;
  do {
    cursor = db.scan(cursor, visit);
  } while (cursor !== 0 && maxIterations-- > 0 && collectedKeys.length < count);

  const useGlob = pattern !== null && !(pattern.length === 1 && pattern[0] === 0x2a);
  const match = useGlob ? compileGlob(pattern!) : null;
  // strcasecmp: the name ends at a NUL byte, and ASCII case does not matter.
  const wantedType = typeName === null ? null : cString(typeName).replace(/[A-Z]+/g, (m) => m.toLowerCase());
  const out: Buffer[] = [];
  for (let k = 0; k < collectedKeys.length; k++) {
    const key = collectedKeys[k]!;
    if (match !== null && !match(key)) continue;
    if (wantedType !== null) {
      // Redis checks the type through lookupKeyReadWithFlags(LOOKUP_NOTOUCH): a counted hit.
      ks.stats.keyspaceHits++;
      if (collectedTypes[k] !== wantedType) continue;
    }
    out.push(key);
  }
  reply.arrayHeader(2);
  reply.bulk(String(cursor));
  reply.bulkArray(out);
}

function randomkey(ctx: CommandContext): void {
  const db = currentDb(ctx);
  const e = db.randomEntry();
  if (e === 0) {
    ctx.reply.nullBulk();
    return;
  }
  const reply = ctx.reply;
  const at = reply.beginBulk(db.keyLength(e));
  db.copyKey(e, reply.buf, at);
  reply.endBulk();
}

// ---- RENAME / RENAMENX / MOVE / COPY ------------------------------------------------

function renameGeneric(ctx: CommandContext, argv: Buffer[], nx: boolean): void {
  const reply = ctx.reply;
  const db = currentDb(ctx);
  const src = argv[1]!;
  const dst = argv[2]!;
  const e = db.lookup(src, Lookup.Write);
  if (e === 0) {
    reply.error(NO_SUCH_KEY_ERROR);
    return;
  }
  if (src.equals(dst)) {
    if (nx) reply.integer(0);
    else reply.ok();
    return;
  }
  // lookupKeyWrite on the target (which also reclaims it if it has expired).
  if (db.lookup(dst, Lookup.Write) !== 0 && nx) {
    reply.integer(0);
    return;
  }
  // The copy (value, TTL, access clock, encoding) replaces any target; allocation comes first.
  db.storeCopy(db, e, dst, true);
  db.deleteKey(src);
  if (nx) reply.integer(1);
  else reply.ok();
}

function rename(ctx: CommandContext, argv: Buffer[]): void {
  renameGeneric(ctx, argv, false);
}

function renamenx(ctx: CommandContext, argv: Buffer[]): void {
  renameGeneric(ctx, argv, true);
}

function move(ctx: CommandContext, argv: Buffer[]): void {
  const reply = ctx.reply;
  const ks = ctx.server.keyspace;
  const target = parseDbIndexOrReply(ctx, argv[2]!);
  if (target < 0) return;
  if (target === ctx.client.db) {
    reply.error(SAME_OBJECT_ERROR);
    return;
  }
  const src = ks.db(ctx.client.db);
  const dst = ks.db(target);
  const key = argv[1]!;
  const e = src.lookup(key, Lookup.Write);
  if (e === 0 || dst.lookup(key, Lookup.Write) !== 0) {
    reply.integer(0);
    return;
  }
  dst.storeCopy(src, e, key, true);
  src.deleteKey(key);
  reply.integer(1);
}

function copy(ctx: CommandContext, argv: Buffer[]): void {
  const reply = ctx.reply;
  const ks = ctx.server.keyspace;
  let target = ctx.client.db;
  let replace = false;
  for (let j = 3; j < argv.length; j++) {
    const additional = argv.length - j - 1;
    const opt = argv[j]!;
    if (argIs(opt, 'replace')) {
      replace = true;
    } else if (argIs(opt, 'db') && additional >= 1) {
      target = parseDbIndexOrReply(ctx, argv[j + 1]!);
      if (target < 0) return;
      j++;
    } else {
      reply.error(SYNTAX_ERROR);
      return;
    }
  }
  const key = argv[1]!;
  const newKey = argv[2]!;
  if (target === ctx.client.db && key.equals(newKey)) {
    reply.error(SAME_OBJECT_ERROR);
    return;
  }
  const src = ks.db(ctx.client.db);
  const dst = ks.db(target);
  const e = src.lookup(key, Lookup.Read);
  if (e === 0) {
    reply.integer(0);
    return;
  }
  if (dst.lookup(newKey, Lookup.Write) !== 0 && !replace) {
    reply.integer(0);
    return;
  }
  dst.storeCopy(src, e, newKey, true, true); // a new object: fresh LRU/LFU, as Redis's COPY
  reply.integer(1);
}

// ---- OBJECT -------------------------------------------------------------------------

const LFU_POLICY_ERROR =
  'ERR An LFU maxmemory policy is selected, idle time not tracked. Please note that when switching between ' +
  'policies at runtime LRU and LFU data will take some time to adjust.';
const NOT_LFU_POLICY_ERROR =
  'ERR An LFU maxmemory policy is not selected, access frequency not tracked. Please note that when switching ' +
  'between policies at runtime LRU and LFU data will take some time to adjust.';

const OBJECT_HELP = [
  'ENCODING <key>',
  '    Return the kind of internal representation used in order to store the value',
  '    associated with a <key>.',
  'FREQ <key>',
  '    Return the access frequency index of the <key>. The returned integer is',
  '    proportional to the logarithm of the recent access frequency of the key.',
  'IDLETIME <key>',
  '    Return the idle time of the <key>, that is the approximated number of',
  '    seconds elapsed since the last access to the key.',
  'REFCOUNT <key>',
  '    Return the number of references of the value associated with the specified',
  '    <key>.',
];

/** OBJ_SHARED_REFCOUNT: what OBJECT REFCOUNT says for one of the shared integers 0..9999. */
const SHARED_REFCOUNT = 2147483647;
const SHARED_INTEGERS = 10000;

/** objectCommandLookupOrReply(): the entry, or a null reply and 0. */
function objectLookup(ctx: CommandContext, key: Buffer): number {
  const ks = ctx.server.keyspace;
  const e = lookupNoTouchCounted(ks, ks.db(ctx.client.db), key);
  if (e === 0) ctx.reply.nullBulk();
  return e;
}

/** MAXMEMORY_FLAG_NO_SHARED_INTEGERS: with a maxmemory limit and an LRU/LFU policy, integers are not shared. */
function sharedIntegersAllowed(ctx: CommandContext): boolean {
  if (ctx.server.pool.maxmemory === 0) return true;
  const policy = ctx.server.evictor.policy;
  return !(policy.endsWith('-lru') || policy.endsWith('-lfu'));
}

function objectEncoding(ctx: CommandContext, argv: Buffer[]): void {
  const e = objectLookup(ctx, argv[2]!);
  if (e === 0) return;
  const db = currentDb(ctx);
  // Only strings exist in the store so far.
  ctx.reply.bulk(db.typeOf(e) === ValueType.String ? db.stringEncoding(e) : 'unknown');
}

function objectRefcount(ctx: CommandContext, argv: Buffer[]): void {
  const e = objectLookup(ctx, argv[2]!);
  if (e === 0) return;
  const db = currentDb(ctx);
  // Redis stores the integers 0..9999 as shared objects (SET, MSET, INCR... pick them).
  let refcount = 1;
  if (db.typeOf(e) === ValueType.String && db.stringLength(e) <= 4 && db.stringEncoding(e) === 'int') {
    const n = Number(db.readString(e).toString('latin1'));
    if (n >= 0 && n < SHARED_INTEGERS && sharedIntegersAllowed(ctx)) refcount = SHARED_REFCOUNT;
  }
  ctx.reply.integer(refcount);
}

function objectIdletime(ctx: CommandContext, argv: Buffer[]): void {
  const e = objectLookup(ctx, argv[2]!);
  if (e === 0) return;
  if (ctx.server.keyspace.lfu) {
    ctx.reply.error(LFU_POLICY_ERROR);
    return;
  }
  ctx.reply.integer(currentDb(ctx).idleSeconds(e));
}

function objectFreq(ctx: CommandContext, argv: Buffer[]): void {
  const e = objectLookup(ctx, argv[2]!);
  if (e === 0) return;
  if (!ctx.server.keyspace.lfu) {
    ctx.reply.error(NOT_LFU_POLICY_ERROR);
    return;
  }
  ctx.reply.integer(currentDb(ctx).lfuFrequency(e));
}

function objectHelp(ctx: CommandContext, argv: Buffer[]): void {
  const reply = ctx.reply;
  reply.arrayHeader(OBJECT_HELP.length + 3);
  reply.simple(`${cString(argv[0]!).toUpperCase()} <subcommand> [<arg> [value] [opt] ...]. Subcommands are:`);
  for (const line of OBJECT_HELP) reply.simple(line);
  reply.simple('HELP');
  reply.simple('    Prints this help.');
}

// ---- declarations ---------------------------------------------------------------------

const O1 = 'O(1)';

function objectSub(name: string, summary: string, since: string, handler: CommandSpec['handler']): CommandSpec {
  return {
    name, arity: 3, flags: ['readonly'], firstKey: 2, lastKey: 2, step: 1,
    acl: ['keyspace', 'read', 'slow'], group: 'generic', since, summary, complexity: O1, handler,
  };
}

const keyspaceCommands: CommandSpec[] = [
  {
    name: 'del', arity: -2, flags: ['write'], firstKey: 1, lastKey: -1, step: 1,
    acl: ['keyspace', 'write', 'slow'], group: 'generic', since: '1.0.0', summary: 'Delete a key',
    complexity: 'O(N) where N is the number of keys that will be removed. When a key to remove holds a value other ' +
      'than a string, the individual complexity for this key is O(M) where M is the number of elements in the list, ' +
      'set, sorted set or hash. Removing a single key that holds a string value is O(1).',
    handler: del,
  },
  {
    name: 'unlink', arity: -2, flags: ['write', 'fast'], firstKey: 1, lastKey: -1, step: 1,
    acl: ['keyspace', 'write', 'fast'], group: 'generic', since: '4.0.0',
    summary: 'Delete a key asynchronously in another thread. Otherwise it is just as DEL, but non blocking.',
    complexity: 'O(1) for each key removed regardless of its size. Then the command does O(N) work in a different ' +
      'thread in order to reclaim memory, where N is the number of allocations the deleted objects where composed of.',
    handler: del,
  },
  {
    name: 'exists', arity: -2, flags: ['readonly', 'fast'], firstKey: 1, lastKey: -1, step: 1,
    acl: ['keyspace', 'read', 'fast'], group: 'generic', since: '1.0.0', summary: 'Determine if a key exists',
    complexity: 'O(N) where N is the number of keys to check.', handler: exists,
  },
  {
    name: 'type', arity: 2, flags: ['readonly', 'fast'], firstKey: 1, lastKey: 1, step: 1,
    acl: ['keyspace', 'read', 'fast'], group: 'generic', since: '1.0.0', summary: 'Determine the type stored at key',
    complexity: O1, handler: type,
  },
  {
    name: 'keys', arity: 2, flags: ['readonly'], firstKey: 0, lastKey: 0, step: 0,
    acl: ['keyspace', 'read', 'slow', 'dangerous'], group: 'generic', since: '1.0.0',
    summary: 'Find all keys matching the given pattern',
    complexity: 'O(N) with N being the number of keys in the database, under the assumption that the key names in ' +
      'the database and the given pattern have limited length.',
    handler: keys,
  },
  {
    name: 'scan', arity: -2, flags: ['readonly'], firstKey: 0, lastKey: 0, step: 0,
    acl: ['keyspace', 'read', 'slow'], group: 'generic', since: '2.8.0', summary: 'Incrementally iterate the keys space',
    complexity: 'O(1) for every call. O(N) for a complete iteration, including enough command calls for the cursor ' +
      'to return back to 0. N is the number of elements inside the collection.',
    handler: scan,
  },
  {
    name: 'randomkey', arity: 1, flags: ['readonly'], firstKey: 0, lastKey: 0, step: 0,
    acl: ['keyspace', 'read', 'slow'], group: 'generic', since: '1.0.0', summary: 'Return a random key from the keyspace',
    complexity: O1, handler: randomkey,
  },
  {
    name: 'rename', arity: 3, flags: ['write'], firstKey: 1, lastKey: 2, step: 1,
    acl: ['keyspace', 'write', 'slow'], group: 'generic', since: '1.0.0', summary: 'Rename a key',
    complexity: O1, handler: rename,
  },
  {
    name: 'renamenx', arity: 3, flags: ['write', 'fast'], firstKey: 1, lastKey: 2, step: 1,
    acl: ['keyspace', 'write', 'fast'], group: 'generic', since: '1.0.0',
    summary: 'Rename a key, only if the new key does not exist', complexity: O1, handler: renamenx,
  },
  {
    name: 'copy', arity: -3, flags: ['write', 'denyoom'], firstKey: 1, lastKey: 2, step: 1,
    acl: ['keyspace', 'write', 'slow'], group: 'generic', since: '6.2.0', summary: 'Copy a key',
    complexity: 'O(N) worst case for collections, where N is the number of nested items. O(1) for string values.',
    handler: copy,
  },
  {
    name: 'move', arity: 3, flags: ['write', 'fast'], firstKey: 1, lastKey: 1, step: 1,
    acl: ['keyspace', 'write', 'fast'], group: 'generic', since: '1.0.0', summary: 'Move a key to another database',
    complexity: O1, handler: move,
  },
  {
    name: 'touch', arity: -2, flags: ['readonly', 'fast'], firstKey: 1, lastKey: -1, step: 1,
    acl: ['keyspace', 'read', 'fast'], group: 'generic', since: '3.2.1',
    summary: 'Alters the last access time of a key(s). Returns the number of existing keys specified.',
    complexity: 'O(N) where N is the number of keys that will be touched.', handler: touch,
  },
  {
    name: 'object', arity: -2, flags: [], firstKey: 0, lastKey: 0, step: 0,
    acl: ['slow'], group: 'generic', since: '2.2.3', summary: 'A container for object introspection commands',
    complexity: 'Depends on subcommand.',
    subcommands: [
      objectSub('encoding', 'Inspect the internal encoding of a Redis object', '2.2.3', objectEncoding),
      objectSub('freq', 'Get the logarithmic access frequency counter of a Redis object', '4.0.0', objectFreq),
      {
        name: 'help', arity: 2, flags: ['loading', 'stale'], firstKey: 0, lastKey: 0, step: 0,
        acl: ['keyspace', 'slow'], group: 'generic', since: '6.2.0',
        summary: 'Show helpful text about the different subcommands', complexity: O1, handler: objectHelp,
      },
      objectSub('idletime', 'Get the time since a Redis object was last accessed', '2.2.3', objectIdletime),
      objectSub('refcount', 'Get the number of references to the value of the key', '2.2.3', objectRefcount),
    ],
  },
];

/** The "generic" group's keyspace commands (the TTL commands are in expire.ts). */
export const commands: CommandSpec[] = keyspaceCommands;
