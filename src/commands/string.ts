// The string family (Redis 7.0's t_string.c): GET SET SETNX SETEX PSETEX MGET
// MSET MSETNX GETSET GETDEL GETEX APPEND STRLEN INCR DECR INCRBY DECRBY
// INCRBYFLOAT GETRANGE SETRANGE SUBSTR LCS.
//
// Semantics, argument checks and their order follow t_string.c line by line,
// so every reply (errors included) is the one Redis gives. Hot paths (GET, SET,
// INCR, MGET, MSET) allocate nothing per request: values go from the pool
// straight into the reply buffer, and integers are parsed from / formatted into
// a module-level scratch buffer. BigInt is used only beyond 2^53.
//
// INCRBYFLOAT computes in x87 80-bit `long double` as Redis does on x86-64
// (64-bit significand, correctly rounded strtold, `%.17Lf` output), emulated
// exactly with BigInt (see the "long double" section at the end).
import { CHUNK_MAX } from '../pool/allocator';
import { PoolFullError } from '../pool/errors';
import { PAGE_BYTES } from '../pool/memory';
import type { ReplyWriter } from '../protocol/reply-writer';
import { CHAIN_HEADER_BYTES, KEY_OFFSET, ValueType } from '../store/entry';
import { type Database, KEEP_TTL, Lookup } from '../store/keyspace';
import type { CommandContext, CommandSpec } from './types';

// ---- replies ------------------------------------------------------------------------
const WRONGTYPE = 'WRONGTYPE Operation against a key holding the wrong kind of value';
const NOT_INTEGER = 'ERR value is not an integer or out of range';
const INCR_OVERFLOW = 'ERR increment or decrement would overflow';
const DECR_OVERFLOW = 'ERR decrement would overflow';
const NOT_FLOAT = 'ERR value is not a valid float';
const NAN_OR_INFINITY = 'ERR increment would produce NaN or Infinity';
const SYNTAX_ERROR = 'ERR syntax error';
const STRING_TOO_LONG = 'ERR string exceeds maximum allowed size (proto-max-bulk-len)';
const OFFSET_OUT_OF_RANGE = 'ERR offset is out of range';
const LCS_NOT_STRINGS = 'ERR The specified keys must contain string values';
const LCS_IDX_AND_LEN = 'ERR If you want both the length and indexes, please just use IDX.';
const LCS_TOO_LONG = 'ERR String too long for LCS';
const LCS_TABLE_TOO_BIG = 'ERR Insufficient memory, transient memory for LCS exceeds proto-max-bulk-len';
const LCS_NO_MEMORY = 'ERR Insufficient memory, failed allocating transient memory for LCS';
const EMPTY_BULK = Buffer.from('$0\r\n\r\n');
const EMPTY = Buffer.alloc(0);
/** Value bytes per page of a page-chained value. */
const PAGE_DATA = PAGE_BYTES - CHAIN_HEADER_BYTES;

function invalidExpire(cmd: string): string {
  return `ERR invalid expire time in '${cmd}' command`;
}
const INVALID_EXPIRE_SET = invalidExpire('set');
const INVALID_EXPIRE_SETEX = invalidExpire('setex');
const INVALID_EXPIRE_PSETEX = invalidExpire('psetex');
const INVALID_EXPIRE_GETEX = invalidExpire('getex');

function db(ctx: CommandContext): Database {
  return ctx.server.keyspace.db(ctx.client.db);
}

function protoMaxBulkLen(ctx: CommandContext): number {
  return ctx.server.config.getNumber('proto-max-bulk-len');
}

/**
 * Growing a page-chained value takes whole pages one by one, and a
 * PoolFullError half-way leaves the pages already taken linked to the value
 * (StringStorage.growChain does not give them back). Refuse up front when the
 * free pages cannot cover the growth, so a failed APPEND/SETRANGE holds nothing.
 */
function ensureRoomToGrow(ctx: CommandContext, e: number, oldLength: number, newLength: number): void {
  if (newLength <= oldLength || !ctx.server.keyspace.strings.isLarge(e)) return;
  const pages = Math.ceil(newLength / PAGE_DATA) - Math.ceil(oldLength / PAGE_DATA);
  if (pages > 0 && !ctx.server.pool.allocator.hasRoomFor(pages * PAGE_BYTES)) throw new PoolFullError();
}

/** A string value as a bulk reply, copied straight from the pool into the reply buffer. */
function replyValue(reply: ReplyWriter, d: Database, e: number): void {
  const len = d.stringLength(e);
  const at = reply.beginBulk(len);
  d.copyString(e, 0, len, reply.buf, at);
  reply.endBulk();
}

// ---- 64-bit integers (string2ll) ----------------------------------------------------
const MAX_SAFE = Number.MAX_SAFE_INTEGER;
const LLONG_MAX = (1n << 63n) - 1n;
const LLONG_MIN = -(1n << 63n);
const BIG_MAX_SAFE = BigInt(MAX_SAFE);

/** Result of the last successful string2ll: the value (approximate when llBig is set) ... */
let llNum = 0;
/** ... and, when |value| > 2^53 - 1, the exact value. */
let llBig: bigint | null = null;

/**
 * Redis's string2ll on buf[0, len): the exact decimal form of a signed 64-bit
 * integer (no '+', no spaces, no leading zeros, no "-0", at most 20 chars).
 */
function string2ll(buf: Buffer, len: number): boolean {
  if (len === 0 || len >= 21) return false;
  let c = buf[0]!;
  if (len === 1 && c === 0x30) {
    llNum = 0;
    llBig = null;
    return true;
  }
  let i = 0;
  let negative = false;
  if (c === 0x2d) {
    negative = true;
    i = 1;
    if (len === 1) return false;
    c = buf[1]!;
  }
  if (c < 0x31 || c > 0x39) return false;
  if (len - i <= 15) {
    let v = 0;
    for (; i < len; i++) {
      c = buf[i]!;
      if (c < 0x30 || c > 0x39) return false;
      v = v * 10 + (c - 0x30);
    }
    llNum = negative ? -v : v;
    llBig = null;
    return true;
  }
  for (let j = i; j < len; j++) {
    c = buf[j]!;
    if (c < 0x30 || c > 0x39) return false;
  }
  let big = BigInt(buf.toString('latin1', i, len));
  if (negative) big = -big;
  if (big < LLONG_MIN || big > LLONG_MAX) return false;
  llNum = Number(big);
  llBig = big >= -BIG_MAX_SAFE && big <= BIG_MAX_SAFE ? null : big;
  return true;
}

