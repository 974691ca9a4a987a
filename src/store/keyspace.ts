// The keyspace: N databases, each an in-pool dict of entries, with lazy and
// active expiry, LRU/LFU bookkeeping and the string-value operations the
// command families build on. Entry refs (numbers) are what commands hold; they
// stay valid until the next write to the same database.
import type { Pool } from '../pool/pool';
import { DB_ROOT_BYTES, DB_ROOTS_OFFSET } from '../pool/layout';
import type { PoolMemory } from '../pool/memory';
import { E_HASH, PoolDict } from './dict';
import { F_EXPIRE, FLAG_NOT_INT, FLAG_RAW, KEY_OFFSET, TYPE_NAMES, ValueType, W_KEY_LEN, W_LRU, W_META, W_VALUE_LEN } from './entry';
import { halfSipHash13 } from './hash';
import { StringStorage } from './string-value';

// Database root words after the dict's own (dict.ts DICT_ROOT_WORDS = 7).
const R_EXPIRES = 7; // keys with a TTL
const D_AVG_TTL = 4; // f64 slot 4 = bytes 32..39: running estimate, as Redis's db->avg_ttl

const LRU_CLOCK_MAX = (1 << 24) - 1;
const LFU_INIT_VAL = 5;

/** Lookup modes: whether a read counts as a keyspace hit/miss and updates the access clock. */
export const enum Lookup {
  /** Count hits/misses, touch LRU/LFU (GET, GETRANGE...). */
  Read = 0,
  /** Touch LRU/LFU, no hit/miss stats (SET, APPEND...). */
  Write = 1,
  /** Neither (OBJECT, TYPE with NOTOUCH semantics, internal checks). */
  NoTouch = 2,
}

export interface KeyspaceStats {
  expiredKeys: number;
  evictedKeys: number;
  keyspaceHits: number;
  keyspaceMisses: number;
  expiredStalePerc: number;
}

export class Database {
  readonly dict: PoolDict;
  private readonly rootRef: number;

  constructor(private readonly ks: Keyspace, readonly index: number) {
    this.rootRef = (DB_ROOTS_OFFSET + index * DB_ROOT_BYTES) / 8;
    this.dict = new PoolDict(ks.mem, ks.pool.allocator, this.rootRef);
  }

  private get mem(): PoolMemory {
    return this.ks.mem;
  }

  size(): number {
    return this.dict.size();
  }

  expiresCount(): number {
    return this.mem.u32(this.rootRef, R_EXPIRES);
  }
  private addExpires(delta: number): void {
    this.mem.setU32(this.rootRef, R_EXPIRES, this.mem.u32(this.rootRef, R_EXPIRES) + delta);
  }

  avgTtl(): number {
    return this.mem.f64(this.rootRef, D_AVG_TTL);
  }
  setAvgTtl(ms: number): void {
    this.mem.setF64(this.rootRef, D_AVG_TTL, ms);
  }

  // ---- lookup -------------------------------------------------------------------
  /** The live entry for key, or 0. An expired entry is deleted on the way (lazy expiry). */
  lookup(key: Buffer, mode: Lookup = Lookup.Read): number {
    const ks = this.ks;
    const e = this.dict.find(ks.hashKey(key), key, KEY_OFFSET);
    if (e !== 0) {
      const expireAt = this.mem.f64(e, F_EXPIRE);
      if (expireAt !== 0 && expireAt <= Date.now()) {
        this.remove(e);
        ks.stats.expiredKeys++;
        if (mode === Lookup.Read) ks.stats.keyspaceMisses++;
        return 0;
      }
      if (mode !== Lookup.NoTouch) ks.touch(e);
      if (mode === Lookup.Read) ks.stats.keyspaceHits++;
      return e;
    }
    if (mode === Lookup.Read) ks.stats.keyspaceMisses++;
    return 0;
  }

  exists(key: Buffer): boolean {
    return this.lookup(key, Lookup.NoTouch) !== 0;
  }

