// The server's snapshot service: SAVE / BGSAVE through the consistent cut to
// the sink `snapshot-transport` names (the file `dir/dbfilename`, or a
// poolkv-receiver over tcp / rdma: src/transport/peer-sink.ts), the
// `save <seconds> <changes>` rules (checked like Redis's serverCron), the
// dirty counter, and the INFO persistence fields (Redis's, then poolkv's
// snapshot_* fields: transport, peer, bytes shipped, throughput, status).
//
// SAVE to a peer blocks the whole server until the receiver has committed,
// as Redis's SAVE does (SyncPeerSink runs the network in a worker thread).
// BGSAVE to a peer runs in the background; a peer that is down, refuses the
// token or drops mid-transfer fails it (rdb_last_bgsave_status:err, reason
// in the log) and the server keeps serving.
//
// Dirty counter: the dispatcher adds 1 to ServerStats.dirty for every command
// flagged `write` that did not answer an error. That is coarser than Redis's
// server.dirty (which counts keys changed: DEL of 3 keys = 3, a no-op = 0).
import * as fs from 'fs';
import { bytesToHuman } from '../server/info';
import type { LoadingState } from '../server/loading';
import type { ServerContext } from '../server/server-context';
import { FileSink } from '../transport/file';
import { parseHostPort } from '../transport/link';
import { pageIo } from '../transport/native';
import { PeerSink, type PeerOptions, SyncPeerSink } from '../transport/peer-sink';
import type { SnapshotSink } from '../transport/sink';
import { ConsistentCut, CutAbortedError, type CutProgress } from './cut';

/** Redis's CONFIG_BGSAVE_RETRY_DELAY: after a failed BGSAVE, rules wait this long (s). */
const BGSAVE_RETRY_DELAY = 5;
const CRON_MS = 100;

export type BgsaveResult = 'started' | 'scheduled' | 'in-progress';

interface RunningSave {
  cut: ConsistentCut;
  sink: SnapshotSink;
  dirtyAtStart: number;
  done: Promise<void>;
  /** Killed by FLUSHALL: the outcome does not count as a failed save. */
  killedOnPurpose?: boolean;
}

type Transport = 'file' | 'tcp' | 'rdma';

/** Where the image went, for log lines: the file's path or the peer. */
function targetOf(sink: SnapshotSink): string {
  return sink instanceof FileSink ? sink.finalPath : sink.description;
}

/** Bytes a sink has shipped (file: written). */
function bytesOf(sink: SnapshotSink): number {
  if (sink instanceof FileSink) return sink.written;
  if (sink instanceof PeerSink || sink instanceof SyncPeerSink) return sink.bytesShipped;
  return 0;
}

const services = new WeakMap<ServerContext, SnapshotService>();
let latest: SnapshotService | null = null;

export class SnapshotService {
  /** rdb_changes_since_last_save. */
  /** Writes since the last successful save (server.dirty): counted by the dispatcher in ServerStats. */
  get dirty(): number {
    return this.server.stats.dirty;
  }
  set dirty(value: number) {
    this.server.stats.dirty = value;
  }
  /** Seconds since the epoch of the last successful save (start-up until then, as in Redis). */
  lastSave: number;
  lastBgsaveOk = true;
  lastBgsaveTry = 0;
  lastBgsaveTimeSec = -1;
  /** rdb_saves: saves started (SAVE and BGSAVE). */
  saves = 0;
  /** rdb_last_cow_size: the most pre-image bytes held during the last save. */
  lastPreimagePeak = 0;
  lastImageBytes = 0;
  /** rdb_last_load_keys_loaded. */
  keysLoaded = 0;
  scheduled = false;
  /** snapshot_last_*: the last save's outcome, bytes shipped and throughput (any transport). */
  lastShipOk = true;
  lastBytesShipped = 0;
  lastThroughputMbps = 0;
  /** Set by start-up while an image loads (INFO loading:1 and loading_*; no save rules meanwhile). */
  loading: LoadingState | null = null;
  private running: RunningSave | null = null;
  private timer: NodeJS.Timeout | null = null;

