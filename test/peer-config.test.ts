// The snapshot transport options (snapshot-transport, snapshot-peer,
// snapshot-auth-token, snapshot-name, load-from-peer): CONFIG GET / SET with
// Redis's error format, INFO persistence reflecting them, and start-up
// refusing combinations that cannot work.
import { strict as assert } from 'assert';
import { rawCommand, startPoolkv, type RedisProcess } from './helpers/processes';

async function cmd(port: number, ...args: string[]): Promise<string> {
  return (await rawCommand(port, args, { timeoutMs: 10000 })).toString('latin1');
}

/** Wait until the server's log shows `pattern` (log lines can reach us after the reply that followed them). */
async function logged(server: RedisProcess, pattern: RegExp): Promise<void> {
  const deadline = Date.now() + 10000;
  while (!pattern.test(server.output()) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
  assert.match(server.output(), pattern);
}

function setError(name: string, message: string): string {
  return `-ERR CONFIG SET failed (possibly related to argument '${name}') - ${message}\r\n`;
}

describe('snapshot transport options', function () {
  this.timeout(60000);
  let server: RedisProcess;

  before(async () => {
    server = await startPoolkv();
  });
  after(async () => {
    await server.stop();
  });

  it('CONFIG GET shows the defaults (the token like requirepass, in the clear)', async () => {
    assert.equal(await cmd(server.port, 'CONFIG', 'GET', 'snapshot-*'),
      '*8\r\n$18\r\nsnapshot-transport\r\n$4\r\nfile\r\n$13\r\nsnapshot-peer\r\n$0\r\n\r\n' +
      '$19\r\nsnapshot-auth-token\r\n$0\r\n\r\n$13\r\nsnapshot-name\r\n$7\r\ndefault\r\n');
    assert.equal(await cmd(server.port, 'CONFIG', 'GET', 'load-from-peer'), '*2\r\n$14\r\nload-from-peer\r\n$2\r\nno\r\n');
  });

  it('CONFIG SET validates each option with Redis\'s error format', async () => {
    const p = server.port;
    assert.equal(await cmd(p, 'CONFIG', 'SET', 'snapshot-transport', 'udp'),
      setError('snapshot-transport', 'argument(s) must be one of the following: file, tcp, rdma'));
    assert.equal(await cmd(p, 'CONFIG', 'SET', 'snapshot-peer', 'nohost'), setError('snapshot-peer', 'snapshot-peer must be HOST:PORT, got "nohost"'));
    assert.equal(await cmd(p, 'CONFIG', 'SET', 'snapshot-peer', '10.0.0.1:70000'), setError('snapshot-peer', 'snapshot-peer: port 70000 is out of range'));
    assert.equal(await cmd(p, 'CONFIG', 'SET', 'snapshot-peer', '10.0.0.1:0'), setError('snapshot-peer', 'snapshot-peer: port 0 is not a valid peer port'));
    assert.match(await cmd(p, 'CONFIG', 'SET', 'snapshot-name', '../etc'), /^-ERR CONFIG SET failed \(possibly related to argument 'snapshot-name'\) - snapshot name "\.\.\/etc" is not valid/);
    assert.match(await cmd(p, 'CONFIG', 'SET', 'snapshot-auth-token', 'x'.repeat(1025)), /snapshot-auth-token is longer than 1024 bytes/);
    assert.equal(await cmd(p, 'CONFIG', 'SET', 'load-from-peer', 'maybe'), setError('load-from-peer', "argument must be 'yes' or 'no'"));
    // All-or-nothing, as CONFIG SET is.
    assert.match(await cmd(p, 'CONFIG', 'SET', 'snapshot-transport', 'tcp', 'snapshot-name', 'a/b'), /snapshot-name/);
    assert.equal(await cmd(p, 'CONFIG', 'GET', 'snapshot-transport'), '*2\r\n$18\r\nsnapshot-transport\r\n$4\r\nfile\r\n');
    assert.equal(await cmd(p, 'CONFIG', 'SET', 'snapshot-peer', '[::1]:7070', 'snapshot-name', 'cache-01.eu_west', 'snapshot-auth-token', 's3cret'), '+OK\r\n');
    assert.equal(await cmd(p, 'CONFIG', 'GET', 'snapshot-peer'), '*2\r\n$13\r\nsnapshot-peer\r\n$10\r\n[::1]:7070\r\n');
  });

  it('INFO persistence follows the transport; a tcp transport without a peer fails BGSAVE with the reason in the log', async () => {
    const p = server.port;
    let info = await cmd(p, 'INFO', 'persistence');
    assert.match(info, /\r\nsnapshot_transport:file\r\nsnapshot_peer:\r\nsnapshot_name:\r\nsnapshot_last_bytes_shipped:0\r\nsnapshot_last_throughput_mbps:0\.00\r\nsnapshot_last_status:ok\r\n/);
    assert.equal(await cmd(p, 'CONFIG', 'SET', 'snapshot-transport', 'tcp', 'snapshot-peer', ''), '+OK\r\n');
    info = await cmd(p, 'INFO', 'persistence');
    assert.match(info, /\r\nsnapshot_transport:tcp\r\nsnapshot_peer:\r\nsnapshot_name:cache-01\.eu_west\r\n/);
    assert.equal(await cmd(p, 'BGSAVE'), '-ERR\r\n');
    await logged(server, /Can't save in background: snapshot-transport is tcp but snapshot-peer is not set/);
    assert.equal(await cmd(p, 'SAVE'), '-ERR\r\n');
    await logged(server, /Failed saving the pool image: snapshot-transport is tcp but snapshot-peer is not set/);
    info = await cmd(p, 'INFO', 'persistence');
    assert.match(info, /\r\nrdb_last_bgsave_status:err\r\n/);
    assert.match(info, /\r\nsnapshot_last_status:err\r\n/);
    // Back to the file: saves work again.
    assert.equal(await cmd(p, 'CONFIG', 'SET', 'snapshot-transport', 'file'), '+OK\r\n');
    assert.equal(await cmd(p, 'SAVE'), '+OK\r\n');
    info = await cmd(p, 'INFO', 'persistence');
    assert.match(info, /\r\nrdb_last_bgsave_status:ok\r\n/);
    assert.match(info, /\r\nsnapshot_last_bytes_shipped:[1-9]\d*\r\nsnapshot_last_throughput_mbps:\d+\.\d\d\r\nsnapshot_last_status:ok\r\n/);
  });

  it('start-up refuses a peer transport without a peer, and load-from-peer without a peer transport', async () => {
    const fails = async (args: string[]): Promise<string> => {
      try {
        const s = await startPoolkv(args);
        await s.stop();
      } catch (err) {
        return (err as Error).message;
      }
      throw new Error(`started with ${args.join(' ')}`);
    };
    assert.match(await fails(['--snapshot-transport', 'tcp']), /snapshot-transport tcp needs snapshot-peer HOST:PORT\. Exiting\./);
    assert.match(await fails(['--load-from-peer', 'yes']), /load-from-peer yes needs snapshot-transport tcp or rdma \(and snapshot-peer\)\. Exiting\./);
    assert.match(await fails(['--snapshot-name', '..']), /snapshot name "\.\." is not valid/);
  });
});