  // ---- entry fields ---------------------------------------------------------------
  typeOf(e: number): ValueType {
    return (this.mem.u32(e, W_META) & 0xff) as ValueType;
  }
  typeName(e: number): string {
    return TYPE_NAMES[this.typeOf(e)] ?? 'none';
  }
  keyLength(e: number): number {
    return this.mem.u32(e, W_KEY_LEN);
  }
  /** A copy of the entry's key. */
  keyOf(e: number): Buffer {
    const len = this.mem.u32(e, W_KEY_LEN);
    const out = Buffer.allocUnsafe(len);
    this.mem.copyOut(e, KEY_OFFSET, len, out, 0);
    return out;
  }
  copyKey(e: number, target: Buffer, targetOff: number): void {
    this.mem.copyOut(e, KEY_OFFSET, this.mem.u32(e, W_KEY_LEN), target, targetOff);
  }

  /** Expire time in ms since the epoch, 0 when the key has none. */
  expireAt(e: number): number {
    return this.mem.f64(e, F_EXPIRE);
  }

  /** Set (ms > 0) or clear (0) a key's expire time. */
  setExpireAt(e: number, ms: number): void {
    const had = this.mem.f64(e, F_EXPIRE) !== 0;
    this.mem.setF64(e, F_EXPIRE, ms);
    if (had !== (ms !== 0)) this.addExpires(ms !== 0 ? 1 : -1);
  }

  /** PERSIST: true when a TTL was removed. */
  persist(e: number): boolean {
    if (this.mem.f64(e, F_EXPIRE) === 0) return false;
    this.setExpireAt(e, 0);
    return true;
  }

  // ---- delete -------------------------------------------------------------------
  /** Unlink and free an entry found by lookup. */
  remove(e: number): void {
    if (!this.dict.remove(e)) throw new Error('remove: entry is not in this database');
    if (this.mem.f64(e, F_EXPIRE) !== 0) this.addExpires(-1);
    this.ks.strings.release(e);
  }

  /** DEL semantics: true when a live key was deleted. */
  deleteKey(key: Buffer): boolean {
    const e = this.lookup(key, Lookup.NoTouch);
    if (e === 0) return false;
    this.remove(e);
    return true;
  }

  /** Remove every key (FLUSHDB). */
  flush(): number {
    const n = this.size();
    this.dict.clear((e) => this.ks.strings.release(e));
    this.mem.setU32(this.rootRef, R_EXPIRES, 0);
    this.setAvgTtl(0);
    return n;
  }

  // ---- strings ---------------------------------------------------------------------
  stringLength(e: number): number {
    return this.mem.u32(e, W_VALUE_LEN);
  }

  /** Copy string bytes [start, end) into target at targetOff. */
  copyString(e: number, start: number, end: number, target: Buffer, targetOff: number): void {
    this.ks.strings.copyOut(e, start, end, target, targetOff);
  }

  /** A copy of (part of) a string value. */
  readString(e: number, start = 0, end = this.stringLength(e)): Buffer {
    const out = Buffer.allocUnsafe(Math.max(0, end - start));
    this.ks.strings.copyOut(e, start, end, out, 0);
    return out;
  }

  /**
   * SET: store value under key, replacing whatever was there (any type).
   * expireAt: ms since the epoch, 0 for none, or KEEP_TTL to keep the old TTL.
   * Returns the entry. Throws PoolFullError leaving the old value intact.
   */
  setString(key: Buffer, value: Buffer, expireAt: number): number {
    const ks = this.ks;
    const strings = ks.strings;
    const hash = ks.hashKey(key);
    const old = this.dict.find(hash, key, KEY_OFFSET);
    const oldExpire = old !== 0 ? this.mem.f64(old, F_EXPIRE) : 0;
    const newExpire = expireAt === KEEP_TTL ? oldExpire : expireAt;
    // Overwrite in place when the old entry is an inline string with room: no alloc, no relink.
    if (old !== 0 && (this.mem.u32(old, W_META) & 0xff) === ValueType.String && !strings.isLarge(old) &&
        value.length <= strings.inlineCapacity(old)) {
      const mem = this.mem;
      mem.setU32(old, W_VALUE_LEN, value.length);
      mem.setU32(old, W_META, ValueType.String);
      strings.write(old, 0, value, 0, value.length);
      this.setExpireAt(old, newExpire);
      ks.touch(old);
      return old;
    }
    const e = strings.create(key, hash, ValueType.String, value.length, ks.freshAccessClock());
    strings.write(e, 0, value, 0, value.length);
    if (old !== 0) {
      this.dict.replace(old, e);
      if (oldExpire !== 0) this.addExpires(-1);
      strings.release(old);
    } else {
      this.linkNew(e);
    }
    if (newExpire !== 0) this.setExpireAt(e, newExpire);
    return e;
  }