/** Scratch for integers read from or written to the pool; views by length avoid subarray() per call. */
const NUM = Buffer.alloc(64);
const NUM_VIEWS: Buffer[] = [];
for (let n = 0; n <= 24; n++) NUM_VIEWS.push(NUM.subarray(0, n));

/** Write a safe integer's decimal form at NUM[0..]; returns its length. */
function formatSafeInt(v: number): number {
  let x = v < 0 ? -v : v;
  let p = 63;
  do {
    const r = x % 10;
    NUM[p--] = 0x30 + r;
    x = (x - r) / 10;
  } while (x !== 0);
  if (v < 0) NUM[p--] = 0x2d;
  const n = 63 - p;
  NUM.copyWithin(0, p + 1, 64);
  return n;
}

/** Write a BigInt's decimal form at NUM[0..]; returns its length (at most 20). */
function formatBigInt(v: bigint): number {
  return NUM.write(v.toString(), 0, 'latin1');
}

/** ":<NUM[0..n)>\r\n" without going through a string. */
function replyNumScratch(reply: ReplyWriter, n: number): void {
  reply.ensure(n + 3);
  const b = reply.buf;
  let p = reply.length;
  b[p++] = 0x3a;
  // At most 20 digits: a loop beats Buffer.copy's argument checks here (measured ~60 ns per reply).
  for (let i = 0; i < n; i++) b[p++] = NUM[i]!;
  b[p++] = 0x0d;
  b[p++] = 0x0a;
  reply.length = p;
}

// ---- option parsing ---------------------------------------------------------------
/**
 * strcasecmp(opt, name) == 0 with opt read as a C string (Redis compares the
 * NUL-terminated sds, so "nx\0junk" is NX). `name` is uppercase ASCII letters.
 */
function optIs(arg: Buffer, name: string): boolean {
  const n = name.length;
  if (arg.length < n || (arg.length > n && arg[n] !== 0)) return false;
  for (let i = 0; i < n; i++) {
    if ((arg[i]! & 0xdf) !== name.charCodeAt(i)) return false;
  }
  return true;
}

const F_NX = 1 << 0;
const F_XX = 1 << 1;
const F_GET = 1 << 2;
const F_KEEPTTL = 1 << 3;
const F_PERSIST = 1 << 4;
const F_EX = 1 << 5;
const F_PX = 1 << 6;
const F_EXAT = 1 << 7;
const F_PXAT = 1 << 8;
const F_ANY_EXPIRE = F_EX | F_PX | F_EXAT | F_PXAT;

/** argv index of the expire value found by parseExtendedOptions (0 = none). */
let optExpireIndex = 0;

/**
 * parseExtendedStringArgumentsOrReply: SET's options (isSet) or GETEX's.
 * Returns the flags, or -1 for a syntax error (not yet replied).
 */
function parseExtendedOptions(argv: Buffer[], start: number, isSet: boolean): number {
  let flags = 0;
  optExpireIndex = 0;
  const argc = argv.length;
  for (let j = start; j < argc; j++) {
    const opt = argv[j]!;
    const hasNext = j < argc - 1;
    if (isSet && optIs(opt, 'NX') && (flags & F_XX) === 0) {
      flags |= F_NX;
    } else if (isSet && optIs(opt, 'XX') && (flags & F_NX) === 0) {
      flags |= F_XX;
    } else if (isSet && optIs(opt, 'GET')) {
      flags |= F_GET;
    } else if (isSet && optIs(opt, 'KEEPTTL') && (flags & (F_PERSIST | F_ANY_EXPIRE)) === 0) {
      flags |= F_KEEPTTL;
    } else if (!isSet && optIs(opt, 'PERSIST') && (flags & (F_ANY_EXPIRE | F_KEEPTTL)) === 0) {
      flags |= F_PERSIST;
    } else if (hasNext && optIs(opt, 'EX') && (flags & (F_KEEPTTL | F_PERSIST | F_EXAT | F_PX | F_PXAT)) === 0) {
      flags |= F_EX;
      optExpireIndex = ++j;
    } else if (hasNext && optIs(opt, 'PX') && (flags & (F_KEEPTTL | F_PERSIST | F_EX | F_EXAT | F_PXAT)) === 0) {
      flags |= F_PX;
      optExpireIndex = ++j;
    } else if (hasNext && optIs(opt, 'EXAT') && (flags & (F_KEEPTTL | F_PERSIST | F_EX | F_PX | F_PXAT)) === 0) {
      flags |= F_EXAT;
      optExpireIndex = ++j;
    } else if (hasNext && optIs(opt, 'PXAT') && (flags & (F_KEEPTTL | F_PERSIST | F_EX | F_EXAT | F_PX)) === 0) {
      flags |= F_PXAT;
      optExpireIndex = ++j;
    } else {
      return -1;
    }
  }
  return flags;
}

/**
 * getExpireMillisecondsOrReply: the absolute expire time (ms since the epoch)
 * that `arg` asks for, or -1 after replying with the error. Relative times
 * (EX, PX) are added to now; overflow past 2^63-1 is an invalid expire time.
 */
function expireFromArg(reply: ReplyWriter, arg: Buffer, flags: number, invalid: string): number {
  if (!string2ll(arg, arg.length)) {
    reply.error(NOT_INTEGER);
    return -1;
  }
  const seconds = (flags & (F_EX | F_EXAT)) !== 0;
  const relative = (flags & (F_EX | F_PX)) !== 0;
  if (llBig === null) {
    const v = llNum;
    if (v <= 0) {
      reply.error(invalid);
      return -1;
    }
    let ms = seconds ? v * 1000 : v;
    if (relative) ms += Date.now();
    if (ms <= MAX_SAFE) return ms;
  }
  let v = llBig ?? BigInt(llNum);
  if (v <= 0n || (seconds && v > LLONG_MAX / 1000n)) {
    reply.error(invalid);
    return -1;
  }
  if (seconds) v *= 1000n;
  if (relative) v += BigInt(Date.now());
  if (v > LLONG_MAX) {
    reply.error(invalid);
    return -1;
  }
  return Number(v);
}

// ---- GET / SET and friends ----------------------------------------------------------
/**
 * getGenericCommand: reply with the value (or nil) of key. Returns the entry,
 * 0 when missing, -1 after a WRONGTYPE reply.
 */
function getGeneric(reply: ReplyWriter, d: Database, key: Buffer): number {
  const e = d.lookup(key, Lookup.Read);
  if (e === 0) {
    reply.nullBulk();
    return 0;
  }
  if (d.typeOf(e) !== ValueType.String) {
    reply.error(WRONGTYPE);
    return -1;
  }
  replyValue(reply, d, e);
  return e;
}