  private constructor(readonly server: ServerContext) {
    this.lastSave = Math.floor(server.startedAt / 1000);
    const withHooks = server as ServerContext & { addShutdownHook?: (hook: () => void) => void };
    withHooks.addShutdownHook?.(() => this.stop());
  }

  /** The service of `server`, created (with its scheduler running) on first use. */
  static of(server: ServerContext): SnapshotService {
    let service = services.get(server);
    if (service === undefined) {
      service = new SnapshotService(server);
      services.set(server, service);
      service.startScheduler();
    }
    latest = service;
    return service;
  }

  static latest(): SnapshotService | null {
    return latest;
  }

  // ---- state ------------------------------------------------------------------------
  get inProgress(): boolean {
    return this.running !== null;
  }

  get currentCut(): ConsistentCut | null {
    return this.running?.cut ?? null;
  }

  /** Resolves when the BGSAVE in progress (if any) has finished, successfully or not. */
  whenIdle(): Promise<void> {
    return this.running ? this.running.done.catch(() => {}) : Promise.resolve();
  }

  saveRules(): Array<[number, number]> {
    const list = this.server.config.getList('save');
    const rules: Array<[number, number]> = [];
    for (let i = 0; i + 1 < list.length; i += 2) rules.push([Number(list[i]), Number(list[i + 1])]);
    return rules;
  }

  get transport(): Transport {
    return this.server.config.getString('snapshot-transport') as Transport;
  }

  /** The peer's options for a tcp / rdma transport; throws with a clear message when they are incomplete. */
  peerOptions(): PeerOptions {
    const config = this.server.config;
    const transport = this.transport;
    const peer = config.getString('snapshot-peer');
    if (transport === 'file') throw new Error('snapshot-transport is file: there is no peer');
    if (peer === '') throw new Error(`snapshot-transport is ${transport} but snapshot-peer is not set`);
    const { host, port } = parseHostPort(peer, 'snapshot-peer');
    return { kind: transport, host, port, token: config.getString('snapshot-auth-token'), name: config.getString('snapshot-name') };
  }

  private sinkFor(sync: boolean): SnapshotSink {
    if (this.transport === 'file') {
      return new FileSink({ dir: this.server.config.getString('dir'), filename: this.server.config.getString('dbfilename'), sync });
    }
    const options = this.peerOptions();
    return sync ? new SyncPeerSink(options) : new PeerSink(options);
  }

  private get loadingActive(): boolean {
    return this.loading !== null && this.loading.active;
  }

  /** Record the outcome of a save for INFO's snapshot_last_* fields. */
  private recordShipment(sink: SnapshotSink, ok: boolean, startedAt: number): void {
    const bytes = bytesOf(sink);
    const seconds = Math.max(0.001, (Date.now() - startedAt) / 1000);
    this.lastShipOk = ok;
    this.lastBytesShipped = bytes;
    this.lastThroughputMbps = (bytes * 8) / 1e6 / seconds;
  }

  // ---- SAVE -------------------------------------------------------------------------
  /** SAVE: the whole cut, now, blocking. Returns an error text, or null on success. */
  save(): string | null {
    if (this.running !== null) return 'Background save already in progress';
    const startedAt = Date.now();
    let sink: SnapshotSink;
    try {
      sink = this.sinkFor(true);
    } catch (err) {
      this.server.log.warning(`Failed saving the pool image: ${(err as Error).message}`);
      this.lastBgsaveOk = false;
      this.lastShipOk = false;
      return 'ERR';
    }
    const dirtyAtStart = this.dirty;
    this.saves++;
    let cut: ConsistentCut;
    try {
      cut = ConsistentCut.open(this.server.pool, sink);
      cut.runSync();
    } catch (err) {
      this.server.log.warning(`Failed saving the pool image to ${targetOf(sink)}: ${(err as Error).message}`);
      this.lastBgsaveOk = false;
      this.recordShipment(sink, false, startedAt);
      return 'ERR';
    }
    this.dirty -= dirtyAtStart;
    this.lastSave = Math.floor(Date.now() / 1000);
    this.lastBgsaveOk = true;
    this.lastPreimagePeak = cut.preimagePeak;
    this.lastImageBytes = cut.bytesTotal;
    this.recordShipment(sink, true, startedAt);
    if (sink instanceof FileSink) this.server.log.notice('DB saved on disk');
    else this.server.log.notice(`DB saved on ${targetOf(sink)}${this.generationNote(sink)}: ${this.shipmentNote()}`);
    return null;
  }

