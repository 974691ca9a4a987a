// While poolkv-server loads an image at start-up it already listens: commands
// without Redis's `loading` flag get -LOADING (after the unknown-command,
// arity and auth errors, as redis-server orders them), INFO persistence shows
// loading:1 and the loading_* fields where Redis 7.0 prints them, and a
// SHUTDOWN in the middle neither saves nor marks a half-loaded /dev/shm pool
// clean. (Loads from a peer: test/helpers/peer-scenarios.ts.)
import { strict as assert } from 'assert';
import * as fs from 'fs';
import * as path from 'path';
import { readDataset, sortedModel, writeDataset, type DatasetModel } from './helpers/datasets';
import { spawn, type ChildProcess } from 'child_process';
import { encodeCommand, freePort, POOLKV_MAIN, rawCommand, startPoolkv, type RedisProcess } from './helpers/processes';
import { scratchDir } from './helpers/receiver';

const LOADING = '-LOADING Redis is loading the dataset in memory\r\n';
/** Enough pages that a load takes a good fraction of a second on this kind of host. */
const BIG_KEYS = 320;
const BIG_BYTES = 1000 * 1024;

describe('loading an image at start-up', function () {
  this.timeout(180000);
  let dir: string;
  let model: DatasetModel;
  const servers: RedisProcess[] = [];

  before(async () => {
    dir = scratchDir('poolkv-loading-');
    const s = await startPoolkv(['--dir', dir, '--pool-size', '512mb']);
    try {
      model = await writeDataset(s.port, { seed: 21, dbs: 2, smallKeys: 2000, bigKeys: BIG_KEYS, bigBytes: BIG_BYTES });
      assert.equal((await rawCommand(s.port, ['SAVE'], { timeoutMs: 60000 })).toString(), '+OK\r\n');
    } finally {
      await s.stop();
    }
  });

  const children: ChildProcess[] = [];
  afterEach(async () => {
    for (const s of servers.splice(0)) await s.stop().catch(() => null);
    for (const child of children.splice(0)) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  });

  /**
   * Spawn poolkv-server without waiting for it (with requirepass, PING never answers +PONG);
   * `poll` runs until it returns. Resolves with the port and the child.
   */
  async function spawnAndPoll(args: string[], poll: (port: number) => Promise<void>): Promise<{ port: number; child: ChildProcess; output(): string }> {
    const port = await freePort();
    const child = spawn(process.execPath, [POOLKV_MAIN, '--port', String(port), '--bind', '127.0.0.1', ...args], { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] });
    children.push(child);
    let output = '';
    child.stdout!.on('data', (c: Buffer) => { output += c.toString(); });
    child.stderr!.on('data', (c: Buffer) => { output += c.toString(); });
    await poll(port);
    return { port, child, output: () => output };
  }

  it('answers -LOADING to data commands and PING, INFO shows loading:1 and the loading_* fields, errors keep Redis\'s order', async () => {
    const seen = new Map<string, string>();
    const unauthenticated: Array<[string, string[]]> = [
      ['get', ['GET', 'k:b:1']], ['ping', ['PING']], ['unknown', ['NOSUCHCOMMAND', 'x']], ['arity', ['GET']],
    ];
    const authenticated = Buffer.concat([
      encodeCommand(['AUTH', 'pw']), encodeCommand(['DBSIZE']), encodeCommand(['CONFIG', 'GET', 'port']), encodeCommand(['INFO', 'persistence']),
    ]);
    const server = await spawnAndPoll(['--dir', dir, '--pool-size', '512mb', '--requirepass', 'pw'], async (port) => {
      const deadline = Date.now() + 60000;
      while (Date.now() < deadline) {
        let reply: string;
        try {
          reply = (await rawCommand(port, authenticated, { replies: 4, timeoutMs: 2000 })).toString('latin1');
        } catch {
          await new Promise((r) => setTimeout(r, 2));
          continue;
        }
        if (!reply.startsWith(`+OK\r\n${LOADING}`)) return; // loaded
        if (!seen.has('authenticated')) {
          seen.set('authenticated', reply);
          for (const [name, args] of unauthenticated) seen.set(name, (await rawCommand(port, args, { timeoutMs: 2000 })).toString('latin1'));
        }
      }
    });
    assert.ok(seen.has('authenticated'), 'the server was caught loading');
    assert.equal(seen.get('get'), '-NOAUTH Authentication required.\r\n', 'auth comes before LOADING');
    assert.equal(seen.get('ping'), '-NOAUTH Authentication required.\r\n');
    assert.equal(seen.get('unknown'), "-ERR unknown command 'NOSUCHCOMMAND', with args beginning with: 'x' \r\n");
    assert.equal(seen.get('arity'), "-ERR wrong number of arguments for 'get' command\r\n");
    const authed = seen.get('authenticated')!;
    assert.ok(authed.startsWith(`+OK\r\n${LOADING}*2\r\n$4\r\nport\r\n$${String(server.port).length}\r\n${server.port}\r\n`),
      `DBSIZE is refused while loading; CONFIG (flagged loading) runs:\n${authed.slice(0, 200)}`);
    const info = authed;
    assert.match(info, /\r\nloading:1\r\n/, 'INFO persistence answered with loading:1 during the load');
    assert.match(info, new RegExp('module_fork_last_cow_size:0\\r\\nloading_start_time:(\\d+)\\r\\nloading_total_bytes:(\\d+)\\r\\n' +
      'loading_rdb_used_mem:(\\d+)\\r\\nloading_loaded_bytes:(\\d+)\\r\\nloading_loaded_perc:(\\d+\\.\\d\\d)\\r\\nloading_eta_seconds:(\\d+)\\r\\nsnapshot_'));
    const fields = /loading_start_time:(\d+)\r\nloading_total_bytes:(\d+)\r\nloading_rdb_used_mem:(\d+)\r\nloading_loaded_bytes:(\d+)/.exec(info)!;
    assert.ok(Math.abs(Number(fields[1]) - Date.now() / 1000) < 120);
    assert.equal(Number(fields[2]), fs.statSync(path.join(dir, 'dump.pool')).size, 'loading_total_bytes is the image size');
    assert.ok(Number(fields[3]) > BIG_KEYS * BIG_BYTES, 'loading_rdb_used_mem is the dataset size at the cut');
    assert.ok(Number(fields[4]) <= Number(fields[2]));
    // Loaded: everything as saved, loading:0, no loading_* fields.
    const after = (await rawCommand(server.port, Buffer.concat([encodeCommand(['AUTH', 'pw']), encodeCommand(['INFO', 'persistence'])]), { replies: 2 })).toString('latin1');
    assert.match(after, /\r\nloading:0\r\n/);
    assert.doesNotMatch(after, /loading_start_time/);
    const deadline = Date.now() + 10000;
    while (!/Done loading the pool image, keys loaded: \d+\./.test(server.output()) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    assert.match(server.output(), /Done loading the pool image, keys loaded: \d+\./);
    assert.equal((await rawCommand(server.port, Buffer.concat([encodeCommand(['AUTH', 'pw']), encodeCommand(['CONFIG', 'SET', 'requirepass', ''])]), { replies: 2 })).toString(), '+OK\r\n+OK\r\n');
    assert.deepEqual(await readDataset(server.port, 2), sortedModel(model));
    const errorstats = (await rawCommand(server.port, ['INFO', 'errorstats'])).toString('latin1');
    assert.match(errorstats, /errorstat_LOADING:count=\d+/);
    assert.match(errorstats, /errorstat_NOAUTH:count=\d+/);
  });

  it('SHUTDOWN during the load exits without saving and leaves a /dev/shm pool that the next start does not trust', async function () {
    if (!fs.existsSync('/dev/shm')) this.skip();
    const poolPath = `/dev/shm/poolkv-loading-test-${process.pid}`;
    fs.rmSync(poolPath, { force: true });
    const image = path.join(dir, 'dump.pool');
    const before = fs.statSync(image).mtimeMs;
    try {
      const args = ['--dir', dir, '--pool-size', '512mb', '--pool-path', poolPath, '--save', '1 1'];
      let shutdownReply = '';
      let tooFast = false;
      const started = await spawnAndPoll(args, async (port) => {
        const deadline = Date.now() + 60000;
        while (Date.now() < deadline) {
          let reply: string;
          try {
            reply = (await rawCommand(port, ['DBSIZE'], { timeoutMs: 2000 })).toString('latin1');
          } catch {
            await new Promise((r) => setTimeout(r, 2));
            continue;
          }
          if (reply === LOADING) {
            shutdownReply = (await rawCommand(port, ['SHUTDOWN'], { timeoutMs: 5000 }).catch(() => Buffer.from('closed'))).toString('latin1');
            return;
          }
          tooFast = true;
          return;
        }
      });
      if (tooFast) this.skip(); // loaded before the test could catch it
      const code = await new Promise<number | null>((resolve) => {
        if (started.child.exitCode !== null) resolve(started.child.exitCode);
        else started.child.once('exit', (c) => resolve(c));
      });
      assert.equal(code, 0, started.output());
      assert.equal(shutdownReply, 'closed', 'SHUTDOWN closes the connection as the server exits');
      assert.doesNotMatch(started.output(), /Saving the final pool image/);
      assert.equal(fs.statSync(image).mtimeMs, before, 'the image was not rewritten');
      // Next start: the half-loaded pool is not attached; the image is loaded again.
      const again = await startPoolkv(['--dir', dir, '--pool-size', '512mb', '--pool-path', poolPath]);
      servers.push(again);
      assert.match(again.output(), /Loading the pool image from /);
      assert.doesNotMatch(again.output(), /attached the cleanly shut down pool/);
      assert.equal((await rawCommand(again.port, ['DBSIZE'])).toString(), `:${Object.keys(model[0]!).length}\r\n`);
    } finally {
      fs.rmSync(poolPath, { force: true });
    }
  });
});