function getCommand(ctx: CommandContext, argv: Buffer[]): void {
  getGeneric(ctx.reply, db(ctx), argv[1]!);
}

const REPLY_OK_NULL = 0; // SET: +OK / nil
const REPLY_ONE_ZERO = 1; // SETNX: :1 / :0

/**
 * setGenericCommand. `expireAt` is the validated absolute expire time (ms), 0
 * for none. Nothing is written before every check has passed.
 */
function setGeneric(ctx: CommandContext, flags: number, key: Buffer, value: Buffer, expireAt: number, replies: number): void {
  const reply = ctx.reply;
  const d = db(ctx);
  if ((flags & F_GET) !== 0 && getGeneric(reply, d, key) < 0) return;
  const found = d.lookup(key, Lookup.Write) !== 0;
  if (((flags & F_NX) !== 0 && found) || ((flags & F_XX) !== 0 && !found)) {
    if ((flags & F_GET) === 0) {
      if (replies === REPLY_ONE_ZERO) reply.integer(0);
      else reply.nullBulk();
    }
    return;
  }
  // An absolute time already in the past is stored as is: the key then reads
  // as missing and is reclaimed lazily, as Redis 7.0's SET ... EXAT/PXAT does.
  d.setString(key, value, expireAt !== 0 ? expireAt : (flags & F_KEEPTTL) !== 0 ? KEEP_TTL : 0);
  if ((flags & F_GET) === 0) {
    if (replies === REPLY_ONE_ZERO) reply.integer(1);
    else reply.ok();
  }
}

function setCommand(ctx: CommandContext, argv: Buffer[]): void {
  let flags = 0;
  let expireAt = 0;
  if (argv.length > 3) {
    flags = parseExtendedOptions(argv, 3, true);
    if (flags < 0) {
      ctx.reply.error(SYNTAX_ERROR);
      return;
    }
    if (optExpireIndex !== 0) {
      expireAt = expireFromArg(ctx.reply, argv[optExpireIndex]!, flags, INVALID_EXPIRE_SET);
      if (expireAt < 0) return;
    }
  }
  setGeneric(ctx, flags, argv[1]!, argv[2]!, expireAt, REPLY_OK_NULL);
}

function setnxCommand(ctx: CommandContext, argv: Buffer[]): void {
  setGeneric(ctx, F_NX, argv[1]!, argv[2]!, 0, REPLY_ONE_ZERO);
}

function setexCommand(ctx: CommandContext, argv: Buffer[]): void {
  const expireAt = expireFromArg(ctx.reply, argv[2]!, F_EX, INVALID_EXPIRE_SETEX);
  if (expireAt < 0) return;
  setGeneric(ctx, F_EX, argv[1]!, argv[3]!, expireAt, REPLY_OK_NULL);
}

function psetexCommand(ctx: CommandContext, argv: Buffer[]): void {
  const expireAt = expireFromArg(ctx.reply, argv[2]!, F_PX, INVALID_EXPIRE_PSETEX);
  if (expireAt < 0) return;
  setGeneric(ctx, F_PX, argv[1]!, argv[3]!, expireAt, REPLY_OK_NULL);
}

function getsetCommand(ctx: CommandContext, argv: Buffer[]): void {
  const d = db(ctx);
  if (getGeneric(ctx.reply, d, argv[1]!) < 0) return;
  d.setString(argv[1]!, argv[2]!, 0);
}

function getdelCommand(ctx: CommandContext, argv: Buffer[]): void {
  const d = db(ctx);
  const e = getGeneric(ctx.reply, d, argv[1]!);
  if (e > 0) d.remove(e);
}

function getexCommand(ctx: CommandContext, argv: Buffer[]): void {
  const reply = ctx.reply;
  const flags = parseExtendedOptions(argv, 2, false);
  if (flags < 0) {
    reply.error(SYNTAX_ERROR);
    return;
  }
  const expireIndex = optExpireIndex;
  const d = db(ctx);
  const e = d.lookup(argv[1]!, Lookup.Read);
  if (e === 0) {
    reply.nullBulk();
    return;
  }
  if (d.typeOf(e) !== ValueType.String) {
    reply.error(WRONGTYPE);
    return;
  }
  let expireAt = 0;
  if (expireIndex !== 0) {
    expireAt = expireFromArg(reply, argv[expireIndex]!, flags, INVALID_EXPIRE_GETEX);
    if (expireAt < 0) return;
  }
  replyValue(reply, d, e);
  if ((flags & (F_EXAT | F_PXAT)) !== 0 && expireAt <= Date.now()) {
    d.remove(e); // an absolute time already past deletes the key (checkAlreadyExpired)
  } else if (expireIndex !== 0) {
    d.setExpireAt(e, expireAt);
  } else if ((flags & F_PERSIST) !== 0) {
    d.persist(e);
  }
}

// ---- MGET / MSET / MSETNX -----------------------------------------------------------
function mgetCommand(ctx: CommandContext, argv: Buffer[]): void {
  const reply = ctx.reply;
  const d = db(ctx);
  const argc = argv.length;
  reply.arrayHeader(argc - 1);
  for (let j = 1; j < argc; j++) {
    const e = d.lookup(argv[j]!, Lookup.Read);
    if (e === 0 || d.typeOf(e) !== ValueType.String) reply.nullBulk();
    else replyValue(reply, d, e);
  }
}

/**
 * Whether the pool certainly has room for every allocation storing these
 * pairs could make: each entry may need a fresh page (plus its page chain),
 * and the hash table may double once.
 */
function certainlyFits(ctx: CommandContext, d: Database, argv: Buffer[]): boolean {
  let pages = 0;
  const pairs = (argv.length - 1) / 2;
  for (let j = 1; j < argv.length; j += 2) {
    const valueLength = argv[j + 1]!.length;
    pages += KEY_OFFSET + argv[j]!.length + valueLength <= CHUNK_MAX ? 1 : 1 + Math.ceil(valueLength / PAGE_DATA);
  }
  const buckets = d.dict.buckets();
  if (d.size() + pairs >= buckets) pages += Math.ceil((buckets * 8) / PAGE_BYTES) + 2;
  return ctx.server.pool.allocator.hasRoomFor(pages * PAGE_BYTES);
}

interface UndoRecord {
  key: Buffer;
  /** The value the key held (null: it did not exist). */
  value: Buffer | null;
  expireAt: number;
}

