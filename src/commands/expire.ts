// The "generic" command group, TTL half: EXPIRE PEXPIRE EXPIREAT PEXPIREAT
// (with NX XX GT LT), TTL PTTL EXPIRETIME PEXPIRETIME, PERSIST. Declarations
// are Redis 7.0.15's command table; replies follow expire.c of that release.
import { Lookup } from '../store/keyspace';
import type { CommandContext, CommandSpec } from './types';
import { NOT_INTEGER_ERROR, argIs, cString, errorWithArg, lookupNoTouchCounted, parseLongLong } from './keys';

const LLONG_MAX = 9223372036854775807n;
const LLONG_MIN = -9223372036854775808n;

const EXPIRE_NX = 1;
const EXPIRE_XX = 2;
const EXPIRE_GT = 4;
const EXPIRE_LT = 8;

/** parseExtendedExpireArgumentsOrReply(): option flags from argv[3...], or -1 after replying. */
function parseExpireFlags(ctx: CommandContext, argv: Buffer[]): number {
  let flags = 0;
  for (let j = 3; j < argv.length; j++) {
    const opt = argv[j]!;
    if (argIs(opt, 'nx')) flags |= EXPIRE_NX;
    else if (argIs(opt, 'xx')) flags |= EXPIRE_XX;
    else if (argIs(opt, 'gt')) flags |= EXPIRE_GT;
    else if (argIs(opt, 'lt')) flags |= EXPIRE_LT;
    else {
      errorWithArg(ctx, `ERR Unsupported option ${cString(opt)}`);
      return -1;
    }
  }
  if ((flags & EXPIRE_NX) !== 0 && (flags & (EXPIRE_XX | EXPIRE_GT | EXPIRE_LT)) !== 0) {
    ctx.reply.error('ERR NX and XX, GT or LT options at the same time are not compatible');
    return -1;
  }
  if ((flags & EXPIRE_GT) !== 0 && (flags & EXPIRE_LT) !== 0) {
    ctx.reply.error('ERR GT and LT options at the same time are not compatible');
    return -1;
  }
  return flags;
}

/**
 * expireGenericCommand(): `basetime` is now (EXPIRE, PEXPIRE) or 0 (the AT
 * forms); `seconds` says whether the argument is in seconds. A time already
 * in the past deletes the key (and still answers 1).
 */
function expireGeneric(ctx: CommandContext, argv: Buffer[], name: string, relative: boolean, seconds: boolean): void {
  const reply = ctx.reply;
  const flags = parseExpireFlags(ctx, argv);
  if (flags < 0) return;
  let when = parseLongLong(argv[2]!);
  if (when === null) {
    reply.error(NOT_INTEGER_ERROR);
    return;
  }
  const invalid = `ERR invalid expire time in '${name}' command`;
  // Catch the overflows of the unit conversion and of adding the base time, as Redis does.
  if (seconds) {
    if (when > LLONG_MAX / 1000n || when < LLONG_MIN / 1000n) {
      reply.error(invalid);
      return;
    }
    when *= 1000n;
  }
  const basetime = relative ? BigInt(Date.now()) : 0n;
  if (when > LLONG_MAX - basetime) {
    reply.error(invalid);
    return;
  }
  when += basetime;

  const db = ctx.server.keyspace.db(ctx.client.db);
  const e = db.lookup(argv[1]!, Lookup.Write);
  if (e === 0) {
    reply.integer(0);
    return;
  }
  // Expire times are stored as doubles, exact up to 2^53 ms (year 287396); compare what would be
  // stored, so a time at the int64 edge compares equal to itself after the rounding.
  const whenMs = Number(when);
  if (flags !== 0) {
    const current = db.expireAt(e); // 0 = no TTL (Redis's -1), an infinite TTL for GT/LT
    if ((flags & EXPIRE_NX) !== 0 && current !== 0) {
      reply.integer(0);
      return;
    }
    if ((flags & EXPIRE_XX) !== 0 && current === 0) {
      reply.integer(0);
      return;
    }
    if ((flags & EXPIRE_GT) !== 0 && (current === 0 || whenMs <= current)) {
      reply.integer(0);
      return;
    }
    if ((flags & EXPIRE_LT) !== 0 && current !== 0 && whenMs >= current) {
      reply.integer(0);
      return;
    }
  }
  if (whenMs <= Date.now()) {
    // checkAlreadyExpired(): an explicit delete, not counted as an expiry.
    db.remove(e);
  } else {
    db.setExpireAt(e, whenMs);
  }
  reply.integer(1);
}