  // ---- BGSAVE -----------------------------------------------------------------------
  /** BGSAVE [SCHEDULE]. The cut is taken before this returns; the pages ship in the background. */
  bgsave(): BgsaveResult | { error: string } {
    if (this.running !== null) return 'in-progress';
    this.lastBgsaveTry = Math.floor(Date.now() / 1000);
    let cut: ConsistentCut;
    let sink: SnapshotSink;
    try {
      sink = this.sinkFor(false);
      cut = ConsistentCut.open(this.server.pool, sink, { onProgress: (progress) => this.logProgress(progress) });
    } catch (err) {
      this.lastBgsaveOk = false;
      this.server.log.warning(`Can't save in background: ${(err as Error).message}`);
      return { error: 'ERR' };
    }
    this.saves++;
    this.scheduled = false;
    const dirtyAtStart = this.dirty;
    this.server.log.notice(`Background saving started (pool image to ${targetOf(sink)}, ${cut.bytesTotal} bytes)`);
    const rescuedAtStart = pageIo()?.pageIoStats().rescued ?? 0;
    const running: RunningSave = { cut, sink, dirtyAtStart, done: Promise.resolve() };
    running.done = cut.run().then(() => {
      const seconds = Math.round((Date.now() - cut.startedAt) / 1000);
      this.dirty -= dirtyAtStart;
      this.lastSave = Math.floor(Date.now() / 1000);
      this.lastBgsaveOk = true;
      this.lastBgsaveTimeSec = seconds;
      this.lastPreimagePeak = cut.preimagePeak;
      this.lastImageBytes = cut.bytesTotal;
      this.recordShipment(sink, true, cut.startedAt);
      // How the page copies ran: jobs taken by the nice +5 rescuer mean the idle-class worker found no free CPU.
      const pageStats = pageIo()?.pageIoStats();
      const copies = pageStats === undefined ? '' : pageStats.mode === 'idle'
        ? `, ${pageStats.rescued - rescuedAtStart} page jobs rescued from the idle worker` : `, page I/O at ${pageStats.mode}`;
      this.server.log.notice(`Background saving terminated with success (${cut.dataPages} data pages, ` +
        `${cut.preimagesTaken} pre-images, ${(Date.now() - cut.startedAt)} ms${copies}` +
        (sink instanceof FileSink ? `, ${sink.writeMode} writes)` : `; ${targetOf(sink)}${this.generationNote(sink)}, ${this.shipmentNote()})`));
    }, (err: unknown) => {
      // A BGSAVE killed on purpose (FLUSHALL) is not a failure, as Redis's SIGUSR1 kill is not.
      if (!running.killedOnPurpose) this.lastBgsaveOk = false;
      this.lastBgsaveTimeSec = Math.round((Date.now() - cut.startedAt) / 1000);
      this.recordShipment(sink, false, cut.startedAt);
      if (err instanceof CutAbortedError) this.server.log.warning(`Background saving aborted: ${err.message}`);
      else this.server.log.warning(`Background saving error: ${(err as Error).message}`);
      throw err;
    }).finally(() => {
      if (this.running === running) this.running = null;
    });
    running.done.catch(() => {});
    this.running = running;
    return 'started';
  }

  /** A line per second for saves that last longer than one (the cut calls at most once a second). */
  private logProgress(progress: CutProgress): void {
    if (progress.elapsedMs < 1000 || progress.blocksDone >= progress.blockCount) return;
    const percent = (100 * progress.bytesDone / progress.bytesTotal).toFixed(1);
    this.server.log.notice(`Background saving: ${percent}% (${bytesToHuman(progress.bytesDone)} of ${bytesToHuman(progress.bytesTotal)}), ` +
      `${bytesToHuman(progress.preimageBytes)} held as pre-images`);
  }