function msetCommand(ctx: CommandContext, argv: Buffer[]): void {
  const argc = argv.length;
  if ((argc & 1) === 0) {
    ctx.reply.error("ERR wrong number of arguments for 'mset' command");
    return;
  }
  const d = db(ctx);
  if (argc === 3 || certainlyFits(ctx, d, argv)) {
    for (let j = 1; j < argc; j += 2) {
      d.lookup(argv[j]!, Lookup.Write);
      d.setString(argv[j]!, argv[j + 1]!, 0);
    }
  } else {
    msetWithUndo(d, argv);
  }
  ctx.reply.ok();
}

/**
 * MSET when the pool is nearly full: remember what each key held, so a
 * PoolFullError half-way puts the dataset back as it was before rethrowing.
 */
function msetWithUndo(d: Database, argv: Buffer[]): void {
  const undo: UndoRecord[] = [];
  const seen = new Set<string>();
  try {
    for (let j = 1; j < argv.length; j += 2) {
      const key = argv[j]!;
      const id = key.toString('latin1');
      const e = d.lookup(key, Lookup.Write);
      if (!seen.has(id)) {
        seen.add(id);
        undo.push(e !== 0 && d.typeOf(e) === ValueType.String
          ? { key, value: d.readString(e), expireAt: d.expireAt(e) }
          : { key, value: null, expireAt: 0 });
      }
      d.setString(key, argv[j + 1]!, 0);
    }
  } catch (err) {
    for (let i = undo.length - 1; i >= 0; i--) {
      const u = undo[i]!;
      d.deleteKey(u.key);
      if (u.value !== null) d.setString(u.key, u.value, u.expireAt);
    }
    throw err;
  }
}

function msetnxCommand(ctx: CommandContext, argv: Buffer[]): void {
  const argc = argv.length;
  if ((argc & 1) === 0) {
    ctx.reply.error("ERR wrong number of arguments for 'msetnx' command");
    return;
  }
  const d = db(ctx);
  for (let j = 1; j < argc; j += 2) {
    if (d.lookup(argv[j]!, Lookup.Write) !== 0) {
      ctx.reply.integer(0);
      return;
    }
  }
  let j = 1;
  try {
    for (; j < argc; j += 2) d.setString(argv[j]!, argv[j + 1]!, 0);
  } catch (err) {
    // None of the keys existed: deleting the ones already stored undoes it all.
    for (let k = 1; k < j; k += 2) d.deleteKey(argv[k]!);
    throw err;
  }
  ctx.reply.integer(1);
}

// ---- APPEND / STRLEN / GETRANGE / SETRANGE ------------------------------------------
function appendCommand(ctx: CommandContext, argv: Buffer[]): void {
  const reply = ctx.reply;
  const d = db(ctx);
  const key = argv[1]!;
  const tail = argv[2]!;
  const e = d.lookup(key, Lookup.Write);
  if (e === 0) {
    d.setString(key, tail, 0);
    reply.integer(tail.length);
    return;
  }
  if (d.typeOf(e) !== ValueType.String) {
    reply.error(WRONGTYPE);
    return;
  }
  const oldLength = d.stringLength(e);
  const total = oldLength + tail.length;
  if (total > protoMaxBulkLen(ctx)) {
    reply.error(STRING_TOO_LONG);
    return;
  }
  ensureRoomToGrow(ctx, e, oldLength, total);
  const grown = d.resizeString(e, total);
  d.writeString(grown, oldLength, tail);
  reply.integer(total);
}

function strlenCommand(ctx: CommandContext, argv: Buffer[]): void {
  const d = db(ctx);
  const e = d.lookup(argv[1]!, Lookup.Read);
  if (e === 0) ctx.reply.integer(0);
  else if (d.typeOf(e) !== ValueType.String) ctx.reply.error(WRONGTYPE);
  else ctx.reply.integer(d.stringLength(e));
}

function getrangeCommand(ctx: CommandContext, argv: Buffer[]): void {
  const reply = ctx.reply;
  if (!string2ll(argv[2]!, argv[2]!.length)) {
    reply.error(NOT_INTEGER);
    return;
  }
  let start = llNum;
  const startBig = llBig;
  if (!string2ll(argv[3]!, argv[3]!.length)) {
    reply.error(NOT_INTEGER);
    return;
  }
  let end = llNum;
  const endBig = llBig;
  const d = db(ctx);
  const e = d.lookup(argv[1]!, Lookup.Read);
  if (e === 0) {
    reply.raw(EMPTY_BULK);
    return;
  }
  if (d.typeOf(e) !== ValueType.String) {
    reply.error(WRONGTYPE);
    return;
  }
  const len = d.stringLength(e);
  if (startBig !== null || endBig !== null) {
    // Beyond 2^53 the comparisons below need exact values; past the string's
    // length every such index clamps, so reduce them to equivalent small ones.
    const s = startBig ?? BigInt(start);
    const t = endBig ?? BigInt(end);
    if (s < 0n && t < 0n && s > t) {
      reply.raw(EMPTY_BULK);
      return;
    }
    const limit = BigInt(len) + 1n;
    start = Number(s > limit ? limit : s < -limit ? -limit : s);
    end = Number(t > limit ? limit : t < -limit ? -limit : t);
  }
  if (start < 0 && end < 0 && start > end) {
    reply.raw(EMPTY_BULK);
    return;
  }
  if (start < 0) start = len + start;
  if (end < 0) end = len + end;
  if (start < 0) start = 0;
  if (end < 0) end = 0;
  if (end >= len) end = len - 1;
  if (start > end || len === 0) {
    reply.raw(EMPTY_BULK);
    return;
  }
  const n = end - start + 1;
  const at = reply.beginBulk(n);
  d.copyString(e, start, start + n, reply.buf, at);
  reply.endBulk();
}

function setrangeCommand(ctx: CommandContext, argv: Buffer[]): void {
  const reply = ctx.reply;
  const key = argv[1]!;
  const value = argv[3]!;
  if (!string2ll(argv[2]!, argv[2]!.length)) {
    reply.error(NOT_INTEGER);
    return;
  }
  // Offsets past 2^53 exceed any allowed size; keep them as a huge number.
  const offset = llBig !== null ? (llBig < 0n ? -1 : Number.MAX_VALUE) : llNum;
  if (offset < 0) {
    reply.error(OFFSET_OUT_OF_RANGE);
    return;
  }
  const d = db(ctx);
  const e = d.lookup(key, Lookup.Write);
  if (e === 0) {
    if (value.length === 0) {
      reply.integer(0);
      return;
    }
    const total = offset + value.length;
    if (total > protoMaxBulkLen(ctx)) {
      reply.error(STRING_TOO_LONG);
      return;
    }
    const created = d.setString(key, EMPTY, 0);
    try {
      const grown = d.resizeString(created, total);
      d.writeString(grown, offset, value);
    } catch (err) {
      d.deleteKey(key); // the key did not exist: leave it so
      throw err;
    }
    reply.integer(total);
    return;
  }
  if (d.typeOf(e) !== ValueType.String) {
    reply.error(WRONGTYPE);
    return;
  }
  const oldLength = d.stringLength(e);
  if (value.length === 0) {
    reply.integer(oldLength);
    return;
  }
  const end = offset + value.length;
  if (end > protoMaxBulkLen(ctx)) {
    reply.error(STRING_TOO_LONG);
    return;
  }
  const newLength = end > oldLength ? end : oldLength;
  ensureRoomToGrow(ctx, e, oldLength, newLength);
  const grown = d.resizeString(e, newLength);
  d.writeString(grown, offset, value);
  reply.integer(newLength);
}