  /** Link a freshly created entry; if the table cannot be made, free the entry so nothing leaks. */
  private linkNew(e: number): void {
    try {
      this.dict.add(e);
    } catch (err) {
      this.ks.strings.release(e);
      throw err;
    }
  }

  /** The value is a plain string whatever it looks like (INCRBYFLOAT results): never "int". */
  markNotInteger(e: number): void {
    this.mem.setU32(e, W_META, this.mem.u32(e, W_META) | (FLAG_NOT_INT << 8));
  }

  /**
   * Resize a string value to newLength (zero-filling growth) and mark it raw,
   * relinking if it had to move. Returns the entry now holding it.
   */
  resizeString(e: number, newLength: number): number {
    const moved = this.ks.strings.resize(e, newLength, true);
    if (moved !== e) {
      this.dict.replace(e, moved);
      this.ks.strings.release(e);
    }
    this.mem.setU32(moved, W_META, this.mem.u32(moved, W_META) | (FLAG_RAW << 8));
    return moved;
  }

  /** Overwrite string bytes at offset (within its length). */
  writeString(e: number, offset: number, data: Buffer): void {
    this.ks.strings.write(e, offset, data, 0, data.length);
  }

  /**
   * Replace a string's whole value keeping its TTL (INCR and friends); the
   * encoding becomes whatever Redis would pick for the new value. Returns the entry.
   */
  replaceString(e: number, value: Buffer): number {
    const ks = this.ks;
    const strings = ks.strings;
    const mem = this.mem;
    if (!strings.isLarge(e) && value.length <= strings.inlineCapacity(e)) {
      mem.setU32(e, W_VALUE_LEN, value.length);
      mem.setU32(e, W_META, ValueType.String);
      strings.write(e, 0, value, 0, value.length);
      return e;
    }
    const key = this.keyOf(e);
    const fresh = strings.create(key, mem.u32(e, E_HASH), ValueType.String, value.length, mem.u32(e, W_LRU));
    strings.write(fresh, 0, value, 0, value.length);
    mem.setF64(fresh, F_EXPIRE, mem.f64(e, F_EXPIRE));
    this.dict.replace(e, fresh);
    strings.release(e);
    return fresh;
  }

  /** OBJECT ENCODING for a string, by Redis's rules (int, embstr up to 44 bytes, raw). */
  stringEncoding(e: number): 'int' | 'embstr' | 'raw' {
    const flags = this.mem.u32(e, W_META) >>> 8;
    if ((flags & FLAG_RAW) !== 0) return 'raw'; // APPEND/SETRANGE results stay raw, as in Redis
    const len = this.stringLength(e);
    if ((flags & FLAG_NOT_INT) === 0 && len <= 20 && len > 0 && isCanonicalInt64(this.readString(e).toString('latin1'))) return 'int';
    return len <= 44 ? 'embstr' : 'raw';
  }

  /** Bytes the key and value take in the pool. */
  footprint(e: number): number {
    return this.ks.strings.footprint(e);
  }

  // ---- moving keys between names and databases -------------------------------------
  /**
   * Store a copy of entry e (from any database) under `key` in this database,
   * replacing what is there. Copies value and TTL. RENAME and MOVE keep the
   * access word (Redis moves the same object); COPY makes a new object, so
   * `freshAccess` starts its LRU/LFU over. Returns the new entry.
   */
  storeCopy(source: Database, e: number, key: Buffer, keepTtl = true, freshAccess = false): number {
    const ks = this.ks;
    const len = source.stringLength(e);
    const hash = ks.hashKey(key);
    const access = freshAccess ? ks.freshAccessClock() : this.mem.u32(e, W_LRU);
    const copy = ks.strings.create(key, hash, source.typeOf(e), len, access);
    ks.strings.copyBetween(e, copy, len);
    const flags = this.mem.u32(e, W_META) & ((FLAG_RAW | FLAG_NOT_INT) << 8); // the encoding travels with the value
    this.mem.setU32(copy, W_META, this.mem.u32(copy, W_META) | flags);
    const old = this.dict.find(hash, key, KEY_OFFSET);
    if (old !== 0) {
      this.dict.replace(old, copy);
      if (this.mem.f64(old, F_EXPIRE) !== 0) this.addExpires(-1);
      ks.strings.release(old);
    } else {
      this.linkNew(copy);
    }
    const expire = keepTtl ? source.expireAt(e) : 0;
    if (expire !== 0) this.setExpireAt(copy, expire);
    return copy;
  }

