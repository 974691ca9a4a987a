// Active expiry: Redis's slow activeExpireCycle() adapted to a keyspace that
// keeps no separate `expires` dict. Keys with a TTL live in the main table, so
// the cycle walks each database's buckets with a per-database SCAN cursor
// (db.scan reclaims every expired entry it meets) instead of sampling an
// expires table.
//
// Per call, for each database that has keys with a TTL (round robin, resuming
// where the previous call ran out of time):
//   - it runs Redis's inner loop: sample up to 20 keys with a TTL (looking at
//     no more than 20 buckets per wanted sample), count how many were expired,
//     fold the TTLs of the live ones into the database's avg_ttl estimate
//     (2% weight, as Redis), and repeat while more than 10% of the sample was
//     stale (ACTIVE_EXPIRE_CYCLE_ACCEPTABLE_STALE);
//   - it also walks a pace-keeping number of buckets, so one full pass over a
//     table takes about PASS_MS whatever the share of expired keys, as far as
//     a fifth of the budget allows (about 1 us per bucket: 2 s passes up to a
//     few hundred thousand keys, proportionally longer beyond). Redis can leave
//     a thin sprinkle of expired keys around for a long time; here a key
//     nobody reads is reclaimed within seconds of its TTL.
// All of it stops when the call's time budget is spent (checked every few dozen
// buckets); the next call then starts with the database after the one cut short.
// keyspace.stats.expiredStalePerc is Redis's stat_expired_stale_perc (5% weight).
import type { Database, Keyspace } from './keyspace';

/** ACTIVE_EXPIRE_CYCLE_KEYS_PER_LOOP (active-expire-effort 1). */
const KEYS_PER_LOOP = 20;
/** Redis scans up to 20 buckets per wanted sample before giving up on a sparse table. */
const BUCKETS_PER_SAMPLE = 20;
/** ACTIVE_EXPIRE_CYCLE_ACCEPTABLE_STALE: repeat on a database while more than this % of a sample had expired. */
const ACCEPTABLE_STALE_PERC = 10;
/** Target time for one full pass over a database's table... */
const PASS_MS = 2000;
/**
 * ...as far as this share of the budget allows. Walking costs about a
 * microsecond per bucket, so pacing alone is kept to a few % of CPU; only a
 * high share of stale samples earns the whole budget (as in Redis).
 */
const PACE_BUDGET_SHARE = 0.2;
/** Look at the clock every this many bucket steps. */
const CLOCK_CHECK_STEPS = 32;
/** Longest gap between calls that counts towards the pace (a stalled loop does not owe a whole pass). */
const MAX_PACE_GAP_MS = 1000;

export class ActiveExpireCycle {
  /** Per-database SCAN cursors. */
  private readonly cursors: number[];
  /** The database the next call starts with. */
  private nextDb = 0;
  private lastRunAt = 0;

  // State of the inner loop, read by the visitor (kept in fields so a walk allocates no closure).
  private db: Database | null = null;
  private now = 0;
  private sampledLive = 0;
  private ttlSum = 0;
  private ttlSamples = 0;

  /** Lifetime counters (tests, INFO-style introspection). */
  readonly counters = { runs: 0, bucketsWalked: 0, timeCapReached: 0 };

  constructor(private readonly keyspace: Keyspace) {
    this.cursors = new Array<number>(keyspace.dbCount).fill(0);
  }

  private readonly visit = (e: number): void => {
    const at = this.db!.expireAt(e);
    if (at === 0) return; // only keys with a TTL are samples
    this.sampledLive++;
    const ttl = at - this.now;
    if (ttl > 0) {
      this.ttlSum += ttl;
      this.ttlSamples++;
    }
  };

  /** One cycle of at most about `budgetMs` milliseconds. */
  run(budgetMs: number): void {
    const ks = this.keyspace;
    const start = performance.now();
    const deadline = start + Math.max(budgetMs, 0.001);
    const paceDeadline = start + Math.max(budgetMs, 0.001) * PACE_BUDGET_SHARE;
    const gap = this.lastRunAt === 0 ? 100 : Math.min(Math.max(start - this.lastRunAt, 0), MAX_PACE_GAP_MS);
    this.lastRunAt = start;
    this.counters.runs++;

    const dbCount = ks.dbCount;
    let totalSampled = 0;
    let totalExpired = 0;
    let timeUp = false;
    let visited = 0;

    for (; visited < dbCount && !timeUp; visited++) {
      const index = (this.nextDb + visited) % dbCount;
      const db = ks.db(index);
      if (db.expiresCount() === 0) {
        if (db.avgTtl() !== 0) db.setAvgTtl(0); // (a pool write only when it changes)
        continue;
      }
      this.db = db;
      const quota = Math.ceil((db.dict.buckets() * gap) / PASS_MS);
      let walked = 0;
      let cursor = this.cursors[index]!;
      let repeat: boolean;
      do {
        const wanted = Math.min(db.expiresCount(), KEYS_PER_LOOP);
        if (wanted === 0) break;
        const maxBuckets = wanted * BUCKETS_PER_SAMPLE;
        const expiredBefore = ks.stats.expiredKeys;
        this.now = Date.now();
        this.sampledLive = 0;
        this.ttlSum = 0;
        this.ttlSamples = 0;
        let checked = 0;
        while (checked < maxBuckets && this.sampledLive + (ks.stats.expiredKeys - expiredBefore) < wanted) {
          cursor = db.scan(cursor, this.visit);
          checked++;
          if (checked % CLOCK_CHECK_STEPS === 0 && performance.now() > deadline) {
            timeUp = true;
            break;
          }
          if (db.size() === 0) break;
        }
        walked += checked;
        const expired = ks.stats.expiredKeys - expiredBefore;
        const sampled = this.sampledLive + expired;
        totalExpired += expired;
        totalSampled += sampled;

        if (this.ttlSamples > 0) {
          // Running average: the previous estimate weighs 98%, this sample 2% (integer maths as in C).
          const avg = Math.trunc(this.ttlSum / this.ttlSamples);
          let estimate = db.avgTtl();
          if (estimate === 0) estimate = avg;
          db.setAvgTtl(Math.trunc(estimate / 50) * 49 + Math.trunc(avg / 50));
        }
        const clock = performance.now();
        if (!timeUp && clock > deadline) timeUp = true;
        const stale = sampled > 0 && Math.trunc((expired * 100) / sampled) > ACCEPTABLE_STALE_PERC;
        repeat = !timeUp && db.expiresCount() > 0 && (stale || (walked < quota && clock < paceDeadline));
      } while (repeat);
      this.cursors[index] = cursor;
      this.counters.bucketsWalked += walked;
      if (db.expiresCount() === 0 && db.avgTtl() !== 0) db.setAvgTtl(0);
    }
    this.db = null;
    if (timeUp) this.counters.timeCapReached++;
    // As Redis's current_db: the next call starts after the last database looked at, so a
    // database that keeps eating the budget cannot starve the others (its cursor keeps its place).
    this.nextDb = (this.nextDb + visited) % dbCount;
    const currentPerc = totalSampled > 0 ? totalExpired / totalSampled : 0;
    ks.stats.expiredStalePerc = currentPerc * 0.05 + ks.stats.expiredStalePerc * 0.95;
  }
}
