// Active expiry. First the cycle itself on an in-process keyspace (what it
// reclaims, its avg_ttl and stale-percentage estimates, its time budget), then
// poolkv-server end to end: keys nobody reads disappear within seconds, as
// DBSIZE and INFO keyspace show, side by side with a real redis-server.
import { strict as assert } from 'assert';
import { Pool } from '../src/pool/pool';
import { ActiveExpireCycle } from '../src/store/active-expire';
import { Keyspace, type Database } from '../src/store/keyspace';
import { encodeCommand, rawCommand, replyLength, startPoolkv, startRedis, type RedisProcess } from './helpers/processes';

const MiB = 1024 * 1024;

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

type Cmd = string[];

/** Send commands pipelined on one connection; each reply's raw bytes as latin1. */
async function run(port: number, cmds: Cmd[]): Promise<string[]> {
  const out: string[] = [];
  for (let start = 0; start < cmds.length; start += 2000) {
    const batch = cmds.slice(start, start + 2000);
    const bytes = await rawCommand(port, Buffer.concat(batch.map((c) => encodeCommand(c))), { replies: batch.length, timeoutMs: 60000 });
    let p = 0;
    for (let i = 0; i < batch.length; i++) {
      const n = replyLength(bytes, p);
      out.push(bytes.toString('latin1', p, p + n));
      p += n;
    }
  }
  return out;
}

async function integer(port: number, cmd: Cmd): Promise<number> {
  const [reply] = await run(port, [cmd]);
  const m = /^:(-?\d+)\r\n$/.exec(reply!);
  assert.ok(m, `${cmd.join(' ')} → ${JSON.stringify(reply)}`);
  return Number(m[1]);
}

/** The `dbN:keys=...,expires=...,avg_ttl=...` lines of INFO keyspace, by database. */
async function infoKeyspace(port: number): Promise<Map<string, { keys: number; expires: number; avgTtl: number }>> {
  const [reply] = await run(port, [['INFO', 'keyspace']]);
  const out = new Map<string, { keys: number; expires: number; avgTtl: number }>();
  for (const m of reply!.matchAll(/^(db\d+):keys=(\d+),expires=(\d+),avg_ttl=(\d+)/gm)) {
    out.set(m[1]!, { keys: Number(m[2]), expires: Number(m[3]), avgTtl: Number(m[4]) });
  }
  return out;
}

