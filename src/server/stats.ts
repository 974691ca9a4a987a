// Server-wide counters behind INFO stats (field names in comments). Plain
// number fields, so the hot path just increments them.
//
// The keyspace counters (expired_keys, evicted_keys, keyspace_hits,
// keyspace_misses) are incremented by the store; they live in whatever object
// the store counts into, and these accessors read and write through to it, so
// both `stats.keyspaceHits++` and the store's own counting hit one number.

/** The store's counters (structurally the same as the keyspace's KeyspaceStats). */
export interface KeyspaceCounters {
  expiredKeys: number;
  evictedKeys: number;
  keyspaceHits: number;
  keyspaceMisses: number;
}

/** Redis's STATS_METRIC_SAMPLES: instantaneous metrics average this many samples. */
export const METRIC_SAMPLES = 16;
/** How often the server samples them (Redis samples in serverCron every 100 ms). */
export const METRIC_SAMPLE_INTERVAL_MS = 100;
/** Redis stops adding errorstats entries past this many distinct error codes. */
export const ERROR_STATS_LIMIT = 128;

/** One trackInstantaneousMetric() series: per-second rates over the last 16 samples. */
export class InstantaneousMetric {
  private readonly samples = new Float64Array(METRIC_SAMPLES);
  private index = 0;
  private lastSampleTime = Date.now();
  private lastSampleCount = 0;

  /** Record the counter's current reading (called every METRIC_SAMPLE_INTERVAL_MS). */
  track(currentReading: number, now: number): void {
    const elapsed = now - this.lastSampleTime;
    const delta = currentReading - this.lastSampleCount;
    this.samples[this.index] = elapsed > 0 ? Math.floor((delta * 1000) / elapsed) : 0;
    this.index = (this.index + 1) % METRIC_SAMPLES;
    this.lastSampleTime = now;
    this.lastSampleCount = currentReading;
  }

  /** Average of the samples, per second (integer division as in Redis). */
  value(): number {
    let sum = 0;
    for (let i = 0; i < METRIC_SAMPLES; i++) sum += this.samples[i]!;
    return Math.floor(sum / METRIC_SAMPLES);
  }

  reset(currentReading: number, now: number): void {
    this.samples.fill(0);
    this.index = 0;
    this.lastSampleTime = now;
    this.lastSampleCount = currentReading;
  }
}

export class ServerStats {
  /** total_connections_received */
  totalConnectionsReceived = 0;
  /** total_commands_processed */
  totalCommandsProcessed = 0;
  /** Successful write commands since the last save (rdb_changes_since_last_save; reset by the snapshot service). */
  dirty = 0;
  /** Set by a write command that already accounted its change (FLUSHALL that saved): the dispatcher skips its +1 once. */
  dirtyAccounted = false;
  /** total_net_input_bytes */
  totalNetInputBytes = 0;
  /** total_net_output_bytes */
  totalNetOutputBytes = 0;
  /** rejected_connections (maxclients reached) */
  rejectedConnections = 0;
  /** total_error_replies: every error reply, rejected commands and protocol errors included */
  totalErrorReplies = 0;
  /** unexpected_error_replies: here, replies to handler crashes ("ERR internal error") */
  unexpectedErrorReplies = 0;
  /** total_reads_processed: socket reads handled */
  totalReadsProcessed = 0;
  /** total_writes_processed: socket writes issued */
  totalWritesProcessed = 0;
  /** INFO errorstats: error code (first word, "ERR", "WRONGTYPE"...) → count. */
  readonly errorCounts = new Map<string, number>();
  /** Set when ERROR_STATS_LIMIT distinct codes were seen; new codes are no longer tracked. */
  errorStatsDisabled = false;

  readonly opsPerSec = new InstantaneousMetric();
  readonly netInputPerSec = new InstantaneousMetric();
  readonly netOutputPerSec = new InstantaneousMetric();

  private keyspace: KeyspaceCounters;

  constructor(keyspaceCounters?: KeyspaceCounters) {
    this.keyspace = keyspaceCounters ?? { expiredKeys: 0, evictedKeys: 0, keyspaceHits: 0, keyspaceMisses: 0 };
  }

  /** Point the keyspace counters at the store's own counter object. */
  attachKeyspace(counters: KeyspaceCounters): void {
    this.keyspace = counters;
  }

  /** expired_keys */
  get expiredKeys(): number {
    return this.keyspace.expiredKeys;
  }
  set expiredKeys(n: number) {
    this.keyspace.expiredKeys = n;
  }
  /** evicted_keys */
  get evictedKeys(): number {
    return this.keyspace.evictedKeys;
  }
  set evictedKeys(n: number) {
    this.keyspace.evictedKeys = n;
  }
  /** keyspace_hits */
  get keyspaceHits(): number {
    return this.keyspace.keyspaceHits;
  }
  set keyspaceHits(n: number) {
    this.keyspace.keyspaceHits = n;
  }
  /** keyspace_misses */
  get keyspaceMisses(): number {
    return this.keyspace.keyspaceMisses;
  }
  set keyspaceMisses(n: number) {
    this.keyspace.keyspaceMisses = n;
  }

  /** instantaneous_ops_per_sec */
  get instantaneousOpsPerSec(): number {
    return this.opsPerSec.value();
  }
  /** instantaneous_input_kbps (INFO prints it with %.2f) */
  get instantaneousInputKbps(): number {
    return this.netInputPerSec.value() / 1024;
  }
  /** instantaneous_output_kbps */
  get instantaneousOutputKbps(): number {
    return this.netOutputPerSec.value() / 1024;
  }

  /** Take one sample of each instantaneous metric (server cron, every 100 ms). */
  sample(now = Date.now()): void {
    this.opsPerSec.track(this.totalCommandsProcessed, now);
    this.netInputPerSec.track(this.totalNetInputBytes, now);
    this.netOutputPerSec.track(this.totalNetOutputBytes, now);
  }

  /** Count one error reply under its code (the text up to the first space). */
  countError(code: string): void {
    this.totalErrorReplies++;
    const seen = this.errorCounts.get(code);
    if (seen !== undefined) {
      this.errorCounts.set(code, seen + 1);
    } else if (!this.errorStatsDisabled) {
      if (this.errorCounts.size >= ERROR_STATS_LIMIT) {
        this.errorStatsDisabled = true;
      } else {
        this.errorCounts.set(code, 1);
      }
    }
  }

  /** CONFIG RESETSTAT. */
  reset(now = Date.now()): void {
    this.totalConnectionsReceived = 0;
    this.totalCommandsProcessed = 0;
    this.totalNetInputBytes = 0;
    this.totalNetOutputBytes = 0;
    this.rejectedConnections = 0;
    this.totalErrorReplies = 0;
    this.unexpectedErrorReplies = 0;
    this.totalReadsProcessed = 0;
    this.totalWritesProcessed = 0;
    this.errorCounts.clear();
    this.errorStatsDisabled = false;
    this.expiredKeys = 0;
    this.evictedKeys = 0;
    this.keyspaceHits = 0;
    this.keyspaceMisses = 0;
    this.opsPerSec.reset(0, now);
    this.netInputPerSec.reset(0, now);
    this.netOutputPerSec.reset(0, now);
  }
}