  // ---- iteration -----------------------------------------------------------------
  /** One SCAN step; expired entries are skipped (and reclaimed). */
  scan(cursor: number, visit: (e: number) => void): number {
    const now = Date.now();
    const expired: number[] = [];
    const next = this.dict.scan(cursor, (e) => {
      const at = this.mem.f64(e, F_EXPIRE);
      if (at !== 0 && at <= now) expired.push(e);
      else visit(e);
    });
    for (const e of expired) this.expireEntry(e);
    return next;
  }

  /** Every live entry (KEYS). Expired ones met on the way are reclaimed. */
  forEachLive(visit: (e: number) => void): void {
    const now = Date.now();
    const expired: number[] = [];
    this.dict.forEach((e) => {
      const at = this.mem.f64(e, F_EXPIRE);
      if (at !== 0 && at <= now) expired.push(e);
      else visit(e);
    });
    for (const e of expired) this.expireEntry(e);
  }

  /** RANDOMKEY: a random live entry or 0. Gives up on expired picks after 100 tries, as Redis. */
  randomEntry(): number {
    for (let tries = 0; tries < 100 && this.size() > 0; tries++) {
      const e = this.dict.randomEntry();
      const at = this.mem.f64(e, F_EXPIRE);
      if (at === 0 || at > Date.now()) return e;
      if (tries === 99 && this.size() === this.expiresCount()) return e; // all volatile: Redis returns it
      this.expireEntry(e);
    }
    return 0;
  }

  /** Delete an entry because its TTL passed (counted in expired_keys). */
  expireEntry(e: number): void {
    this.remove(e);
    this.ks.stats.expiredKeys++;
  }

  // ---- access clock (OBJECT IDLETIME / FREQ) ---------------------------------------
  idleSeconds(e: number): number {
    const lru = this.mem.u32(e, W_LRU);
    const clock = this.ks.lruClock();
    return clock >= lru ? clock - lru : clock + (LRU_CLOCK_MAX - lru);
  }

  lfuFrequency(e: number): number {
    return this.ks.lfuDecay(this.mem.u32(e, W_LRU));
  }
}

/** setString's expireAt value meaning "keep the existing TTL" (SET KEEPTTL). */
export const KEEP_TTL = -1;

export class Keyspace {
  readonly mem: PoolMemory;
  readonly strings: StringStorage;
  readonly dbs: Database[];
  readonly stats: KeyspaceStats = { expiredKeys: 0, evictedKeys: 0, keyspaceHits: 0, keyspaceMisses: 0, expiredStalePerc: 0 };
  /** True under an LFU maxmemory-policy: the access word holds LFU data. */
  lfu = false;
  lfuLogFactor = 10;
  lfuDecayTime = 1;
  private readonly seed0: number;
  private readonly seed1: number;
  private cachedLruClock = Math.floor(Date.now() / 1000) & LRU_CLOCK_MAX;

  constructor(readonly pool: Pool) {
    this.mem = pool.mem;
    this.strings = new StringStorage(pool.mem, pool.allocator);
    const seed = pool.hashSeed();
    this.seed0 = seed[0];
    this.seed1 = seed[1];
    this.dbs = [];
    for (let i = 0; i < pool.dbCount; i++) this.dbs.push(new Database(this, i));
  }

  get dbCount(): number {
    return this.dbs.length;
  }

  db(index: number): Database {
    return this.dbs[index]!;
  }

  hashKey(key: Buffer): number {
    return halfSipHash13(key, this.seed0, this.seed1);
  }

  totalKeys(): number {
    let n = 0;
    for (const db of this.dbs) n += db.size();
    return n;
  }