describe('ActiveExpireCycle (in process)', function () {
  this.timeout(60000);
  let pool: Pool;
  let ks: Keyspace;

  beforeEach(() => {
    pool = Pool.open({ size: 128 * MiB, databases: 16 });
    ks = new Keyspace(pool);
  });
  afterEach(() => pool.close());

  function fill(db: Database, prefix: string, n: number, expireAt: (i: number) => number): void {
    for (let i = 0; i < n; i++) db.setString(Buffer.from(`${prefix}:${i}`), Buffer.from(`v${i}`), expireAt(i));
  }

  it('reclaims expired keys nobody reads, in every database, and nothing else', async () => {
    const now = Date.now();
    fill(ks.db(0), 'gone', 5000, () => now + 50);
    fill(ks.db(0), 'kept', 2000, (i) => (i % 2 === 0 ? 0 : now + 3600_000));
    fill(ks.db(7), 'gone', 3000, () => now + 50);
    fill(ks.db(15), 'kept', 100, () => 0);
    await sleep(80);
    const cycle = new ActiveExpireCycle(ks);
    const started = Date.now();
    while ((ks.db(0).size() > 2000 || ks.db(7).size() > 0) && Date.now() - started < 5000) {
      cycle.run(25);
      await sleep(10);
    }
    assert.equal(ks.db(0).size(), 2000);
    assert.equal(ks.db(0).expiresCount(), 1000);
    assert.equal(ks.db(7).size(), 0);
    assert.equal(ks.db(7).expiresCount(), 0);
    assert.equal(ks.db(15).size(), 100);
    assert.equal(ks.stats.expiredKeys, 8000);
    for (let i = 0; i < 2000; i++) assert.ok(ks.db(0).exists(Buffer.from(`kept:${i}`)), `kept:${i}`);
  });

  it('keeps Redis-style avg_ttl and expired_stale_perc estimates', async () => {
    const now = Date.now();
    fill(ks.db(3), 'k', 1000, () => now + 100_000);
    const cycle = new ActiveExpireCycle(ks);
    cycle.run(25);
    const avg = ks.db(3).avgTtl();
    assert.ok(avg > 95_000 && avg <= 100_000, `avg_ttl ${avg}`);
    assert.ok(Number.isInteger(avg), 'avg_ttl is integer arithmetic, as in C');
    assert.equal(ks.db(0).avgTtl(), 0);
    assert.equal(ks.stats.expiredStalePerc, 0);
    // Half of the keys with a TTL turn stale: the estimate moves towards 50% by 5% per run.
    fill(ks.db(3), 'stale', 1000, () => now + 20);
    await sleep(40);
    cycle.run(25);
    const perc = ks.stats.expiredStalePerc;
    assert.ok(perc > 0 && perc <= 0.05, `stale ${perc}`);
    // Without keys with a TTL avg_ttl drops to 0, as in Redis.
    ks.db(3).flush();
    cycle.run(25);
    assert.equal(ks.db(3).avgTtl(), 0);
    assert.ok(ks.stats.expiredStalePerc < perc, 'the stale estimate decays on runs that find nothing stale');
  });

  it('stays within its time budget on a big table, and its pace walk still finds sparse expired keys', async () => {
    const now = Date.now();
    fill(ks.db(0), 'big', 100_000, (i) => (i % 100 === 0 ? now + 30 : now + 3600_000));
    await sleep(50);
    const cycle = new ActiveExpireCycle(ks);
    const durations: number[] = [];
    const started = Date.now();
    while (ks.db(0).size() > 99_000 && Date.now() - started < 20000) {
      const t = performance.now();
      cycle.run(5);
      durations.push(performance.now() - t);
      await sleep(20);
    }
    assert.equal(ks.db(0).size(), 99_000, 'every sparse expired key reclaimed');
    // Wall time includes the odd GC pause, so judge the typical run, not the worst.
    durations.sort((a, b) => a - b);
    const p90 = durations[Math.floor(durations.length * 0.9)]!;
    assert.ok(p90 < 7, `90% of runs with a 5 ms budget took up to ${p90.toFixed(1)} ms`);
    // No pace walk needs the whole budget: it is held to a fifth of it.
    const median = durations[Math.floor(durations.length / 2)]!;
    assert.ok(median < 3, `median run ${median.toFixed(1)} ms`);
  });

  it('a database that eats the whole budget does not starve the others', async () => {
    const now = Date.now();
    // db 0: many stale keys (keeps the cycle busy for several runs); db 1: a few.
    fill(ks.db(0), 'a', 60_000, () => now + 10);
    fill(ks.db(1), 'b', 100, () => now + 10);
    await sleep(30);
    const cycle = new ActiveExpireCycle(ks);
    for (let i = 0; i < 10 && ks.db(1).size() > 0; i++) cycle.run(2);
    assert.equal(ks.db(1).size(), 0, 'db 1 was served while db 0 still had work');
    assert.ok(ks.db(0).size() > 0, 'db 0 was cut short by the budget');
    assert.ok(cycle.counters.timeCapReached > 0);
  });

  it('does no work for databases without keys with a TTL', () => {
    fill(ks.db(0), 'plain', 10_000, () => 0);
    const cycle = new ActiveExpireCycle(ks);
    cycle.run(25);
    assert.equal(cycle.counters.bucketsWalked, 0);
    assert.equal(ks.db(0).size(), 10_000);
  });
});

