// The server's snapshot service: SAVE / BGSAVE to `dir/dbfilename` through the
// consistent cut and the file transport, the `save <seconds> <changes>` rules
// (SnapshotScheduler, checked like Redis's serverCron), the dirty counter, and
// the INFO persistence fields.
//
// Dirty counter: the dispatcher adds 1 to ServerStats.dirty for every command
// flagged `write` that did not answer an error. That is coarser than Redis's
// server.dirty (which counts keys changed: DEL of 3 keys = 3, a no-op = 0).
import * as fs from 'fs';
import type { ServerContext } from '../server/server-context';
import { FileSink } from '../transport/file';
import { ConsistentCut, CutAbortedError } from './cut';

/** Redis's CONFIG_BGSAVE_RETRY_DELAY: after a failed BGSAVE, rules wait this long (s). */
const BGSAVE_RETRY_DELAY = 5;
const CRON_MS = 100;

export type BgsaveResult = 'started' | 'scheduled' | 'in-progress';

interface RunningSave {
  cut: ConsistentCut;
  sink: FileSink;
  dirtyAtStart: number;
  done: Promise<void>;
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

  private sinkFor(sync: boolean): FileSink {
    return new FileSink({ dir: this.server.config.getString('dir'), filename: this.server.config.getString('dbfilename'), sync });
  }

  // ---- SAVE -------------------------------------------------------------------------
  /** SAVE: the whole cut, now, blocking. Returns an error text, or null on success. */
  save(): string | null {
    if (this.running !== null) return 'Background save already in progress';
    const sink = this.sinkFor(true);
    const dirtyAtStart = this.dirty;
    this.saves++;
    let cut: ConsistentCut;
    try {
      cut = ConsistentCut.open(this.server.pool, sink);
      cut.runSync();
    } catch (err) {
      this.server.log.warning(`Failed saving the pool image to ${sink.finalPath}: ${(err as Error).message}`);
      this.lastBgsaveOk = false;
      return 'ERR';
    }
    this.dirty -= dirtyAtStart;
    this.lastSave = Math.floor(Date.now() / 1000);
    this.lastBgsaveOk = true;
    this.lastPreimagePeak = cut.preimagePeak;
    this.lastImageBytes = cut.bytesTotal;
    this.server.log.notice('DB saved on disk');
    return null;
  }

  // ---- BGSAVE -----------------------------------------------------------------------
  /** BGSAVE [SCHEDULE]. The cut is taken before this returns; the pages ship in the background. */
  bgsave(): BgsaveResult | { error: string } {
    if (this.running !== null) return 'in-progress';
    const sink = this.sinkFor(false);
    this.lastBgsaveTry = Math.floor(Date.now() / 1000);
    let cut: ConsistentCut;
    try {
      cut = ConsistentCut.open(this.server.pool, sink);
    } catch (err) {
      this.lastBgsaveOk = false;
      this.server.log.warning(`Can't save in background: ${(err as Error).message}`);
      return { error: 'ERR' };
    }
    this.saves++;
    this.scheduled = false;
    const dirtyAtStart = this.dirty;
    this.server.log.notice(`Background saving started (pool image to ${sink.finalPath}, ${cut.bytesTotal} bytes)`);
    const running: RunningSave = { cut, sink, dirtyAtStart, done: Promise.resolve() };
    running.done = cut.run().then(() => {
      const seconds = Math.round((Date.now() - cut.startedAt) / 1000);
      this.dirty -= dirtyAtStart;
      this.lastSave = Math.floor(Date.now() / 1000);
      this.lastBgsaveOk = true;
      this.lastBgsaveTimeSec = seconds;
      this.lastPreimagePeak = cut.preimagePeak;
      this.lastImageBytes = cut.bytesTotal;
      this.server.log.notice(`Background saving terminated with success (${cut.dataPages} data pages, ` +
        `${cut.preimagesTaken} pre-images, ${(Date.now() - cut.startedAt)} ms)`);
    }, (err: unknown) => {
      this.lastBgsaveOk = false;
      this.lastBgsaveTimeSec = Math.round((Date.now() - cut.startedAt) / 1000);
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

  /** Stop a BGSAVE in progress (SHUTDOWN): the previous image stays; the temp file is removed. */
  killBgsave(reason: string): void {
    const running = this.running;
    if (running === null) return;
    running.cut.abort(reason);
    fs.rmSync(running.sink.tempPath, { force: true });
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
    if (nosave || (!forceSave && this.saveRules().length === 0)) return true;
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
    if (this.running !== null) return;
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
    return [
      ['loading', 0],
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
      // poolkv: progress of the snapshot in progress (image bytes shipped / in all) and the last image's size.
      ['snapshot_bytes_done', cut ? cut.bytesDone : 0],
      ['snapshot_bytes_total', cut ? cut.bytesTotal : 0],
      ['snapshot_preimage_pages', cut ? cut.preimageBytes / (1 << 20) : 0],
      ['snapshot_last_image_bytes', this.lastImageBytes],
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