// ---- INCR / DECR / INCRBY / DECRBY ----------------------------------------------------
/** incrDecrCommand with the increment given exactly (incrBig when beyond 2^53). */
function incrDecr(ctx: CommandContext, key: Buffer, incr: number, incrBig: bigint | null): void {
  const reply = ctx.reply;
  const d = db(ctx);
  const e = d.lookup(key, Lookup.Write);
  let value = 0;
  let valueBig: bigint | null = null;
  if (e !== 0) {
    if (d.typeOf(e) !== ValueType.String) {
      reply.error(WRONGTYPE);
      return;
    }
    const len = d.stringLength(e);
    if (len === 0 || len >= 21) {
      reply.error(NOT_INTEGER);
      return;
    }
    d.copyString(e, 0, len, NUM, 0);
    if (!string2ll(NUM, len)) {
      reply.error(NOT_INTEGER);
      return;
    }
    value = llNum;
    valueBig = llBig;
  }
  let n: number;
  const sum = value + incr;
  if (valueBig === null && incrBig === null && sum <= MAX_SAFE && sum >= -MAX_SAFE) {
    n = formatSafeInt(sum);
  } else {
    const exact = (valueBig ?? BigInt(value)) + (incrBig ?? BigInt(incr));
    if (exact > LLONG_MAX || exact < LLONG_MIN) {
      reply.error(INCR_OVERFLOW);
      return;
    }
    n = formatBigInt(exact);
  }
  if (e !== 0) d.replaceString(e, NUM_VIEWS[n]!);
  else d.setString(key, NUM_VIEWS[n]!, 0);
  replyNumScratch(reply, n);
}

function incrCommand(ctx: CommandContext, argv: Buffer[]): void {
  incrDecr(ctx, argv[1]!, 1, null);
}

function decrCommand(ctx: CommandContext, argv: Buffer[]): void {
  incrDecr(ctx, argv[1]!, -1, null);
}

function incrbyCommand(ctx: CommandContext, argv: Buffer[]): void {
  if (!string2ll(argv[2]!, argv[2]!.length)) {
    ctx.reply.error(NOT_INTEGER);
    return;
  }
  incrDecr(ctx, argv[1]!, llNum, llBig);
}

function decrbyCommand(ctx: CommandContext, argv: Buffer[]): void {
  if (!string2ll(argv[2]!, argv[2]!.length)) {
    ctx.reply.error(NOT_INTEGER);
    return;
  }
  if (llBig === LLONG_MIN) {
    ctx.reply.error(DECR_OVERFLOW);
    return;
  }
  incrDecr(ctx, argv[1]!, -llNum, llBig === null ? null : -llBig);
}

// ---- INCRBYFLOAT ----------------------------------------------------------------------
function incrbyfloatCommand(ctx: CommandContext, argv: Buffer[]): void {
  const reply = ctx.reply;
  const d = db(ctx);
  const key = argv[1]!;
  const e = d.lookup(key, Lookup.Write);
  let value: LongDouble | null = LD_ZERO;
  if (e !== 0) {
    if (d.typeOf(e) !== ValueType.String) {
      reply.error(WRONGTYPE);
      return;
    }
    const len = d.stringLength(e);
    value = len === 0 || len >= MAX_LONG_DOUBLE_CHARS ? null : parseLongDouble(d.readString(e));
  }
  const incr = value === null ? null : parseLongDouble(argv[2]!);
  if (value === null || incr === null) {
    reply.error(NOT_FLOAT);
    return;
  }
  const sum = addLongDouble(value, incr);
  if (sum.kind !== LD_FINITE) {
    reply.error(NAN_OR_INFINITY);
    return;
  }
  const text = Buffer.from(formatLongDoubleHuman(sum), 'latin1');
  // Redis stores the result as a string object, never int-encoded.
  d.markNotInteger(e !== 0 ? d.replaceString(e, text) : d.setString(key, text, 0));
  reply.bulk(text);
}