  /** FLUSHALL: every page goes back to the allocator at once; no per-key work. */
  flushAll(): void {
    this.pool.allocator.reset();
    this.pool.releaseDataPages();
    for (const db of this.dbs) {
      this.mem.fill((DB_ROOTS_OFFSET + db.index * DB_ROOT_BYTES) / 8, 0, DB_ROOT_BYTES, 0);
    }
  }

  /** SWAPDB: exchange the two databases' roots (O(1)). */
  swapDb(a: number, b: number): void {
    if (a === b) return;
    const ra = (DB_ROOTS_OFFSET + a * DB_ROOT_BYTES) / 8;
    const rb = (DB_ROOTS_OFFSET + b * DB_ROOT_BYTES) / 8;
    for (let w = 0; w < DB_ROOT_BYTES / 4; w++) {
      const x = this.mem.u32(ra, w);
      this.mem.setU32(ra, w, this.mem.u32(rb, w));
      this.mem.setU32(rb, w, x);
    }
  }

  // ---- access clock ----------------------------------------------------------------
  /** Redis's LRU clock: seconds, 24 bits. Cached like server.lruclock; refreshClock() updates it. */
  lruClock(): number {
    return this.cachedLruClock;
  }

  /** Called by the server cron (every tick), as serverCron refreshes server.lruclock. */
  refreshClock(now = Date.now()): void {
    this.cachedLruClock = Math.floor(now / 1000) & LRU_CLOCK_MAX;
  }

  /** Access word for a new entry. */
  freshAccessClock(): number {
    return this.lfu ? ((minutesClock() << 8) | LFU_INIT_VAL) >>> 0 : this.lruClock();
  }

  /** Record an access (only writes when the value changes, to keep reads write-free). */
  touch(e: number): void {
    const old = this.mem.u32(e, W_LRU);
    let next: number;
    if (this.lfu) {
      const counter = logIncr(this.lfuDecay(old), this.lfuLogFactor);
      next = ((minutesClock() << 8) | counter) >>> 0;
    } else {
      next = this.lruClock();
    }
    if (next !== old) this.mem.setU32(e, W_LRU, next);
  }

  /** LFUDecrAndReturn: the counter decayed by the minutes since the last access. */
  lfuDecay(word: number): number {
    const lastMinutes = word >>> 8;
    const counter = word & 0xff;
    const now = minutesClock();
    const elapsed = now >= lastMinutes ? now - lastMinutes : 65535 - lastMinutes + now;
    const periods = this.lfuDecayTime > 0 ? Math.floor(elapsed / this.lfuDecayTime) : 0;
    return periods > counter ? 0 : counter - periods;
  }

  // ---- background work (server cron) ------------------------------------------------
  /**
   * Rehash a little in every database that is rehashing; shrink sparse tables.
   * Not while a snapshot runs (as Redis skips it while a child exists): a
   * rehash rewrites entries all over the pool, and every page it touches
   * before the cut has shipped it costs a pre-image copy. Lookups and inserts
   * still rehash a step each, so a rehash finishes anyway.
   */
  rehashCron(msPerDb: number): void {
    if (!PoolDict.canResize) return;
    for (const db of this.dbs) {
      db.dict.shrinkIfNeeded();
      if (db.dict.isRehashing()) db.dict.rehashMilliseconds(msPerDb);
    }
  }
}

function minutesClock(): number {
  return Math.floor(Date.now() / 60000) & 65535;
}

/** LFULogIncr: a logarithmic counter saturating at 255. */
function logIncr(counter: number, logFactor: number): number {
  if (counter === 255) return 255;
  const base = Math.max(0, counter - LFU_INIT_VAL);
  const p = 1 / (base * logFactor + 1);
  return Math.random() < p ? counter + 1 : counter;
}

/** string2ll's test: the exact decimal form of a signed 64-bit integer (no "+", no leading zeros, no "-0"). */
export function isCanonicalInt64(text: string): boolean {
  if (!/^(0|-?[1-9][0-9]{0,18})$/.test(text)) return false;
  if (text.length < 19) return true;
  const n = BigInt(text);
  return n >= -9223372036854775808n && n <= 9223372036854775807n;
}