describe('active expiry end to end (poolkv-server next to redis-server)', function () {
  this.timeout(120000);
  let redis: RedisProcess;
  let poolkv: RedisProcess;

  before(async () => {
    [redis, poolkv] = await Promise.all([startRedis(), startPoolkv(['--pool-size', '128mb'])]);
  });
  after(async () => {
    await Promise.all([redis?.stop(), poolkv?.stop()]);
  });

  /** Poll (DBSIZE and INFO keyspace only: no key is read) until db0 has `target` keys; ms taken. */
  async function waitForDbsize(port: number, target: number, limitMs: number): Promise<number> {
    const started = Date.now();
    for (;;) {
      const n = await integer(port, ['DBSIZE']);
      if (n === target) return Date.now() - started;
      if (Date.now() - started > limitMs) assert.fail(`port ${port}: DBSIZE still ${n} (want ${target}) after ${limitMs} ms`);
      await sleep(50);
    }
  }

  it('10k keys with 100 ms TTLs that nobody reads are gone within seconds (DBSIZE, INFO keyspace)', async () => {
    const cmds: Cmd[] = [['FLUSHALL']];
    for (let i = 0; i < 10000; i++) cmds.push(['SET', `vol:${i}`, `value-${i}`, 'PX', '100']);
    const timings: Record<string, number> = {};
    for (const [name, server] of [['poolkv', poolkv], ['redis', redis]] as const) {
      const expiredBefore = Number(/expired_keys:(\d+)/.exec((await run(server.port, [['INFO', 'stats']]))[0]!)![1]);
      const replies = await run(server.port, cmds);
      assert.ok(replies.every((r) => r === '+OK\r\n'));
      const ks = await infoKeyspace(server.port);
      // (All 10k may not be there any more by now, but most are, all with a TTL.)
      const db0 = ks.get('db0');
      if (db0) assert.equal(db0.keys, db0.expires);
      timings[name] = await waitForDbsize(server.port, 0, 5000);
      assert.equal((await infoKeyspace(server.port)).has('db0'), false, `${name}: INFO keyspace still lists db0`);
      const expiredAfter = Number(/expired_keys:(\d+)/.exec((await run(server.port, [['INFO', 'stats']]))[0]!)![1]);
      assert.equal(expiredAfter - expiredBefore, 10000, `${name}: expired_keys counts every reclaimed key`);
    }
    // Printed for the record: how long each server took.
    console.log(`      reclaimed 10k keys: poolkv ${timings.poolkv} ms, redis ${timings.redis} ms`);
  });

  it('expiring keys go, keys with a long TTL or none stay; avg_ttl reported', async () => {
    const cmds: Cmd[] = [['FLUSHALL']];
    for (let i = 0; i < 5000; i++) cmds.push(['SET', `short:${i}`, 'v', 'PX', String(100 + (i % 200))]);
    for (let i = 0; i < 1000; i++) cmds.push(['SET', `long:${i}`, 'v', 'EX', '3600']);
    for (let i = 0; i < 1000; i++) cmds.push(['SET', `plain:${i}`, 'v']);
    const db4: Cmd[] = [['SELECT', '4']];
    for (let i = 0; i < 500; i++) db4.push(['SET', `db4:${i}`, 'v', 'PX', '150']);
    await run(poolkv.port, cmds);
    await run(poolkv.port, db4); // one connection: SELECT holds for the batch
    await waitForDbsize(poolkv.port, 2000, 6000);
    const ks = await infoKeyspace(poolkv.port);
    assert.deepEqual(ks.get('db0') && { keys: ks.get('db0')!.keys, expires: ks.get('db0')!.expires }, { keys: 2000, expires: 1000 });
    assert.equal(ks.has('db4'), false, 'db4 emptied too');
    // avg_ttl converges on the long keys' ~3600 s (a running average, so loosely).
    await sleep(1500);
    const avg = (await infoKeyspace(poolkv.port)).get('db0')!.avgTtl;
    assert.ok(avg > 0 && avg <= 3_600_000, `avg_ttl ${avg}`);
    const [stats] = await run(poolkv.port, [['INFO', 'stats']]);
    assert.match(stats!, /expired_stale_perc:\d+\.\d\d/);
    assert.equal(await integer(poolkv.port, ['EXISTS', 'long:0', 'plain:0', 'short:0']), 2);
    await run(poolkv.port, [['FLUSHALL']]);
  });
});