function expire(ctx: CommandContext, argv: Buffer[]): void {
  expireGeneric(ctx, argv, 'expire', true, true);
}
function pexpire(ctx: CommandContext, argv: Buffer[]): void {
  expireGeneric(ctx, argv, 'pexpire', true, false);
}
function expireat(ctx: CommandContext, argv: Buffer[]): void {
  expireGeneric(ctx, argv, 'expireat', false, true);
}
function pexpireat(ctx: CommandContext, argv: Buffer[]): void {
  expireGeneric(ctx, argv, 'pexpireat', false, false);
}

/** ttlGenericCommand(): -2 no key, -1 no TTL; seconds are rounded to the nearest ((ms+500)/1000). */
function ttlGeneric(ctx: CommandContext, argv: Buffer[], milliseconds: boolean, absolute: boolean): void {
  const ks = ctx.server.keyspace;
  const db = ks.db(ctx.client.db);
  const e = lookupNoTouchCounted(ks, db, argv[1]!);
  if (e === 0) {
    ctx.reply.integer(-2);
    return;
  }
  const expireAt = db.expireAt(e);
  if (expireAt === 0) {
    ctx.reply.integer(-1);
    return;
  }
  let ttl = absolute ? expireAt : expireAt - Date.now();
  if (ttl < 0) ttl = 0;
  ctx.reply.integer(milliseconds ? ttl : Math.floor((ttl + 500) / 1000));
}

function ttl(ctx: CommandContext, argv: Buffer[]): void {
  ttlGeneric(ctx, argv, false, false);
}
function pttl(ctx: CommandContext, argv: Buffer[]): void {
  ttlGeneric(ctx, argv, true, false);
}
function expiretime(ctx: CommandContext, argv: Buffer[]): void {
  ttlGeneric(ctx, argv, false, true);
}
function pexpiretime(ctx: CommandContext, argv: Buffer[]): void {
  ttlGeneric(ctx, argv, true, true);
}

function persist(ctx: CommandContext, argv: Buffer[]): void {
  const db = ctx.server.keyspace.db(ctx.client.db);
  const e = db.lookup(argv[1]!, Lookup.Write);
  ctx.reply.integer(e !== 0 && db.persist(e) ? 1 : 0);
}

// ---- declarations ---------------------------------------------------------------------

function setter(name: string, since: string, summary: string, handler: CommandSpec['handler']): CommandSpec {
  return {
    name, arity: -3, flags: ['write', 'fast'], firstKey: 1, lastKey: 1, step: 1,
    acl: ['keyspace', 'write', 'fast'], group: 'generic', since, summary, complexity: 'O(1)', handler,
  };
}

function reader(name: string, since: string, summary: string, handler: CommandSpec['handler']): CommandSpec {
  return {
    name, arity: 2, flags: ['readonly', 'fast'], firstKey: 1, lastKey: 1, step: 1,
    acl: ['keyspace', 'read', 'fast'], group: 'generic', since, summary, complexity: 'O(1)', handler,
  };
}

export const commands: CommandSpec[] = [
  setter('expire', '1.0.0', "Set a key's time to live in seconds", expire),
  setter('pexpire', '2.6.0', "Set a key's time to live in milliseconds", pexpire),
  setter('expireat', '1.2.0', 'Set the expiration for a key as a UNIX timestamp', expireat),
  setter('pexpireat', '2.6.0', 'Set the expiration for a key as a UNIX timestamp specified in milliseconds', pexpireat),
  reader('ttl', '1.0.0', 'Get the time to live for a key in seconds', ttl),
  reader('pttl', '2.6.0', 'Get the time to live for a key in milliseconds', pttl),
  reader('expiretime', '7.0.0', 'Get the expiration Unix timestamp for a key', expiretime),
  reader('pexpiretime', '7.0.0', 'Get the expiration Unix timestamp for a key in milliseconds', pexpiretime),
  {
    name: 'persist', arity: 2, flags: ['write', 'fast'], firstKey: 1, lastKey: 1, step: 1,
    acl: ['keyspace', 'write', 'fast'], group: 'generic', since: '2.2.0', summary: 'Remove the expiration from a key',
    complexity: 'O(1)', handler: persist,
  },
];