  /** Stop a BGSAVE in progress (SHUTDOWN): the previous image stays; the temp file is removed / the peer told. */
  killBgsave(reason: string): void {
    const running = this.running;
    if (running === null) return;
    running.cut.abort(reason);
    if (running.sink instanceof FileSink) fs.rmSync(running.sink.tempPath, { force: true });
    else void Promise.resolve(running.sink.abort(reason)).catch(() => {});
  }

  /**
   * FLUSHALL's share (Redis's flushAllDataAndResetRDB), in two steps around
   * the flush: a BGSAVE in progress is killed first (so the flush can hand the
   * data pages back to the OS) without counting as a failure, as Redis's
   * SIGUSR1 kill does not; then, with save rules set, the empty dataset is
   * saved at once, synchronously.
   */
  beforeFlushAll(): void {
    const running = this.running;
    if (running === null) return;
    running.killedOnPurpose = true;
    this.killBgsave('FLUSHALL');
    this.running = null;
  }

  afterFlushAll(): void {
    if (this.saveRules().length === 0 || this.loadingActive) return;
    // As Redis 7.0 shows it: the save leaves no changes pending (the flush included) and is not counted in rdb_saves.
    const saves = this.saves;
    if (this.save() === null) this.server.stats.dirtyAccounted = true;
    this.saves = saves;
  }

  /**
   * Redis's writeCommandsDeniedByDiskError for RDB: with save rules set and
   * stop-writes-on-bgsave-error yes, a failed last save refuses writes (and
   * PING) until a save succeeds.
   */
  get writesDenied(): boolean {
    return !this.lastBgsaveOk && this.server.config.getBool('stop-writes-on-bgsave-error') && this.saveRules().length > 0;
  }

  private generationNote(sink: SnapshotSink): string {
    if (sink instanceof PeerSink && sink.phases !== '') return `, generation ${sink.generation} (${sink.phases})`;
    return sink instanceof PeerSink || sink instanceof SyncPeerSink ? `, generation ${sink.generation}` : '';
  }

  private shipmentNote(): string {
    return `${this.lastBytesShipped} bytes shipped, ${(this.lastThroughputMbps / 8).toFixed(1)} MB/s`;
  }

  /**
   * Redis's prepareForShutdown: kill a BGSAVE in progress; save first when
   * asked (SHUTDOWN SAVE) or when save rules are set (unless NOSAVE).
   * Returns false when the save failed (and the server must not exit).
   */
  prepareForShutdown(forceSave: boolean, nosave: boolean): boolean {
    const log = this.server.log;
    if (this.running !== null) {
      log.warning('There is a background save in progress: aborting it.');
      this.killBgsave('shutdown');
      this.running = null;
    }
    // As Redis: no save while the dataset is still loading.
    if (nosave || this.loadingActive || (!forceSave && this.saveRules().length === 0)) return true;
    log.notice('Saving the final pool image before exiting.');
    if (this.save() !== null) {
      log.warning("Error trying to save the DB, can't exit.");
      return false;
    }
    return true;
  }

