// The connection command group (PING, ECHO, QUIT, SELECT, HELLO, AUTH):
// replies compared byte for byte with a real redis-server 7.0 where one is
// installed, and the declarations compared with its COMMAND INFO / DOCS.
import { strict as assert } from 'assert';
import { commands as connectionCommands } from '../src/commands/connection';
import {
  exchange, haveRealRedis, RawClient, resp, startRealRedis, startServer, type RealRedis, type TestServer,
} from './helpers/in-process-server';

// redis-parser doubles as the test's RESP reply decoder.
const RedisParser = require('redis-parser') as new (options: {
  returnReply(reply: unknown): void; returnError(err: Error): void; returnBuffers?: boolean;
}) => { execute(b: Buffer): void };

/** Send one command and decode its single reply. */
async function query(port: number, ...args: string[]): Promise<unknown> {
  const client = await RawClient.connect(port);
  try {
    const replies: unknown[] = [];
    const parser = new RedisParser({ returnReply: (r) => replies.push(r), returnError: (e) => replies.push(e) });
    client.write(resp(...args));
    const deadline = Date.now() + 5000;
    while (replies.length === 0 && Date.now() < deadline) {
      const { output } = await client.drain(50);
      if (output.length > 0) parser.execute(Buffer.from(output, 'latin1'));
    }
    return replies[0];
  } finally {
    client.close();
  }
}

/** Replace the client id in a HELLO reply, which legitimately differs between servers. */
function normalizeHelloId(output: string): string {
  return output.replace(/\$2\r\nid\r\n:\d+\r\n/g, '$2\r\nid\r\n:ID\r\n');
}