// ---- LCS -------------------------------------------------------------------------------
function lcsCommand(ctx: CommandContext, argv: Buffer[]): void {
  const reply = ctx.reply;
  const d = db(ctx);
  const ea = d.lookup(argv[1]!, Lookup.Read);
  const eb = d.lookup(argv[2]!, Lookup.Read);
  if ((ea !== 0 && d.typeOf(ea) !== ValueType.String) || (eb !== 0 && d.typeOf(eb) !== ValueType.String)) {
    reply.error(LCS_NOT_STRINGS);
    return;
  }
  let getLen = false;
  let getIdx = false;
  let withMatchLen = false;
  let minMatchLen = 0;
  const argc = argv.length;
  for (let j = 3; j < argc; j++) {
    const opt = argv[j]!;
    const moreArgs = argc - 1 - j;
    if (optIs(opt, 'IDX')) {
      getIdx = true;
    } else if (optIs(opt, 'LEN')) {
      getLen = true;
    } else if (optIs(opt, 'WITHMATCHLEN')) {
      withMatchLen = true;
    } else if (optIs(opt, 'MINMATCHLEN') && moreArgs > 0) {
      const arg = argv[j + 1]!;
      if (!string2ll(arg, arg.length)) {
        reply.error(NOT_INTEGER);
        return;
      }
      minMatchLen = llNum < 0 ? 0 : llNum;
      j++;
    } else {
      reply.error(SYNTAX_ERROR);
      return;
    }
  }
  if (getIdx && getLen) {
    reply.error(LCS_IDX_AND_LEN);
    return;
  }
  const a = ea !== 0 ? d.readString(ea) : EMPTY;
  const b = eb !== 0 ? d.readString(eb) : EMPTY;
  const alen = a.length;
  const blen = b.length;
  if (alen >= 0xfffffffe || blen >= 0xfffffffe) {
    reply.error(LCS_TOO_LONG);
    return;
  }
  const cells = (alen + 1) * (blen + 1);
  if (cells * 4 > protoMaxBulkLen(ctx)) {
    reply.error(LCS_TABLE_TOO_BIG);
    return;
  }
  let lcs: Uint32Array;
  try {
    lcs = new Uint32Array(cells);
  } catch {
    reply.error(LCS_NO_MEMORY);
    return;
  }
  // lcs[j + i*(blen+1)] = length of the LCS of a[0, i) and b[0, j).
  const row = blen + 1;
  for (let i = 1; i <= alen; i++) {
    const ai = a[i - 1]!;
    const base = i * row;
    const prev = base - row;
    for (let j = 1; j <= blen; j++) {
      if (ai === b[j - 1]) {
        lcs[base + j] = lcs[prev + j - 1]! + 1;
      } else {
        const up = lcs[prev + j]!;
        const left = lcs[base + j - 1]!;
        lcs[base + j] = up > left ? up : left;
      }
    }
  }
  const total = lcs[alen * row + blen]!;
  if (getLen && !getIdx) {
    reply.integer(total);
    return;
  }
  // Walk back from the end, as Redis does, building the string and the ranges.
  const result = Buffer.allocUnsafe(total);
  const ranges: number[] = [];
  let idx = total;
  let aStart = alen; // alen: no range open
  let aEnd = 0;
  let bStart = 0;
  let bEnd = 0;
  let i = alen;
  let j = blen;
  while (i > 0 && j > 0) {
    let emit = false;
    if (a[i - 1] === b[j - 1]) {
      result[idx - 1] = a[i - 1]!;
      if (aStart === alen) {
        aStart = i - 1;
        aEnd = i - 1;
        bStart = j - 1;
        bEnd = j - 1;
      } else if (aStart === i && bStart === j) {
        aStart--;
        bStart--;
      } else {
        emit = true;
      }
      if (aStart === 0 || bStart === 0) emit = true;
      idx--;
      i--;
      j--;
    } else {
      const up = lcs[(i - 1) * row + j]!;
      const left = lcs[i * row + j - 1]!;
      if (up > left) i--;
      else j--;
      if (aStart !== alen) emit = true;
    }
    if (emit) {
      const matchLen = aEnd - aStart + 1;
      if (minMatchLen === 0 || matchLen >= minMatchLen) ranges.push(aStart, aEnd, bStart, bEnd, matchLen);
      aStart = alen;
    }
  }
  if (!getIdx) {
    reply.bulk(result);
    return;
  }
  reply.mapHeader(2);
  reply.bulk('matches');
  reply.arrayHeader(ranges.length / 5);
  for (let k = 0; k < ranges.length; k += 5) {
    reply.arrayHeader(withMatchLen ? 3 : 2);
    reply.arrayHeader(2);
    reply.integer(ranges[k]!);
    reply.integer(ranges[k + 1]!);
    reply.arrayHeader(2);
    reply.integer(ranges[k + 2]!);
    reply.integer(ranges[k + 3]!);
    if (withMatchLen) reply.integer(ranges[k + 4]!);
  }
  reply.bulk('len');
  reply.integer(total);
}

// ---- long double ------------------------------------------------------------------------
// x87 extended precision, as `long double` is on x86-64 Linux: a 64-bit
// significand (explicit integer bit), exponents down to 2^-16445 (subnormal)
// and values below 2^16384. A finite value is (-1)^neg * m * 2^e exactly.
// Every operation is done exactly with BigInt and rounded once to nearest,
// ties to even, which is what the FPU (for +) and glibc (strtold, printf) do.

export const LD_FINITE = 0;
export const LD_INFINITE = 1;
export const LD_NAN = 2;

export interface LongDouble {
  kind: number;
  neg: boolean;
  m: bigint;
  e: number;
}

const LD_MANT_BITS = 64;
/** Exponent of the least significant bit of the smallest subnormal. */
const LD_MIN_EXP = -16445;
/** Finite values are below 2^LD_MAX_BITS. */
const LD_MAX_BITS = 16384;
/** Redis's MAX_LONG_DOUBLE_CHARS: string2ld refuses strings this long or longer. */
const MAX_LONG_DOUBLE_CHARS = 5 * 1024;

const LD_ZERO: LongDouble = { kind: LD_FINITE, neg: false, m: 0n, e: 0 };

function bitLength(n: bigint): number {
  if (n === 0n) return 0;
  const hex = n.toString(16);
  return hex.length * 4 - (Math.clz32(parseInt(hex[0]!, 16)) - 28);
}

/** Round n * 2^e (plus a bit more when sticky) to a long double. */
function roundLongDouble(neg: boolean, n: bigint, e: number, sticky: boolean): LongDouble {
  if (n === 0n) return { kind: LD_FINITE, neg, m: 0n, e: 0 };
  const bits = bitLength(n);
  let target = e + bits - LD_MANT_BITS;
  if (target < LD_MIN_EXP) target = LD_MIN_EXP;
  const shift = target - e;
  let m = n;
  let exp = e;
  if (shift > 0) {
    const s = BigInt(shift);
    m = n >> s;
    const rest = n - (m << s);
    const half = 1n << (s - 1n);
    if (rest > half || (rest === half && (sticky || (m & 1n) === 1n))) m += 1n;
    exp = target;
    if (m === 1n << 64n) {
      m >>= 1n;
      exp++;
    }
  }
  if (m !== 0n && bitLength(m) + exp > LD_MAX_BITS) return { kind: LD_INFINITE, neg, m: 0n, e: 0 };
  return { kind: LD_FINITE, neg, m, e: exp };
}

const FLOAT_RE = /^([+-]?)(?:(inf(?:inity)?)|(nan(?:\([0-9a-z_]*\))?)|0x([0-9a-f]*)(?:\.([0-9a-f]*))?(?:p([+-]?[0-9]+))?|([0-9]*)(?:\.([0-9]*))?(?:e([+-]?[0-9]+))?)$/i;

/** A decimal exponent string as a number, clamped far beyond any meaningful range. */
function clampedExponent(text: string | undefined): number {
  if (text === undefined) return 0;
  const v = parseInt(text, 10);
  return v > 1e8 ? 1e8 : v < -1e8 ? -1e8 : v;
}

/**
 * Redis's string2ld: strtold consuming the whole string, refusing leading
 * spaces, NaN, overflow and underflow to zero.
 * Returns null when Redis would say "not a valid float".
 */
