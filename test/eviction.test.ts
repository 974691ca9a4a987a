// maxmemory and its policies, through real sockets: noeviction refuses writes
// with Redis's OOM error while reads and deletes go on; the eviction policies
// make room instead, choosing victims the way Redis's sampling does.
import { strict as assert } from 'assert';
import { rawCommand, startPoolkv, startRedis, encodeCommand, type RedisProcess } from './helpers/processes';

const OOM = "-OOM command not allowed when used memory > 'maxmemory'.\r\n";

async function cmd(port: number, ...args: string[]): Promise<string> {
  return (await rawCommand(port, args)).toString('latin1');
}

/** Send many commands in one pipeline and return the raw replies. */
async function pipeline(port: number, commands: string[][]): Promise<string> {
  const payload = Buffer.concat(commands.map((c) => encodeCommand(c)));
  return (await rawCommand(port, payload, { replies: commands.length, timeoutMs: 30000 })).toString('latin1');
}

async function info(port: number, field: string): Promise<number> {
  const text = await cmd(port, 'INFO', 'all');
  const m = new RegExp(`^${field}:(\\S+)`, 'm').exec(text);
  assert.ok(m, `INFO has ${field}`);
  return Number(m[1]);
}

describe('maxmemory and eviction', function () {
  this.timeout(120000);
  const value = 'x'.repeat(1000);
  let server: RedisProcess | null = null;
  afterEach(async () => {
    await server?.stop();
    server = null;
  });

  it('noeviction: writes get the OOM error, reads and deletes still work (same reply as redis-server)', async () => {
    server = await startPoolkv(['--maxmemory', '4mb']);
    const batch = Array.from({ length: 8000 }, (_, i) => ['SET', `k${i}`, value]);
    const replies = await pipeline(server.port, batch);
    assert.ok(replies.includes(OOM), 'writes were refused once over maxmemory');
    assert.equal(await cmd(server.port, 'GET', 'k0'), `$1000\r\n${value}\r\n`);
    assert.equal(await cmd(server.port, 'SET', 'another', 'v'), OOM);
    assert.equal(await cmd(server.port, 'DEL', 'k0'), ':1\r\n');
    assert.ok((await info(server.port, 'used_memory')) < 4.5 * 1024 * 1024);

    // Redis refuses with the very same bytes.
    const redis = await startRedis(['--maxmemory', '1mb']);
    try {
      const redisReplies = await pipeline(redis.port, batch.slice(0, 3000));
      assert.ok(redisReplies.includes(OOM));
    } finally {
      await redis.stop();
    }
  });

  for (const policy of ['allkeys-lru', 'allkeys-lfu', 'allkeys-random']) {
    it(`${policy}: writes keep succeeding, keys are evicted, memory stays near the limit`, async () => {
      server = await startPoolkv(['--maxmemory', '4mb', '--maxmemory-policy', policy]);
      const batch = Array.from({ length: 10000 }, (_, i) => ['SET', `k${i}`, value]);
      const replies = await pipeline(server.port, batch);
      assert.ok(!replies.includes('-'), 'no write was refused');
      const keys = Number((await cmd(server.port, 'DBSIZE')).slice(1));
      assert.ok(keys < 10000 && keys > 1000, `some keys were evicted (${keys} left)`);
      assert.ok((await info(server.port, 'evicted_keys')) >= 10000 - keys);
      assert.ok((await info(server.port, 'used_memory')) <= 4.2 * 1024 * 1024);
    });
  }

  it('allkeys-lru keeps recently used keys over idle ones', async () => {
    server = await startPoolkv(['--maxmemory', '4mb', '--maxmemory-policy', 'allkeys-lru', '--maxmemory-samples', '10']);
    // 2000 keys fit; let them idle for over a second (the LRU clock has 1 s resolution).
    await pipeline(server.port, Array.from({ length: 2000 }, (_, i) => ['SET', `old${i}`, value]));
    await new Promise((r) => setTimeout(r, 2200));
    // Touch the first 200, then write enough new keys to force evictions.
    await pipeline(server.port, Array.from({ length: 200 }, (_, i) => ['GET', `old${i}`]));
    await pipeline(server.port, Array.from({ length: 2500 }, (_, i) => ['SET', `new${i}`, value]));
    const hot = await pipeline(server.port, Array.from({ length: 200 }, (_, i) => ['EXISTS', `old${i}`]));
    const cold = await pipeline(server.port, Array.from({ length: 200 }, (_, i) => ['EXISTS', `old${1000 + i}`]));
    const count = (s: string) => s.split(':1\r\n').length - 1;
    assert.ok(count(hot) > count(cold) + 50, `recently used keys survive more (hot ${count(hot)}, cold ${count(cold)})`);
  });

  it('when the mix of value sizes shifts, pages move to the size class that needs them: no write is refused (as redis-server), the keys left read back intact', async () => {
    // Small values fill the pool and are evicted from, which frees chunks all over their pages but drains
    // none; then values of another size class need pages. memcached's page mover empties a page for them.
    const small = (i: number) => `small-${i}-`.padEnd(200, 's');
    const big = (i: number) => `big-${i}-`.padEnd(60_000, String.fromCharCode(97 + (i % 26)));
    const smallWrites = Array.from({ length: 60_000 }, (_, i) => ['SET', `s${i}`, small(i), ...(i % 3 === 0 ? ['EX', '100000'] : [])]);
    const bigWrites = Array.from({ length: 150 }, (_, i) => ['SET', `b${i}`, big(i)]);
    server = await startPoolkv(['--pool-size', '16mb', '--maxmemory', '15mb', '--maxmemory-policy', 'allkeys-lru']);
    const redis = await startRedis(['--maxmemory', '15mb', '--maxmemory-policy', 'allkeys-lru']);
    try {
      for (const target of [server, redis]) {
        for (let at = 0; at < smallWrites.length; at += 10_000) {
          assert.ok(!(await pipeline(target.port, smallWrites.slice(at, at + 10_000))).includes('-'), 'no small write refused');
        }
      }
      assert.ok((await info(server.port, 'evicted_keys')) > 0, 'the small values alone overflow maxmemory');
      // Let the small keys idle (the LRU clock ticks in seconds), then the big ones arrive.
      await new Promise((resolve) => setTimeout(resolve, 2100));
      for (const target of [server, redis]) {
        for (let at = 0; at < bigWrites.length; at += 50) {
          const replies = await pipeline(target.port, bigWrites.slice(at, at + 50));
          assert.ok(!replies.includes('-'), `no big write refused by ${target === server ? 'poolkv' : 'redis-server'}: ${replies.slice(0, 200)}`);
        }
      }
    } finally {
      await redis.stop();
    }
    const slabs = await cmd(server.port, 'INFO', 'slabs');
    const bigClass = /slab\d+:chunk_size=(\d+),chunks_per_page=\d+,total_pages=(\d+)/g;
    let bigPages = 0;
    for (const m of slabs.matchAll(bigClass)) if (Number(m[1]) >= 60_000) bigPages += Number(m[2]);
    assert.ok(bigPages >= 5, `pages moved to the big values' class:\n${slabs}`);
    assert.ok(Number(/slabs_moved:(\d+)/.exec(slabs)?.[1]) >= 1, slabs);
    // Whatever is left is intact, small and big; the newest big values survived (the old small keys went first).
    const smallLeft = await pipeline(server.port, Array.from({ length: 60_000 }, (_, i) => ['GET', `s${i}`]));
    let smallCount = 0;
    for (const [i, reply] of smallLeft.split(/\r\n(?=\$)/).entries()) {
      if (reply.startsWith('$-1')) continue;
      assert.equal(reply.replace(/\r\n$/, ''), `$200\r\n${small(i)}`, `s${i}`);
      smallCount++;
    }
    assert.ok(smallCount > 1000, `small keys remain (${smallCount})`);
    let newestBig = 0;
    for (let i = 0; i < bigWrites.length; i++) {
      const reply = await cmd(server.port, 'GET', `b${i}`);
      if (reply === '$-1\r\n') continue;
      assert.equal(reply, `$60000\r\n${big(i)}\r\n`, `b${i}`);
      if (i >= bigWrites.length - 40) newestBig++;
    }
    assert.ok(newestBig >= 36, `the newest big values are kept (${newestBig} of the last 40)`);
    const ttl = Number((await cmd(server.port, 'TTL', 's0')).slice(1));
    assert.ok(ttl === -2 || ttl > 99_000, `a moved key keeps its TTL (${ttl})`);
    // A value larger than the whole pool is refused without evicting anything for it.
    const keysBefore = await cmd(server.port, 'DBSIZE');
    const evictedBefore = await info(server.port, 'evicted_keys');
    assert.equal(await cmd(server.port, 'SET', 'huge', 'h'.repeat(17 * 1024 * 1024)), OOM);
    assert.equal(await cmd(server.port, 'DBSIZE'), keysBefore);
    assert.equal(await info(server.port, 'evicted_keys'), evictedBefore);
  });

  it('volatile-ttl evicts the keys closest to expiring; volatile-* without volatile keys refuses with OOM', async () => {
    server = await startPoolkv(['--maxmemory', '4mb', '--maxmemory-policy', 'volatile-ttl']);
    await pipeline(server.port, Array.from({ length: 1500 }, (_, i) => ['SET', `soon${i}`, value, 'EX', String(100 + i)]));
    await pipeline(server.port, Array.from({ length: 1500 }, (_, i) => ['SET', `late${i}`, value, 'EX', String(100000 + i)]));
    await pipeline(server.port, Array.from({ length: 1500 }, (_, i) => ['SET', `more${i}`, value, 'EX', String(200000 + i)]));
    const soon = await pipeline(server.port, Array.from({ length: 100 }, (_, i) => ['EXISTS', `soon${i}`]));
    const late = await pipeline(server.port, Array.from({ length: 100 }, (_, i) => ['EXISTS', `late${1400 + i}`]));
    const count = (s: string) => s.split(':1\r\n').length - 1;
    assert.ok(count(soon) < count(late), `short TTLs go first (soon ${count(soon)}, late ${count(late)})`);

    await cmd(server.port, 'FLUSHALL');
    await cmd(server.port, 'CONFIG', 'SET', 'maxmemory-policy', 'volatile-lru');
    const replies = await pipeline(server.port, Array.from({ length: 6000 }, (_, i) => ['SET', `plain${i}`, value]));
    assert.ok(replies.includes(OOM), 'nothing volatile to evict: OOM');
  });
});