  // ---- scheduler --------------------------------------------------------------------
  startScheduler(): void {
    if (this.timer !== null) return;
    this.timer = setInterval(() => this.cron(), CRON_MS);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer !== null) clearInterval(this.timer);
    this.timer = null;
    this.killBgsave('shutdown');
  }

  /** serverCron's share: save rules, then a scheduled BGSAVE. */
  cron(now = Date.now()): void {
    if (this.running !== null || this.loadingActive) return;
    const unixtime = Math.floor(now / 1000);
    const retryOk = unixtime - this.lastBgsaveTry > BGSAVE_RETRY_DELAY || this.lastBgsaveOk;
    for (const [seconds, changes] of this.saveRules()) {
      if (this.dirty >= changes && unixtime - this.lastSave > seconds && retryOk) {
        this.server.log.notice(`${changes} changes in ${seconds} seconds. Saving...`);
        this.bgsave();
        return;
      }
    }
    if (this.scheduled && retryOk) this.bgsave();
  }

  // ---- INFO ---------------------------------------------------------------------------
  infoFields(): Array<[string, string | number]> {
    const cut = this.running?.cut ?? null;
    const now = Date.now();
    const config = this.server.config;
    return [
      ['loading', this.loadingActive ? 1 : 0],
      ['async_loading', 0],
      ['current_cow_peak', cut ? cut.preimagePeak : 0],
      ['current_cow_size', cut ? cut.preimageBytes : 0],
      ['current_cow_size_age', 0],
      ['current_fork_perc', cut ? (100 * cut.bytesDone / cut.bytesTotal).toFixed(2) : '0.00'],
      ['current_save_keys_processed', 0],
      ['current_save_keys_total', 0],
      ['rdb_changes_since_last_save', this.dirty],
      ['rdb_bgsave_in_progress', cut ? 1 : 0],
      ['rdb_last_save_time', this.lastSave],
      ['rdb_last_bgsave_status', this.lastBgsaveOk ? 'ok' : 'err'],
      ['rdb_last_bgsave_time_sec', this.lastBgsaveTimeSec],
      ['rdb_current_bgsave_time_sec', cut ? Math.round((now - cut.startedAt) / 1000) : -1],
      ['rdb_saves', this.saves],
      ['rdb_last_cow_size', this.lastPreimagePeak],
      ['rdb_last_load_keys_expired', 0],
      ['rdb_last_load_keys_loaded', this.keysLoaded],
      ['aof_enabled', 0],
      ['aof_rewrite_in_progress', 0],
      ['aof_rewrite_scheduled', 0],
      ['aof_last_rewrite_time_sec', -1],
      ['aof_current_rewrite_time_sec', -1],
      ['aof_last_bgrewrite_status', 'ok'],
      ['aof_rewrites', 0],
      ['aof_rewrites_consecutive_failures', 0],
      ['aof_last_write_status', 'ok'],
      ['aof_last_cow_size', 0],
      ['module_fork_in_progress', 0],
      ['module_fork_last_cow_size', 0],
      // Only while loading, where Redis prints them.
      ...(this.loading?.infoFields(now) ?? []),
      // poolkv: progress of the snapshot in progress (image bytes shipped / in all) and the last image's size.
      ['snapshot_bytes_done', cut ? cut.bytesDone : 0],
      ['snapshot_bytes_total', cut ? cut.bytesTotal : 0],
      ['snapshot_preimage_pages', cut ? cut.preimageBytes / (1 << 20) : 0],
      ['snapshot_last_image_bytes', this.lastImageBytes],
      // poolkv: where images go and how the last save went (throughput in megabits per second).
      ['snapshot_transport', this.transport],
      ['snapshot_peer', this.transport === 'file' ? '' : config.getString('snapshot-peer')],
      ['snapshot_name', this.transport === 'file' ? '' : config.getString('snapshot-name')],
      ['snapshot_last_bytes_shipped', this.lastBytesShipped],
      ['snapshot_last_throughput_mbps', this.lastThroughputMbps.toFixed(2)],
      ['snapshot_last_status', this.lastShipOk ? 'ok' : 'err'],
    ];
  }
}

/**
 * INFO persistence, as Redis 7.0 prints it plus poolkv's snapshot progress
 * fields. Without a server, the most recently used service (one per process
 * in practice); with none yet, the idle defaults.
 */
export function persistenceInfoFields(server?: ServerContext): Array<[string, string | number]> {
  const service = server ? SnapshotService.of(server) : SnapshotService.latest();
  if (service !== null) return service.infoFields();
  return [
    ['loading', 0], ['async_loading', 0], ['rdb_changes_since_last_save', 0], ['rdb_bgsave_in_progress', 0],
    ['rdb_last_bgsave_status', 'ok'], ['rdb_last_bgsave_time_sec', -1], ['rdb_current_bgsave_time_sec', -1],
  ];
}