export function parseLongDouble(buf: Buffer): LongDouble | null {
  const len = buf.length;
  // strtold must consume every byte, so an embedded NUL makes it invalid too.
  if (len === 0 || len >= MAX_LONG_DOUBLE_CHARS || buf.indexOf(0) >= 0) return null;
  const first = buf[0]!;
  if (first === 0x20 || (first >= 0x09 && first <= 0x0d)) return null;
  const match = FLOAT_RE.exec(buf.toString('latin1', 0, len));
  if (match === null) return null;
  const neg = match[1] === '-';
  if (match[2] !== undefined) return { kind: LD_INFINITE, neg, m: 0n, e: 0 };
  if (match[3] !== undefined) return null;
  if (match[4] !== undefined) {
    // Hexadecimal: 0x<int>[.<frac>][p<exp>], at least one digit.
    const intDigits = match[4]!;
    const fracDigits = match[5] ?? '';
    if (intDigits.length + fracDigits.length === 0) return null;
    const mant = BigInt('0x' + (intDigits + fracDigits || '0'));
    if (mant === 0n) return { kind: LD_FINITE, neg, m: 0n, e: 0 };
    const exp = clampedExponent(match[6]) - 4 * fracDigits.length;
    const bits = bitLength(mant);
    if (bits + exp > LD_MAX_BITS) return null;
    if (bits + exp < LD_MIN_EXP - 1) return null;
    const r = roundLongDouble(neg, mant, exp, false);
    return r.kind !== LD_FINITE || r.m === 0n ? null : r;
  }
  const intDigits = match[7] ?? '';
  const fracDigits = match[8] ?? '';
  if (intDigits.length + fracDigits.length === 0) return null;
  let digits = (intDigits + fracDigits).replace(/^0+/, '');
  if (digits.length === 0) return { kind: LD_FINITE, neg, m: 0n, e: 0 };
  let exp10 = clampedExponent(match[9]) - fracDigits.length;
  const trailing = digits.length - digits.replace(/0+$/, '').length;
  if (trailing > 0) {
    digits = digits.slice(0, digits.length - trailing);
    exp10 += trailing;
  }
  // |value| is in [10^(len-1+exp10), 10^(len+exp10)); long doubles span ~3.6e-4951 .. 1.19e4932.
  if (digits.length - 1 + exp10 > 4933) return null;
  if (digits.length + exp10 < -4952) return null;
  const d = BigInt(digits);
  let r: LongDouble;
  if (exp10 >= 0) {
    r = roundLongDouble(neg, d * 10n ** BigInt(exp10), 0, false);
  } else {
    const p = 10n ** BigInt(-exp10);
    const shift = Math.max(0, LD_MANT_BITS + 2 + bitLength(p) - bitLength(d));
    const scaled = d << BigInt(shift);
    const q = scaled / p;
    r = roundLongDouble(neg, q, -shift, q * p !== scaled);
  }
  return r.kind !== LD_FINITE || r.m === 0n ? null : r;
}

/** a + b rounded to long double (NaN for inf - inf). */
export function addLongDouble(a: LongDouble, b: LongDouble): LongDouble {
  if (a.kind === LD_NAN || b.kind === LD_NAN) return { kind: LD_NAN, neg: false, m: 0n, e: 0 };
  if (a.kind === LD_INFINITE || b.kind === LD_INFINITE) {
    if (a.kind === LD_INFINITE && b.kind === LD_INFINITE && a.neg !== b.neg) return { kind: LD_NAN, neg: false, m: 0n, e: 0 };
    return a.kind === LD_INFINITE ? a : b;
  }
  if (a.m === 0n && b.m === 0n) return { kind: LD_FINITE, neg: a.neg && b.neg, m: 0n, e: 0 };
  if (a.m === 0n) return b;
  if (b.m === 0n) return a;
  const e = Math.min(a.e, b.e);
  const x = a.m << BigInt(a.e - e);
  const y = b.m << BigInt(b.e - e);
  const sum = (a.neg ? -x : x) + (b.neg ? -y : y);
  if (sum === 0n) return { kind: LD_FINITE, neg: false, m: 0n, e: 0 };
  return roundLongDouble(sum < 0n, sum < 0n ? -sum : sum, e, false);
}

const TEN_POW_17 = 10n ** 17n;

/**
 * ld2string(..., LD_STR_HUMAN): printf("%.17Lf") with the trailing zeros (and
 * a bare '.') removed, and "-0" written as "0". `x` must be finite.
 */
export function formatLongDoubleHuman(x: LongDouble): string {
  let scaled: bigint;
  if (x.e >= 0) {
    scaled = (x.m << BigInt(x.e)) * TEN_POW_17;
  } else {
    const num = x.m * TEN_POW_17;
    const s = BigInt(-x.e);
    const q = num >> s;
    const rest = num - (q << s);
    const half = 1n << (s - 1n);
    scaled = rest > half || (rest === half && (q & 1n) === 1n) ? q + 1n : q;
  }
  let digits = scaled.toString();
  if (digits.length < 18) digits = '0'.repeat(18 - digits.length) + digits;
  const intPart = digits.slice(0, digits.length - 17);
  const frac = digits.slice(digits.length - 17).replace(/0+$/, '');
  const text = (x.neg ? '-' : '') + intPart + (frac.length > 0 ? '.' + frac : '');
  return text === '-0' ? '0' : text;
}

// ---- the table ------------------------------------------------------------------------
const O1 = 'O(1)';
const RANGE_COMPLEXITY =
  'O(N) where N is the length of the returned string. The complexity is ultimately determined by the returned length, but because creating a substring from an existing string is very cheap, it can be considered O(1) for small strings.';

