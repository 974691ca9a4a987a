// The keyspace's share of serverCron: incremental rehashing, the active expire
// cycle, and keeping memory under maxmemory even when no write arrives. Each
// job is bounded in time so a tick never stalls clients.
import { ActiveExpireCycle } from '../store/active-expire';
import type { Evictor } from '../store/eviction';
import type { Keyspace } from '../store/keyspace';

/** Share of a cron tick the active expire cycle may use (Redis's slow cycle: 25%). */
const EXPIRE_BUDGET_SHARE = 0.25;
/** Per-database rehash time per tick when activerehashing is on (Redis: 1 ms). */
const REHASH_MS_PER_DB = 1;

export class KeyspaceCron {
  private readonly expireCycle: ActiveExpireCycle;

  constructor(
    private readonly keyspace: Keyspace,
    private readonly evictor: Evictor,
    private readonly settings: { hz(): number; activeRehashing(): boolean },
  ) {
    this.expireCycle = new ActiveExpireCycle(keyspace);
  }

  /** Called every server tick (1000/hz ms). */
  run(): void {
    this.keyspace.refreshClock();
    const tickMs = 1000 / Math.max(1, this.settings.hz());
    this.expireCycle.run(tickMs * EXPIRE_BUDGET_SHARE);
    if (this.settings.activeRehashing()) this.keyspace.rehashCron(REHASH_MS_PER_DB);
    else for (const db of this.keyspace.dbs) db.dict.shrinkIfNeeded();
    this.evictor.freeMemoryIfNeeded();
  }
}
