// While an image loads at start-up the server already listens: commands
// without Redis's `loading` flag are refused with -LOADING (after the
// unknown-command, arity and auth checks, as processCommand orders them),
// INFO persistence shows loading:1 and the loading_* fields, and the
// keyspace cron stays off (the data pages are not all there yet).
import { authRequired } from '../commands/connection';
import { CommandTable } from '../commands/table';
import type { CommandContext } from '../commands/types';

export const LOADING_ERROR = 'LOADING Redis is loading the dataset in memory';

export class LoadingState {
  active = false;
  /** Seconds since the epoch (loading_start_time). */
  startTime = 0;
  totalBytes = 0;
  loadedBytes = 0;
  /** The memory the dataset used when the image was taken (loading_rdb_used_mem). */
  rdbUsedMem = 0;

  start(totalBytes: number, rdbUsedMem: number): void {
    this.active = true;
    this.startTime = Math.floor(Date.now() / 1000);
    this.totalBytes = totalBytes;
    this.loadedBytes = 0;
    this.rdbUsedMem = rdbUsedMem;
  }

  finish(): void {
    this.active = false;
  }

  get percent(): number {
    return this.totalBytes > 0 ? (this.loadedBytes / this.totalBytes) * 100 : 0;
  }

  /** The loading_* fields of INFO persistence, computed as Redis 7.0 does (only while loading). */
  infoFields(now = Date.now()): Array<[string, string | number]> {
    if (!this.active) return [];
    const remaining = this.totalBytes > 0 ? this.totalBytes - this.loadedBytes : 1;
    const elapsed = Math.floor(now / 1000) - this.startTime;
    const eta = elapsed === 0 ? 1 : Math.floor((elapsed * remaining) / (this.loadedBytes + 1));
    return [
      ['loading_start_time', this.startTime],
      ['loading_total_bytes', this.totalBytes],
      ['loading_rdb_used_mem', this.rdbUsedMem],
      ['loading_loaded_bytes', this.loadedBytes],
      ['loading_loaded_perc', this.percent.toFixed(2)],
      ['loading_eta_seconds', eta],
    ];
  }
}

/** The command table, refusing commands without the `loading` flag while `loading` is active. */
export class LoadingAwareCommandTable extends CommandTable {
  constructor(readonly loading: LoadingState) {
    super();
  }

  override dispatch(ctx: CommandContext, argv: Buffer[]): void {
    if (this.loading.active) {
      const entry = this.lookup(argv);
      const client = ctx.client;
      // Unknown commands, arity and auth errors come first: the normal dispatcher produces those.
      if (entry !== undefined && !entry.hasFlag('loading') && entry.spec.handler !== undefined) {
        const arity = entry.spec.arity;
        const arityOk = !((arity > 0 && arity !== argv.length) || argv.length < -arity);
        const authOk = client.authenticated || entry.hasFlag('no_auth') || !authRequired(client, ctx.server.config);
        if (arityOk && authOk) {
          ctx.reply.resp = client.resp;
          client.lastCommand = entry.fullName;
          entry.rejectedCalls++;
          ctx.reply.error(LOADING_ERROR);
          ctx.server.stats.countError('LOADING');
          return;
        }
      }
    }
    super.dispatch(ctx, argv);
  }
}