export const commands: CommandSpec[] = [
  {
    name: 'get', arity: 2, flags: ['readonly', 'fast'], firstKey: 1, lastKey: 1, step: 1,
    acl: ['read', 'string', 'fast'], group: 'string', since: '1.0.0',
    summary: 'Get the value of a key', complexity: O1, handler: getCommand,
  },
  {
    name: 'set', arity: -3, flags: ['write', 'denyoom'], firstKey: 1, lastKey: 1, step: 1,
    acl: ['write', 'string', 'slow'], group: 'string', since: '1.0.0',
    summary: 'Set the string value of a key', complexity: O1, handler: setCommand,
  },
  {
    name: 'setnx', arity: 3, flags: ['write', 'denyoom', 'fast'], firstKey: 1, lastKey: 1, step: 1,
    acl: ['write', 'string', 'fast'], group: 'string', since: '1.0.0',
    summary: 'Set the value of a key, only if the key does not exist', complexity: O1, handler: setnxCommand,
  },
  {
    name: 'setex', arity: 4, flags: ['write', 'denyoom'], firstKey: 1, lastKey: 1, step: 1,
    acl: ['write', 'string', 'slow'], group: 'string', since: '2.0.0',
    summary: 'Set the value and expiration of a key', complexity: O1, handler: setexCommand,
  },
  {
    name: 'psetex', arity: 4, flags: ['write', 'denyoom'], firstKey: 1, lastKey: 1, step: 1,
    acl: ['write', 'string', 'slow'], group: 'string', since: '2.6.0',
    summary: 'Set the value and expiration in milliseconds of a key', complexity: O1, handler: psetexCommand,
  },
  {
    name: 'mget', arity: -2, flags: ['readonly', 'fast'], firstKey: 1, lastKey: -1, step: 1,
    acl: ['read', 'string', 'fast'], group: 'string', since: '1.0.0',
    summary: 'Get the values of all the given keys',
    complexity: 'O(N) where N is the number of keys to retrieve.', handler: mgetCommand,
  },
  {
    name: 'mset', arity: -3, flags: ['write', 'denyoom'], firstKey: 1, lastKey: -1, step: 2,
    acl: ['write', 'string', 'slow'], group: 'string', since: '1.0.1',
    summary: 'Set multiple keys to multiple values',
    complexity: 'O(N) where N is the number of keys to set.', handler: msetCommand,
  },
  {
    name: 'msetnx', arity: -3, flags: ['write', 'denyoom'], firstKey: 1, lastKey: -1, step: 2,
    acl: ['write', 'string', 'slow'], group: 'string', since: '1.0.1',
    summary: 'Set multiple keys to multiple values, only if none of the keys exist',
    complexity: 'O(N) where N is the number of keys to set.', handler: msetnxCommand,
  },
  {
    name: 'getset', arity: 3, flags: ['write', 'denyoom', 'fast'], firstKey: 1, lastKey: 1, step: 1,
    acl: ['write', 'string', 'fast'], group: 'string', since: '1.0.0',
    summary: 'Set the string value of a key and return its old value', complexity: O1, handler: getsetCommand,
  },
  {
    name: 'getdel', arity: 2, flags: ['write', 'fast'], firstKey: 1, lastKey: 1, step: 1,
    acl: ['write', 'string', 'fast'], group: 'string', since: '6.2.0',
    summary: 'Get the value of a key and delete the key', complexity: O1, handler: getdelCommand,
  },
  {
    name: 'getex', arity: -2, flags: ['write', 'fast'], firstKey: 1, lastKey: 1, step: 1,
    acl: ['write', 'string', 'fast'], group: 'string', since: '6.2.0',
    summary: 'Get the value of a key and optionally set its expiration', complexity: O1, handler: getexCommand,
  },
  {
    name: 'append', arity: 3, flags: ['write', 'denyoom', 'fast'], firstKey: 1, lastKey: 1, step: 1,
    acl: ['write', 'string', 'fast'], group: 'string', since: '2.0.0',
    summary: 'Append a value to a key',
    complexity: 'O(1). The amortized time complexity is O(1) assuming the appended value is small and the already present value is of any size, since the dynamic string library used by Redis will double the free space available on every reallocation.',
    handler: appendCommand,
  },
  {
    name: 'strlen', arity: 2, flags: ['readonly', 'fast'], firstKey: 1, lastKey: 1, step: 1,
    acl: ['read', 'string', 'fast'], group: 'string', since: '2.2.0',
    summary: 'Get the length of the value stored in a key', complexity: O1, handler: strlenCommand,
  },
  {
    name: 'incr', arity: 2, flags: ['write', 'denyoom', 'fast'], firstKey: 1, lastKey: 1, step: 1,
    acl: ['write', 'string', 'fast'], group: 'string', since: '1.0.0',
    summary: 'Increment the integer value of a key by one', complexity: O1, handler: incrCommand,
  },
  {
    name: 'decr', arity: 2, flags: ['write', 'denyoom', 'fast'], firstKey: 1, lastKey: 1, step: 1,
    acl: ['write', 'string', 'fast'], group: 'string', since: '1.0.0',
    summary: 'Decrement the integer value of a key by one', complexity: O1, handler: decrCommand,
  },
  {
    name: 'incrby', arity: 3, flags: ['write', 'denyoom', 'fast'], firstKey: 1, lastKey: 1, step: 1,
    acl: ['write', 'string', 'fast'], group: 'string', since: '1.0.0',
    summary: 'Increment the integer value of a key by the given amount', complexity: O1, handler: incrbyCommand,
  },
  {
    name: 'decrby', arity: 3, flags: ['write', 'denyoom', 'fast'], firstKey: 1, lastKey: 1, step: 1,
    acl: ['write', 'string', 'fast'], group: 'string', since: '1.0.0',
    summary: 'Decrement the integer value of a key by the given number', complexity: O1, handler: decrbyCommand,
  },
  {
    name: 'incrbyfloat', arity: 3, flags: ['write', 'denyoom', 'fast'], firstKey: 1, lastKey: 1, step: 1,
    acl: ['write', 'string', 'fast'], group: 'string', since: '2.6.0',
    summary: 'Increment the float value of a key by the given amount', complexity: O1, handler: incrbyfloatCommand,
  },
  {
    name: 'getrange', arity: 4, flags: ['readonly'], firstKey: 1, lastKey: 1, step: 1,
    acl: ['read', 'string', 'slow'], group: 'string', since: '2.4.0',
    summary: 'Get a substring of the string stored at a key', complexity: RANGE_COMPLEXITY, handler: getrangeCommand,
  },
  {
    name: 'setrange', arity: 4, flags: ['write', 'denyoom'], firstKey: 1, lastKey: 1, step: 1,
    acl: ['write', 'string', 'slow'], group: 'string', since: '2.2.0',
    summary: 'Overwrite part of a string at key starting at the specified offset',
    complexity: 'O(1), not counting the time taken to copy the new string in place. Usually, this string is very small so the amortized complexity is O(1). Otherwise, complexity is O(M) with M being the length of the value argument.',
    handler: setrangeCommand,
  },
  {
    name: 'substr', arity: 4, flags: ['readonly'], firstKey: 1, lastKey: 1, step: 1,
    acl: ['read', 'string', 'slow'], group: 'string', since: '1.0.0',
    summary: 'Get a substring of the string stored at a key', complexity: RANGE_COMPLEXITY, handler: getrangeCommand,
  },
  {
    name: 'lcs', arity: -3, flags: ['readonly'], firstKey: 1, lastKey: 2, step: 1,
    acl: ['read', 'string', 'slow'], group: 'string', since: '7.0.0',
    summary: 'Find longest common substring',
    complexity: 'O(N*M) where N and M are the lengths of s1 and s2, respectively', handler: lcsCommand,
  },
];