describe('connection commands', function () {
  this.timeout(30000);
  let t: TestServer;
  let real: RealRedis | null = null;

  before(async () => {
    t = await startServer();
    if (haveRealRedis()) real = await startRealRedis();
  });
  after(async () => {
    await t.close();
    if (real) await real.stop();
  });

  async function sameAsRedis(payload: string | Buffer, normalize = (s: string) => s): Promise<{ output: string; closed: boolean }> {
    const ours = await exchange(t.port, payload);
    ours.output = normalize(ours.output);
    if (real) {
      const theirs = await exchange(real.port, payload);
      theirs.output = normalize(theirs.output);
      assert.deepEqual(ours, theirs, `payload ${JSON.stringify(payload.toString())}`);
    }
    return ours;
  }

  it('PING and ECHO', async () => {
    const r = await sameAsRedis(Buffer.concat([
      Buffer.from('PING\r\nping hello\r\nPING ""\r\nECHO "x y"\r\n'),
      resp('ECHO', Buffer.from([0, 1, 2, 255])),
      resp('ECHO', ''),
    ]));
    assert.equal(r.output, '+PONG\r\n$5\r\nhello\r\n$0\r\n\r\n$3\r\nx y\r\n$4\r\n\0\x01\x02\xff\r\n$0\r\n\r\n');
  });

  it('PING in RESP2 pubsub mode answers with a pong array', async () => {
    const c = await RawClient.connect(t.port);
    c.write('PING\r\n');
    await c.expect('+PONG\r\n');
    const state = t.server.clients.list().at(-1)!;
    state.subscriptions = 1; // what SUBSCRIBE will do
    c.write('PING\r\nPING msg\r\nHELLO 3\r\n');
    assert.equal(await c.expect('*2\r\n$4\r\npong\r\n$0\r\n\r\n*2\r\n$4\r\npong\r\n$3\r\nmsg\r\n'),
      '*2\r\n$4\r\npong\r\n$0\r\n\r\n*2\r\n$4\r\npong\r\n$3\r\nmsg\r\n');
    await c.drain();
    c.write('PING\r\n'); // RESP3 clients may read pushes and replies interleaved: plain PONG
    assert.equal(await c.expect('+PONG\r\n'), '+PONG\r\n');
    c.close();
    if (real) {
      const theirs = await exchange(real.port, 'SUBSCRIBE ch\r\nPING\r\nPING msg\r\n');
      assert.ok(theirs.output.endsWith('*2\r\n$4\r\npong\r\n$0\r\n\r\n*2\r\n$4\r\npong\r\n$3\r\nmsg\r\n'));
    }
  });

  it('QUIT replies +OK, closes, and skips what was pipelined after it', async () => {
    const r = await sameAsRedis('PING\r\nQUIT extra args\r\nPING\r\n');
    assert.deepEqual(r, { output: '+PONG\r\n+OK\r\n', closed: true });
    const before = t.server.stats.totalCommandsProcessed;
    await exchange(t.port, Buffer.concat([resp('QUIT'), resp('PING'), resp('PING')]));
    assert.equal(t.server.stats.totalCommandsProcessed - before, 1);
  });

  it('SELECT validates like Redis and switches the database', async () => {
    const r = await sameAsRedis('SELECT 15\r\nSELECT 16\r\nSELECT -1\r\nSELECT x\r\nSELECT 01\r\nSELECT " 1"\r\n' +
      'SELECT 99999999999\r\nSELECT 99999999999999999999\r\nSELECT 0\r\n');
    assert.equal(r.output, [
      '+OK\r\n',
      '-ERR DB index is out of range\r\n',
      '-ERR DB index is out of range\r\n',
      '-ERR value is not an integer or out of range\r\n',
      '-ERR value is not an integer or out of range\r\n',
      '-ERR value is not an integer or out of range\r\n',
      '-ERR value is out of range, value must between -2147483648 and 2147483647\r\n',
      '-ERR value is not an integer or out of range\r\n',
      '+OK\r\n',
    ].join(''));
    const c = await RawClient.connect(t.port);
    c.write('SELECT 7\r\n');
    await c.expect('+OK\r\n');
    assert.equal(t.server.clients.list().at(-1)!.db, 7);
    c.close();
  });

  it('HELLO: replies, errors and options as Redis 7.0', async () => {
    const r = await sameAsRedis('HELLO\r\nHELLO 3\r\nHELLO 2\r\nHELLO 4\r\nHELLO 1\r\nHELLO x\r\nHELLO 03\r\n' +
      'HELLO 3 FOO\r\nHELLO 3 AUTH a\r\nHELLO 3 SETNAME\r\nHELLO 3 SETNAME "a b"\r\nHELLO 2 setname ok auth default whatever\r\n' +
      'HELLO 3 AUTH bob x\r\n', normalizeHelloId);
    const map = (proto: number) => `${proto === 3 ? '%7' : '*14'}\r\n$6\r\nserver\r\n$5\r\nredis\r\n$7\r\nversion\r\n$6\r\n7.0.15\r\n` +
      `$5\r\nproto\r\n:${proto}\r\n$2\r\nid\r\n:ID\r\n$4\r\nmode\r\n$10\r\nstandalone\r\n$4\r\nrole\r\n$6\r\nmaster\r\n$7\r\nmodules\r\n*0\r\n`;
    assert.equal(r.output, [
      map(2), map(3), map(2),
      '-NOPROTO unsupported protocol version\r\n',
      '-NOPROTO unsupported protocol version\r\n',
      '-ERR Protocol version is not an integer or out of range\r\n',
      '-ERR Protocol version is not an integer or out of range\r\n',
      "-ERR Syntax error in HELLO option 'FOO'\r\n",
      "-ERR Syntax error in HELLO option 'AUTH'\r\n",
      "-ERR Syntax error in HELLO option 'SETNAME'\r\n",
      '-ERR Client names cannot contain spaces, newlines or special characters.\r\n',
      map(2),
      '-WRONGPASS invalid username-password pair or user is disabled.\r\n',
    ].join(''));
  });

  it('HELLO reports this client id and sets the name', async () => {
    const c = await RawClient.connect(t.port);
    c.write('HELLO 3 SETNAME worker-1\r\n');
    const { output } = await c.drain();
    const state = t.server.clients.list().at(-1)!;
    assert.ok(output.includes(`$2\r\nid\r\n:${state.id}\r\n`));
    assert.equal(state.name, 'worker-1');
    assert.equal(state.resp, 3);
    c.close();
  });

  it('AUTH without requirepass', async () => {
    const r = await sameAsRedis('AUTH x\r\nAUTH default anything\r\nAUTH foo x\r\nAUTH a b c\r\n');
    assert.equal(r.output, [
      '-ERR AUTH <password> called without any password configured for the default user. Are you sure your configuration is correct?\r\n',
      '+OK\r\n',
      '-WRONGPASS invalid username-password pair or user is disabled.\r\n',
      '-ERR syntax error\r\n',
    ].join(''));
  });

  it('AUTH against requirepass set at runtime: new clients must authenticate', async () => {
    t.config.set('requirepass', 'pw');
    try {
      const r = await exchange(t.port, 'PING\r\nAUTH nope\r\nAUTH pw\r\nPING\r\nAUTH default pw\r\n');
      assert.equal(r.output, '-NOAUTH Authentication required.\r\n' +
        '-WRONGPASS invalid username-password pair or user is disabled.\r\n+OK\r\n+PONG\r\n+OK\r\n');
    } finally {
      t.config.set('requirepass', '');
    }
  });

  it('clearing requirepass at runtime frees clients that never authenticated (as Redis)', async () => {
    t.config.set('requirepass', 'pw');
    const c = await RawClient.connect(t.port);
    try {
      c.write('PING\r\n');
      assert.equal(await c.expect('-NOAUTH Authentication required.\r\n'), '-NOAUTH Authentication required.\r\n');
      t.config.set('requirepass', '');
      c.write('PING\r\n');
      assert.equal(await c.expect('+PONG\r\n'), '+PONG\r\n');
    } finally {
      t.config.set('requirepass', '');
      c.close();
    }
  });

  it('declarations match redis-server COMMAND INFO and COMMAND DOCS', async function () {
    if (!real) this.skip();
    for (const spec of connectionCommands) {
      const info = (await query(real!.port, 'COMMAND', 'INFO', spec.name)) as unknown[][];
      const [name, arity, flags, firstKey, lastKey, step, acl] = info[0]!;
      assert.equal(name, spec.name);
      assert.equal(arity, spec.arity, `${spec.name} arity`);
      assert.deepEqual(flags, spec.flags, `${spec.name} flags`);
      assert.deepEqual([firstKey, lastKey, step], [spec.firstKey, spec.lastKey, spec.step], `${spec.name} keys`);
      assert.deepEqual(acl, spec.acl.map((c) => `@${c}`), `${spec.name} acl`);

      const docs = (await query(real!.port, 'COMMAND', 'DOCS', spec.name)) as unknown[];
      const fields = docs[1] as unknown[];
      const doc = new Map<string, unknown>();
      for (let i = 0; i < fields.length; i += 2) doc.set(fields[i] as string, fields[i + 1]);
      assert.equal(doc.get('summary'), spec.summary, `${spec.name} summary`);
      assert.equal(doc.get('since'), spec.since, `${spec.name} since`);
      assert.equal(doc.get('group'), spec.group, `${spec.name} group`);
      assert.equal(doc.get('complexity'), spec.complexity, `${spec.name} complexity`);
    }
  });

  it('the table finds commands in any case and records the last command', async () => {
    const table = t.server.commands;
    assert.equal(table.findTop(Buffer.from('PiNg'))?.fullName, 'ping');
    assert.equal(table.findTop(Buffer.from('pinG!')), undefined);
    assert.equal(table.findTop(Buffer.from('')), undefined);
    assert.equal(table.get('HELLO')?.hasFlag('no_auth'), true);
    const c = await RawClient.connect(t.port);
    c.write('EcHo hi\r\n');
    await c.expect('$2\r\nhi\r\n');
    assert.equal(t.server.clients.list().at(-1)!.lastCommand, 'echo');
    c.close();
  });
});
