// What a failed save does to the server, side by side with redis-server:
// stop-writes-on-bgsave-error (MISCONF for writes and PING until a save
// succeeds, reads still served), and FLUSHALL saving at once when save rules
// are set. A save is made to fail the same way on both: a non-empty directory
// stands where the snapshot file goes, so the final rename fails.
import { strict as assert } from 'assert';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { rawCommand, startPoolkv, startRedis, type RedisProcess } from './helpers/processes';

async function cmd(port: number, ...args: string[]): Promise<string> {
  return (await rawCommand(port, args, { timeoutMs: 20000 })).toString('latin1');
}

function infoField(info: string, field: string): string | undefined {
  return new RegExp(`^${field}:(.*)\r$`, 'm').exec(info)?.[1];
}

async function bgsaveFinished(port: number): Promise<string> {
  const deadline = Date.now() + 20000;
  for (;;) {
    const info = await cmd(port, 'INFO', 'persistence');
    if (infoField(info, 'rdb_bgsave_in_progress') === '0') return info;
    if (Date.now() > deadline) throw new Error(`BGSAVE still running on ${port}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

describe('failed saves and FLUSHALL, against redis-server', function () {
  this.timeout(60000);
  const servers: Array<{ name: string; server: RedisProcess; dir: string }> = [];

  before(async () => {
    for (const [name, start] of [['redis', startRedis], ['poolkv', startPoolkv]] as const) {
      const dir = fs.mkdtempSync(path.join(os.tmpdir(), `poolkv-misconf-${name}-`));
      const server = await start(['--save', '3600 1000', '--dir', dir]);
      servers.push({ name, server, dir });
    }
  });

  after(async () => {
    for (const { server, dir } of servers) {
      await server.stop();
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  /** The same commands on both servers; the replies must be byte-identical. Returns them. */
  async function both(...args: string[]): Promise<string> {
    const replies = await Promise.all(servers.map(({ server }) => cmd(server.port, ...args)));
    assert.equal(replies[1], replies[0], `${args.join(' ')}: poolkv ${JSON.stringify(replies[1])} vs redis ${JSON.stringify(replies[0])}`);
    return replies[0]!;
  }

  it('a failed BGSAVE refuses writes and PING with MISCONF until a save succeeds; reads go on', async () => {
    assert.equal(await both('SET', 'kept', 'v1'), '+OK\r\n');
    const blockers = servers.map(({ dir, name }) => path.join(dir, name === 'redis' ? 'dump.rdb' : 'dump.pool'));
    for (const blocker of blockers) {
      fs.rmSync(blocker, { recursive: true, force: true });
      fs.mkdirSync(path.join(blocker, 'in-the-way'), { recursive: true });
    }
    assert.equal(await both('BGSAVE'), '+Background saving started\r\n');
    for (const { server } of servers) assert.equal(infoField(await bgsaveFinished(server.port), 'rdb_last_bgsave_status'), 'err');

    const misconf = await both('SET', 'lost', 'v2');
    assert.match(misconf, /^-MISCONF /);
    assert.equal(await both('PING'), misconf);
    assert.equal(await both('INCR', 'counter'), misconf);
    assert.equal(await both('GET', 'kept'), '$2\r\nv1\r\n');
    assert.equal(await both('EXISTS', 'lost'), ':0\r\n');

    // The option turns it off and on again.
    assert.equal(await both('CONFIG', 'SET', 'stop-writes-on-bgsave-error', 'no'), '+OK\r\n');
    assert.equal(await both('CONFIG', 'GET', 'stop-writes-on-bgsave-error'), '*2\r\n$27\r\nstop-writes-on-bgsave-error\r\n$2\r\nno\r\n');
    assert.equal(await both('SET', 'allowed', 'v3'), '+OK\r\n');
    assert.equal(await both('CONFIG', 'SET', 'stop-writes-on-bgsave-error', 'yes'), '+OK\r\n');
    assert.equal(await both('DEL', 'allowed'), misconf);

    // Without save rules writes are never refused for it.
    assert.equal(await both('CONFIG', 'SET', 'save', ''), '+OK\r\n');
    assert.equal(await both('SET', 'no-rules', 'v4'), '+OK\r\n');
    assert.equal(await both('CONFIG', 'SET', 'save', '3600 1000'), '+OK\r\n');
    assert.equal(await both('PING'), misconf);

    // A successful save clears it.
    for (const blocker of blockers) fs.rmSync(blocker, { recursive: true, force: true });
    assert.equal(await both('BGSAVE'), '+Background saving started\r\n');
    for (const { server } of servers) assert.equal(infoField(await bgsaveFinished(server.port), 'rdb_last_bgsave_status'), 'ok');
    assert.equal(await both('PING'), '+PONG\r\n');
    assert.equal(await both('SET', 'after', 'v5'), '+OK\r\n');
  });

  it('FLUSHALL with save rules set saves the empty dataset at once', async () => {
    const before = await Promise.all(servers.map(({ server }) => cmd(server.port, 'INFO', 'persistence')));
    const files = servers.map(({ dir, name }) => path.join(dir, name === 'redis' ? 'dump.rdb' : 'dump.pool'));
    for (const file of files) fs.rmSync(file, { force: true });
    assert.equal(await both('SET', 'gone', 'soon'), '+OK\r\n');
    assert.equal(await both('FLUSHALL'), '+OK\r\n');
    for (const file of files) assert.ok(fs.existsSync(file), `${file} was not written by FLUSHALL`);
    const afterInfo = await Promise.all(servers.map(({ server }) => cmd(server.port, 'INFO', 'persistence')));
    for (let i = 0; i < servers.length; i++) {
      // Redis 7.0 does not count this save in rdb_saves, and leaves no changes pending.
      assert.equal(infoField(afterInfo[i]!, 'rdb_saves'), infoField(before[i]!, 'rdb_saves'), servers[i]!.name);
      assert.equal(infoField(afterInfo[i]!, 'rdb_changes_since_last_save'), '0', servers[i]!.name);
      assert.ok(Number(infoField(afterInfo[i]!, 'rdb_last_save_time')) >= Number(infoField(before[i]!, 'rdb_last_save_time')));
    }
    assert.equal(await both('DBSIZE'), ':0\r\n');
  });

  it('FLUSHALL without save rules writes nothing', async () => {
    assert.equal(await both('CONFIG', 'SET', 'save', ''), '+OK\r\n');
    const files = servers.map(({ dir, name }) => path.join(dir, name === 'redis' ? 'dump.rdb' : 'dump.pool'));
    for (const file of files) fs.rmSync(file, { force: true });
    assert.equal(await both('FLUSHALL'), '+OK\r\n');
    for (const file of files) assert.ok(!fs.existsSync(file), `${file} was written`);
  });
});
