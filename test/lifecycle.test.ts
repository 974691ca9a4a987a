// Process lifecycle of poolkv-server: SHUTDOWN and signals exit cleanly, a
// /dev/shm pool left by a clean shutdown is attached as it stands at the next
// start, and a pool left by a crash is not trusted.
import { strict as assert } from 'assert';
import * as fs from 'fs';
import { rawCommand, startPoolkv, type RedisProcess } from './helpers/processes';

function waitExit(server: RedisProcess): Promise<number | null> {
  const child = server.process;
  if (child.exitCode !== null) return Promise.resolve(child.exitCode);
  return new Promise((resolve) => child.once('exit', (code) => resolve(code)));
}

/** Log lines travel through a pipe and may trail the replies: give them a moment. */
async function waitForOutput(server: RedisProcess, pattern: RegExp): Promise<void> {
  const deadline = Date.now() + 3000;
  while (!pattern.test(server.output())) {
    if (Date.now() > deadline) assert.fail(`log never matched ${pattern}:\n${server.output()}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

async function cmd(port: number, ...args: string[]): Promise<string> {
  return (await rawCommand(port, args)).toString('latin1');
}

describe('lifecycle: shutdown and pool re-attach', function () {
  this.timeout(60000);
  const poolPath = `/dev/shm/poolkv-test-${process.pid}.pool`;
  afterEach(() => fs.rmSync(poolPath, { force: true }));

  it('SHUTDOWN exits with code 0 and logs it; SHUTDOWN ABORT and bad options get Redis errors', async () => {
    const server = await startPoolkv();
    assert.equal(await cmd(server.port, 'SHUTDOWN', 'ABORT'), '-ERR No shutdown in progress.\r\n');
    assert.equal(await cmd(server.port, 'SHUTDOWN', 'SAVE', 'NOSAVE'), '-ERR syntax error\r\n');
    assert.equal(await cmd(server.port, 'SHUTDOWN', 'BANANA'), '-ERR syntax error\r\n');
    const exited = waitExit(server);
    await rawCommand(server.port, ['SHUTDOWN', 'NOSAVE']).catch(() => Buffer.alloc(0)); // no reply: the server goes away
    assert.equal(await exited, 0);
    await waitForOutput(server, /User requested shutdown/);
  });

  it('SIGTERM shuts down cleanly', async () => {
    const server = await startPoolkv();
    assert.equal(await server.stop(), 0);
    await waitForOutput(server, /Received SIGTERM scheduling shutdown/);
  });

  it('a clean shutdown leaves a /dev/shm pool that the next start attaches with its data and TTLs', async () => {
    const first = await startPoolkv(['--pool-path', poolPath]);
    assert.equal(await cmd(first.port, 'SET', 'kept', 'value'), '+OK\r\n');
    assert.equal(await cmd(first.port, 'SET', 'ttl', 'v', 'EX', '1000'), '+OK\r\n');
    assert.equal(await cmd(first.port, 'SELECT', '7'), '+OK\r\n');
    assert.equal(await first.stop(), 0);
    assert.ok(fs.existsSync(poolPath));

    const second = await startPoolkv(['--pool-path', poolPath]);
    try {
      assert.equal(await cmd(second.port, 'GET', 'kept'), '$5\r\nvalue\r\n');
      const ttl = Number((await cmd(second.port, 'TTL', 'ttl')).slice(1));
      assert.ok(ttl > 990 && ttl <= 1000, `TTL survived (${ttl})`);
      assert.equal(await cmd(second.port, 'DBSIZE'), ':2\r\n');
    } finally {
      await second.stop();
    }
  });

  it('a pool left by a killed server is not trusted', async () => {
    const first = await startPoolkv(['--pool-path', poolPath]);
    assert.equal(await cmd(first.port, 'SET', 'k', 'v'), '+OK\r\n');
    first.process.kill('SIGKILL');
    await waitExit(first);
    const second = await startPoolkv(['--pool-path', poolPath]);
    try {
      assert.equal(await cmd(second.port, 'DBSIZE'), ':0\r\n');
      await waitForOutput(second, /was not shut down cleanly/);
    } finally {
      await second.stop();
    }
  });
});
