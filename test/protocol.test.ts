// The request side of the protocol: inline splitting, the framing scanner in
// front of redis-parser (fed in every possible chunking), and the live server
// over real sockets: pipelining, protocol errors and limits, dispatcher errors,
// RESP3, maxclients. Where practical the raw bytes are compared with a real
// redis-server 7.0 spawned for the purpose.
import { strict as assert } from 'assert';
import { CommandTable } from '../src/commands/table';
import { allCommandSpecs } from '../src/commands/index';
import type { CommandSpec } from '../src/commands/types';
import { PoolFullError } from '../src/pool/errors';
import { splitInlineArgs } from '../src/protocol/inline-parser';
import { parseRedisInteger, RequestParser, type RequestHandler } from '../src/protocol/request-parser';
import {
  exchange, haveRealRedis, RawClient, resp, startRealRedis, startServer, type RealRedis, type TestServer,
} from './helpers/in-process-server';

const MiB = 1024 * 1024;

function split(line: string): string[] | null {
  const buf = Buffer.from(line, 'latin1');
  const args = splitInlineArgs(buf, 0, buf.length);
  return args === null ? null : args.map((a) => a.toString('latin1'));
}

/** Feeds a RequestParser and records what it dispatches, with a toy AUTH/QUIT to exercise state changes. */
class Recorder implements RequestHandler {
  readonly commands: string[][] = [];
  authenticated = true;
  quit = false;
  readonly parser = new RequestParser(this);

  command(argv: Buffer[]): void {
    const args = argv.map((a) => a.toString('latin1'));
    this.commands.push(args);
    if (args[0] === 'AUTH') this.authenticated = true;
    if (args[0] === 'QUIT') this.quit = true;
  }
  shouldStop(): boolean {
    return this.quit;
  }
  authRequired(): boolean {
    return !this.authenticated;
  }
}

function feedChunks(chunks: Buffer[], authenticated = true): Recorder {
  const r = new Recorder();
  r.authenticated = authenticated;
  for (const chunk of chunks) {
    r.parser.feed(chunk);
    if (r.parser.error !== null || r.quit) break;
  }
  return r;
}

describe('inline parser (sdssplitargs)', () => {
  it('splits on blanks and ignores leading/trailing ones', () => {
    assert.deepEqual(split('  SET  key\tvalue  '), ['SET', 'key', 'value']);
    assert.deepEqual(split(''), []);
    assert.deepEqual(split('   '), []);
  });

  it('handles double quotes with escapes', () => {
    assert.deepEqual(split('ECHO "hello world"'), ['ECHO', 'hello world']);
    assert.deepEqual(split('ECHO "a\\x41\\n\\r\\t\\b\\a\\\\\\"z"'), ['ECHO', 'aA\n\r\t\b\x07\\"z']);
    assert.deepEqual(split('ECHO "\\xZZ"'), ['ECHO', 'xZZ']); // not a hex escape: backslash dropped
    assert.deepEqual(split('ECHO ""'), ['ECHO', '']);
    assert.deepEqual(split('ECHO a"b c"'), ['ECHO', 'ab c']); // a quote may start mid-token
  });

  it('handles single quotes with only \\\' as an escape', () => {
    assert.deepEqual(split("ECHO 'it\\'s \\n'"), ['ECHO', "it's \\n"]);
  });

  it('rejects unbalanced quotes and quotes followed by a non-blank', () => {
    assert.equal(split('ECHO "abc'), null);
    assert.equal(split("ECHO 'abc"), null);
    assert.equal(split('ECHO "a"b'), null);
    assert.equal(split("ECHO 'a'b"), null);
  });

  it('stops at a NUL byte like a C string', () => {
    assert.deepEqual(split('ECHO ab\0cd'), ['ECHO', 'ab']);
  });
});

describe('parseRedisInteger (string2ll)', () => {
  const p = (s: string) => parseRedisInteger(Buffer.from(s));
  it('accepts canonical integers only', () => {
    assert.equal(p('0'), 0);
    assert.equal(p('42'), 42);
    assert.equal(p('-7'), -7);
    assert.equal(p('9223372036854775807'), 9223372036854775807);
    for (const bad of ['', '-', '01', '-0', '+1', ' 1', '1 ', '1a', '9223372036854775808', '99999999999999999999']) {
      assert.ok(Number.isNaN(p(bad)), bad);
    }
  });
});

describe('request scanner + redis-parser', () => {
  const mixed = Buffer.concat([
    resp('PING'),
    Buffer.from('ECHO "a b"\r\n'),
    resp('ECHO', '0123456789'),
    Buffer.from('\r\n  \nSET k \'v w\'\n'),
    Buffer.from('*0\r\n*-1\r\n'),
    resp('SET', 'k', ''),
    resp('ECHO', Buffer.alloc(70000, 'x')), // bigger than one chunk: redis-parser's big-string path
    Buffer.from('PING\r\n'),
  ]);
  const expected = [
    ['PING'], ['ECHO', 'a b'], ['ECHO', '0123456789'], ['SET', 'k', 'v w'], ['SET', 'k', ''],
    ['ECHO', 'x'.repeat(70000)], ['PING'],
  ];

  it('parses a mixed inline/multibulk stream fed at once', () => {
    const r = feedChunks([mixed]);
    assert.equal(r.parser.error, null);
    assert.deepEqual(r.commands, expected);
    assert.equal(r.parser.queryBufferBytes, 0);
  });

  it('parses the same stream split at every position into two chunks', function () {
    this.timeout(120000);
    // Every split point in the small-command region, and a sample inside the big bulk.
    for (let at = 1; at < mixed.length; at += at < 200 || at > mixed.length - 100 ? 1 : 997) {
      const r = feedChunks([mixed.subarray(0, at), mixed.subarray(at)]);
      assert.equal(r.parser.error, null, `split at ${at}`);
      assert.deepEqual(r.commands, expected, `split at ${at}`);
    }
  });

  it('parses the small-command prefix fed one byte at a time', () => {
    const small = mixed.subarray(0, mixed.indexOf(resp('ECHO', Buffer.alloc(70000, 'x')).subarray(0, 20)));
    const chunks: Buffer[] = [];
    for (let i = 0; i < small.length; i++) chunks.push(small.subarray(i, i + 1));
    const r = feedChunks(chunks);
    assert.equal(r.parser.error, null);
    assert.deepEqual(r.commands, expected.slice(0, 5));
  });

  it('runs the commands before a protocol error, then stops', () => {
    const r = feedChunks([Buffer.concat([resp('PING'), Buffer.from('PING\r\n*1\r\n+PING\r\n'), resp('PING')])]);
    assert.deepEqual(r.commands, [['PING'], ['PING']]);
    assert.equal(r.parser.error, "Protocol error: expected '$', got '+'");
  });

  it('stops after QUIT without looking at what follows', () => {
    const r = feedChunks([Buffer.concat([resp('QUIT'), Buffer.from('*abc\r\n')])]);
    assert.deepEqual(r.commands, [['QUIT']]);
    assert.equal(r.parser.error, null);
  });

  it('applies unauthenticated limits per command, in order (AUTH lifts them for what follows)', () => {
    const big = resp('MSET', ...Array.from({ length: 12 }, (_, i) => String(i)));
    const ok = feedChunks([Buffer.concat([resp('AUTH', 'pw'), big])], false);
    assert.equal(ok.parser.error, null);
    assert.equal(ok.commands.length, 2);
    const rejected = feedChunks([big], false);
    assert.equal(rejected.parser.error, 'Protocol error: unauthenticated multibulk length');
  });

  it('counts the unfinished command as query buffer', () => {
    const r = feedChunks([Buffer.from('*2\r\n$4\r\nECHO\r\n$100\r\n'), Buffer.alloc(50, 'y')]);
    assert.equal(r.parser.error, null);
    assert.equal(r.parser.queryBufferBytes, 4 + 10 + 6 + 50);
    r.parser.feed(Buffer.from('y'.repeat(50) + '\r\n*1\r\n$4\r\nPI'));
    assert.deepEqual(r.commands, [['ECHO', 'y'.repeat(100)]]);
    assert.equal(r.parser.queryBufferBytes, 4 + 4 + 2);
  });
});

// ---------------------------------------------------------------------------------------------
// Live server tests

/** Test-only commands to reach dispatcher paths the real families do not (yet) exercise. */
function testCommands(): CommandSpec[] {
  const base = { firstKey: 0, lastKey: 0, step: 0, acl: ['fast'], group: 'server', since: '7.0.0', summary: 'test' };
  return [
    ...allCommandSpecs(),
    { ...base, name: 'nullreply', arity: 1, flags: ['fast'], handler: (ctx) => ctx.reply.nullBulk() },
    { ...base, name: 'poolfull', arity: 1, flags: ['write'], handler: (ctx) => {
      ctx.reply.arrayHeader(2); // half a reply, which must be discarded
      throw new PoolFullError();
    } },
    { ...base, name: 'crash', arity: 1, flags: ['fast'], handler: () => {
      throw new Error('handler bug');
    } },
    { ...base, name: 'selfpush', arity: 1, flags: ['fast'], handler: (ctx) => {
      // Like a RESP3 client PUBLISHing to a channel it is subscribed to: the push precedes the reply.
      ctx.server.clients.get(ctx.client.id)!.deliver(Buffer.from('>1\r\n$4\r\npush\r\n'));
      ctx.reply.ok();
    } },
    { ...base, name: 'grow', arity: -2, flags: ['write', 'denyoom'], handler: (ctx) => ctx.reply.ok() },
    {
      ...base, name: 'box', arity: -2, flags: [],
      subcommands: [{ ...base, name: 'open', arity: 3, flags: ['fast'], handler: (ctx) => ctx.reply.ok() }],
    },
  ];
}

describe('server: protocol over real sockets', function () {
  this.timeout(30000);
  let t: TestServer;
  let real: RealRedis | null = null;

  before(async () => {
    t = await startServer({ commands: new CommandTable(testCommands()) });
    if (haveRealRedis()) real = await startRealRedis();
  });
  after(async () => {
    await t.close();
    if (real) await real.stop();
  });

  /** Same bytes to poolkv and redis-server; both must answer (and close) identically. */
  async function sameAsRedis(payload: string | Buffer): Promise<{ output: string; closed: boolean }> {
    const ours = await exchange(t.port, payload);
    if (real) {
      const theirs = await exchange(real.port, payload);
      assert.deepEqual(ours, theirs, `payload ${JSON.stringify(payload.toString())}`);
    }
    return ours;
  }

  async function assertServerAlive(): Promise<void> {
    const c = await RawClient.connect(t.port);
    c.write('PING\r\n');
    assert.equal(await c.expect('+PONG\r\n'), '+PONG\r\n');
    c.close();
  }

  it('answers inline commands, with quotes and escapes', async () => {
    const r = await sameAsRedis('PING\r\nECHO "hello world"\r\nECHO \'it\\\'s\'\nECHO "\\x41\\r\\n"\r\n\r\n   \r\nPING x\n');
    assert.equal(r.output, '+PONG\r\n$11\r\nhello world\r\n$4\r\nit\'s\r\n$3\r\nA\r\n\r\n$1\r\nx\r\n');
    assert.equal(r.closed, false);
  });

  it('handles inline and multibulk mixed in one packet', async () => {
    const payload = Buffer.concat([resp('ECHO', 'one'), Buffer.from('ECHO two\r\n'), resp('ECHO', 'three'), Buffer.from('PING\r\n')]);
    const r = await sameAsRedis(payload);
    assert.equal(r.output, '$3\r\none\r\n$3\r\ntwo\r\n$5\r\nthree\r\n+PONG\r\n');
  });

  it('handles commands split across writes', async () => {
    const c = await RawClient.connect(t.port);
    const payload = Buffer.concat([resp('ECHO', 'split me'), Buffer.from('ECHO "in line"\r\n')]);
    for (let i = 0; i < payload.length; i++) {
      c.write(payload.subarray(i, i + 1));
      await new Promise((r) => setImmediate(r));
    }
    assert.equal(await c.expect('$8\r\nsplit me\r\n$7\r\nin line\r\n'), '$8\r\nsplit me\r\n$7\r\nin line\r\n');
    c.close();
  });

  it('pipelines 1000 PINGs in one write, replies in order, one socket write per packet', async () => {
    const c = await RawClient.connect(t.port);
    const stats = t.server.stats;
    const readsBefore = stats.totalReadsProcessed;
    const writesBefore = stats.totalWritesProcessed;
    c.write(Buffer.concat(Array.from({ length: 1000 }, () => resp('PING'))));
    assert.equal(await c.expect('+PONG\r\n'.repeat(1000)), '+PONG\r\n'.repeat(1000));
    // However TCP cut the 14 KB into reads, each read was answered by exactly one socket write.
    assert.equal(stats.totalWritesProcessed - writesBefore, stats.totalReadsProcessed - readsBefore);
    const echoes = Array.from({ length: 1000 }, (_, i) => resp('ECHO', String(i)));
    c.write(Buffer.concat(echoes));
    const expected = Array.from({ length: 1000 }, (_, i) => `$${String(i).length}\r\n${i}\r\n`).join('');
    assert.equal(await c.expect(expected), expected);
    c.close();
  });

  describe('protocol errors close only the offending connection', () => {
    const cases: Array<[string, string | Buffer, string]> = [
      ['invalid multibulk length', '*abc\r\n', '-ERR Protocol error: invalid multibulk length\r\n'],
      ['negative zero multibulk length', '*-0\r\n', '-ERR Protocol error: invalid multibulk length\r\n'],
      ['element that is not a bulk', '*1\r\n+PING\r\n', "-ERR Protocol error: expected '$', got '+'\r\n"],
      ['integer element', '*2\r\n$4\r\nECHO\r\n:1\r\n', "-ERR Protocol error: expected '$', got ':'\r\n"],
      ['negative bulk length', '*1\r\n$-1\r\n', '-ERR Protocol error: invalid bulk length\r\n'],
      ['non-numeric bulk length', '*1\r\n$abc\r\n', '-ERR Protocol error: invalid bulk length\r\n'],
      ['leading-zero bulk length', '*1\r\n$04\r\nPING\r\n', '-ERR Protocol error: invalid bulk length\r\n'],
      ['bulk length over proto-max-bulk-len', '*1\r\n$536870913\r\n', '-ERR Protocol error: invalid bulk length\r\n'],
      ['unbalanced quotes', 'ECHO "abc\r\n', '-ERR Protocol error: unbalanced quotes in request\r\n'],
      ['closing quote followed by a letter', 'ECHO "a"b\r\n', '-ERR Protocol error: unbalanced quotes in request\r\n'],
    ];
    for (const [name, payload, reply] of cases) {
      it(name, async () => {
        const r = await sameAsRedis(payload);
        assert.deepEqual(r, { output: reply, closed: true });
        await assertServerAlive();
      });
    }

    it('commands before the error in the same packet still get replies', async () => {
      const r = await sameAsRedis(Buffer.concat([resp('PING'), Buffer.from('ECHO a\r\n*1\r\n$x\r\n'), resp('PING')]));
      assert.deepEqual(r, { output: '+PONG\r\n$1\r\na\r\n-ERR Protocol error: invalid bulk length\r\n', closed: true });
    });

    it('too big inline request (64 KiB without a newline)', async () => {
      const r = await sameAsRedis('A'.repeat(70 * 1024));
      assert.deepEqual(r, { output: '-ERR Protocol error: too big inline request\r\n', closed: true });
    });

    it('too big mbulk count string', async () => {
      const r = await sameAsRedis('*' + '1'.repeat(70 * 1024));
      assert.deepEqual(r, { output: '-ERR Protocol error: too big mbulk count string\r\n', closed: true });
    });

    it('too big bulk count string', async () => {
      const r = await sameAsRedis('*1\r\n$' + '1'.repeat(70 * 1024));
      assert.deepEqual(r, { output: '-ERR Protocol error: too big bulk count string\r\n', closed: true });
    });

    it('multibulk count above 1M (poolkv refuses it; redis 7.0 allows up to INT_MAX)', async () => {
      const r = await exchange(t.port, '*1048577\r\n');
      assert.deepEqual(r, { output: '-ERR Protocol error: invalid multibulk length\r\n', closed: true });
      const ok = await exchange(t.port, '*1048576\r\n');
      assert.deepEqual(ok, { output: '', closed: false });
    });

    it('an error in a later packet leaves other clients working mid-pipeline', async () => {
      const good = await RawClient.connect(t.port);
      const bad = await RawClient.connect(t.port);
      good.write(resp('ECHO', 'before'));
      assert.equal(await good.expect('$6\r\nbefore\r\n'), '$6\r\nbefore\r\n');
      bad.write('*1\r\n$4\r\nPI');
      bad.write('NG\r\n*1\r\n@\r\n');
      assert.equal(await bad.untilClosed(), "+PONG\r\n-ERR Protocol error: expected '$', got '@'\r\n");
      good.write(resp('ECHO', 'after'));
      assert.equal(await good.expect('$5\r\nafter\r\n'), '$5\r\nafter\r\n');
      good.close();
    });
  });

  it('rejects a huge bulk header without allocating it, and waits for a legal one', async () => {
    const before = process.memoryUsage().arrayBuffers;
    const r = await exchange(t.port, '*2\r\n$4\r\nECHO\r\n$9999999999\r\n');
    assert.deepEqual(r, { output: '-ERR Protocol error: invalid bulk length\r\n', closed: true });
    // The largest legal length is accepted: the server just waits for the payload.
    const c = await RawClient.connect(t.port);
    c.write('*2\r\n$4\r\nECHO\r\n$536870912\r\n');
    const waiting = await c.drain(200);
    assert.deepEqual(waiting, { output: '', closed: false });
    assert.ok(process.memoryUsage().arrayBuffers - before < 64 * MiB, 'no buffer sized by the header was allocated');
    c.close();
  });

  it('closes a client whose query buffer exceeds client-query-buffer-limit', async () => {
    t.config.set('client-query-buffer-limit', String(1 * MiB));
    try {
      const other = await RawClient.connect(t.port);
      const c = await RawClient.connect(t.port);
      c.write('*2\r\n$4\r\nECHO\r\n$4000000\r\n');
      const chunk = Buffer.alloc(64 * 1024, 'z');
      for (let sent = 0; sent < 2 * MiB && !c.closed; sent += chunk.length) {
        c.write(chunk);
        await new Promise((r) => setImmediate(r));
      }
      await c.untilClosed();
      assert.ok(t.log.has('Closing client that reached max query buffer length'));
      other.write('PING\r\n');
      assert.equal(await other.expect('+PONG\r\n'), '+PONG\r\n');
      other.close();
    } finally {
      t.config.set('client-query-buffer-limit', String(1024 * MiB));
    }
  });

  describe('dispatcher errors', () => {
    it('unknown command, with Redis truncation and sanitizing', async () => {
      const long = 'a'.repeat(100);
      const payload = Buffer.concat([
        Buffer.from(`FOO a b\r\nfOo ${long} ${'b'.repeat(100)} c\r\n${'X'.repeat(140)}\r\n`),
        resp('nosuch', 'line\nbreak', 'cr\rhere'),
        resp('nosuch', 'nul\0byte', '\xe9t\xe9'),
      ]);
      const r = await sameAsRedis(payload);
      assert.ok(r.output.startsWith("-ERR unknown command 'FOO', with args beginning with: 'a' 'b' \r\n"));
      assert.ok(r.output.includes(`-ERR unknown command 'fOo', with args beginning with: '${long}' '${'b'.repeat(25)}' \r\n`));
      assert.ok(r.output.includes("with args beginning with: 'line break' 'cr here' \r\n"));
    });

    it('wrong number of arguments', async () => {
      const r = await sameAsRedis('ECHO\r\nSELECT 1 2\r\nping a b\r\nAUTH\r\n');
      assert.equal(r.output, [
        "-ERR wrong number of arguments for 'echo' command\r\n",
        "-ERR wrong number of arguments for 'select' command\r\n",
        "-ERR wrong number of arguments for 'ping' command\r\n",
        "-ERR wrong number of arguments for 'auth' command\r\n",
      ].join(''));
    });

    it('unknown subcommand and subcommand arity', async () => {
      const r = await exchange(t.port, 'box nope\r\nbox\r\nBOX OPEN\r\nbox Open 1\r\n');
      assert.equal(r.output, [
        "-ERR unknown subcommand 'nope'. Try BOX HELP.\r\n",
        "-ERR wrong number of arguments for 'box' command\r\n",
        "-ERR wrong number of arguments for 'box|open' command\r\n",
        '+OK\r\n',
      ].join(''));
      if (real) {
        const theirs = await exchange(real.port, 'client nope\r\nclient\r\n');
        assert.equal(theirs.output, "-ERR unknown subcommand 'nope'. Try CLIENT HELP.\r\n-ERR wrong number of arguments for 'client' command\r\n");
      }
    });

    it('a PoolFullError in a handler becomes the OOM error and the half reply is discarded', async () => {
      const r = await exchange(t.port, 'poolfull\r\nPING\r\n');
      assert.equal(r.output, "-OOM command not allowed when used memory > 'maxmemory'.\r\n+PONG\r\n");
    });

    it('any other handler exception is logged, answered, and survived', async () => {
      const r = await exchange(t.port, 'crash\r\nPING\r\n');
      assert.equal(r.output, '-ERR internal error\r\n+PONG\r\n');
      assert.ok(t.log.lines.some((l) => l.message.includes('handler bug') && l.message.includes('at ')));
    });

    it('deliver() to the client being served keeps its place among the batch replies', async () => {
      const r = await exchange(t.port, 'PING\r\nselfpush\r\nPING\r\n');
      assert.equal(r.output, '+PONG\r\n>1\r\n$4\r\npush\r\n+OK\r\n+PONG\r\n');
    });

    it('denyoom commands are refused while over maxmemory', async () => {
      t.pool.maxmemory = 1;
      try {
        const r = await exchange(t.port, 'grow x\r\nPING\r\n');
        assert.equal(r.output, "-OOM command not allowed when used memory > 'maxmemory'.\r\n+PONG\r\n");
      } finally {
        t.pool.maxmemory = 0;
      }
      assert.equal((await exchange(t.port, 'grow x\r\n')).output, '+OK\r\n');
    });

    it('counts commands, errors, connections and bytes', async () => {
      const stats = t.server.stats;
      const commandsBefore = stats.totalCommandsProcessed;
      const errorsBefore = stats.totalErrorReplies;
      const connectionsBefore = stats.totalConnectionsReceived;
      const inBefore = stats.totalNetInputBytes;
      const outBefore = stats.totalNetOutputBytes;
      const r = await exchange(t.port, 'PING\r\nECHO\r\nnosuch\r\nSELECT x\r\n');
      assert.equal(stats.totalCommandsProcessed - commandsBefore, 2); // PING and SELECT ran
      assert.equal(stats.totalErrorReplies - errorsBefore, 3);
      assert.equal(stats.totalConnectionsReceived - connectionsBefore, 1);
      assert.equal(stats.totalNetInputBytes - inBefore, 'PING\r\nECHO\r\nnosuch\r\nSELECT x\r\n'.length);
      assert.equal(stats.totalNetOutputBytes - outBefore, r.output.length);
      const select = t.server.commands.get('select')!;
      assert.ok(select.calls >= 1 && select.failedCalls >= 1);
      assert.ok(t.server.commands.get('echo')!.rejectedCalls >= 1);
    });

    it('samples instantaneous_ops_per_sec', async () => {
      const c = await RawClient.connect(t.port);
      for (let i = 0; i < 5; i++) {
        c.write(Buffer.concat(Array.from({ length: 2000 }, () => resp('PING'))));
        await c.expect('+PONG\r\n'.repeat(2000));
        await new Promise((r) => setTimeout(r, 110));
      }
      assert.ok(t.server.stats.instantaneousOpsPerSec > 0);
      c.close();
    });
  });

  it('HELLO 3 switches the connection to RESP3 (null becomes _)', async () => {
    const c = await RawClient.connect(t.port);
    c.write('nullreply\r\n');
    assert.equal(await c.expect('$-1\r\n'), '$-1\r\n');
    c.write('HELLO 3\r\nnullreply\r\nHELLO 2\r\nnullreply\r\n');
    const { output } = await c.drain();
    const id = t.server.clients.list().at(-1)!.id;
    const map = (proto: number, header: string) => `${header}\r\n$6\r\nserver\r\n$5\r\nredis\r\n$7\r\nversion\r\n$6\r\n7.0.15\r\n` +
      `$5\r\nproto\r\n:${proto}\r\n$2\r\nid\r\n:${id}\r\n$4\r\nmode\r\n$10\r\nstandalone\r\n$4\r\nrole\r\n$6\r\nmaster\r\n$7\r\nmodules\r\n*0\r\n`;
    assert.equal(output, map(3, '%7') + '_\r\n' + map(2, '*14') + '$-1\r\n');
    c.close();
  });
});

describe('server: authentication and limits', function () {
  this.timeout(30000);
  let t: TestServer;
  let real: RealRedis | null = null;

  before(async () => {
    t = await startServer({ config: { requirepass: 'secret' } });
    if (haveRealRedis()) real = await startRealRedis(['--requirepass', 'secret']);
  });
  after(async () => {
    await t.close();
    if (real) await real.stop();
  });

  async function sameAsRedis(payload: string | Buffer): Promise<{ output: string; closed: boolean }> {
    const ours = await exchange(t.port, payload);
    if (real) assert.deepEqual(ours, await exchange(real.port, payload));
    return ours;
  }

  it('NOAUTH before AUTH; existence and arity are checked first; AUTH unlocks', async () => {
    const r = await sameAsRedis('PING\r\nFOO\r\nECHO\r\nAUTH wrong\r\nAUTH bob secret\r\nHELLO 3\r\n' +
      'AUTH secret\r\nPING\r\nECHO hi\r\nQUIT\r\nPING\r\n');
    assert.deepEqual(r, {
      output: [
        '-NOAUTH Authentication required.\r\n',
        "-ERR unknown command 'FOO', with args beginning with: \r\n",
        "-ERR wrong number of arguments for 'echo' command\r\n",
        '-WRONGPASS invalid username-password pair or user is disabled.\r\n',
        '-WRONGPASS invalid username-password pair or user is disabled.\r\n',
        '-NOAUTH HELLO must be called with the client already authenticated, otherwise the HELLO AUTH <user> <pass> ' +
          'option can be used to authenticate the client and select the RESP protocol version at the same time\r\n',
        '+OK\r\n+PONG\r\n$2\r\nhi\r\n+OK\r\n',
      ].join(''),
      closed: true,
    });
  });

  it('HELLO AUTH authenticates and switches protocol at once', async () => {
    const c = await RawClient.connect(t.port);
    c.write('HELLO 3 AUTH default nope\r\nPING\r\nHELLO 3 AUTH default secret SETNAME app\r\nnosuch\r\n');
    const { output } = await c.drain();
    assert.ok(output.startsWith('-WRONGPASS invalid username-password pair or user is disabled.\r\n' +
      '-NOAUTH Authentication required.\r\n%7\r\n'), output);
    assert.ok(output.includes(':3\r\n'));
    assert.equal(t.server.clients.list().find((cl) => cl.name === 'app')?.resp, 3);
    c.close();
  });

  it('unauthenticated clients get tight multibulk/bulk limits, lifted by AUTH in the same packet', async () => {
    assert.deepEqual(await sameAsRedis('*11\r\n'), { output: '-ERR Protocol error: unauthenticated multibulk length\r\n', closed: true });
    assert.deepEqual(await sameAsRedis('*1\r\n$16385\r\n'), { output: '-ERR Protocol error: unauthenticated bulk length\r\n', closed: true });
    assert.deepEqual(await sameAsRedis('*10\r\n$16384\r\n'), { output: '', closed: false });
    const r = await sameAsRedis(Buffer.concat([Buffer.from('AUTH secret\r\n'), resp('ECHO', 'x'.repeat(20000)), resp('PING', ...Array(10).fill('')).subarray(0, 6)]));
    assert.equal(r.output, `+OK\r\n$20000\r\n${'x'.repeat(20000)}\r\n`);
    assert.equal(r.closed, false);
  });
});

describe('server: maxclients', function () {
  this.timeout(30000);
  let t: TestServer;
  before(async () => {
    t = await startServer({ config: { maxclients: '2' } });
  });
  after(async () => {
    await t.close();
  });

  it('refuses the client past maxclients and counts it', async () => {
    const a = await RawClient.connect(t.port);
    const b = await RawClient.connect(t.port);
    a.write('PING\r\n');
    await a.expect('+PONG\r\n');
    b.write('PING\r\n');
    await b.expect('+PONG\r\n');
    const c = await RawClient.connect(t.port);
    assert.equal(await c.untilClosed(), '-ERR max number of clients reached\r\n');
    assert.equal(t.server.stats.rejectedConnections, 1);
    assert.equal(t.server.clients.connectedClients, 2);
    a.close();
    await new Promise((r) => setTimeout(r, 100));
    const d = await RawClient.connect(t.port);
    d.write('PING\r\n');
    assert.equal(await d.expect('+PONG\r\n'), '+PONG\r\n');
    b.close();
    d.close();
  });
});

describe('server: idle clients and out-of-band delivery', function () {
  this.timeout(30000);
  let t: TestServer;
  before(async () => {
    t = await startServer({ config: { timeout: '1' } });
  });
  after(async () => {
    await t.close();
  });

  it('closes clients idle longer than `timeout`, but not subscribers', async () => {
    const idle = await RawClient.connect(t.port);
    const subscriber = await RawClient.connect(t.port);
    subscriber.write('PING\r\n');
    await subscriber.expect('+PONG\r\n');
    t.server.clients.list().at(-1)!.subscriptions = 1;
    await idle.untilClosed(4000);
    assert.equal(subscriber.closed, false);
    subscriber.close();
  });

  it('deliver() to an idle client writes to its socket directly', async () => {
    const a = await RawClient.connect(t.port);
    a.write('PING\r\n');
    await a.expect('+PONG\r\n');
    const handle = [...t.server.clients.handles()].at(-1)!;
    handle.deliver(Buffer.from('>2\r\n$7\r\nmessage\r\n$1\r\nx\r\n'));
    assert.equal(await a.expect('>2\r\n$7\r\nmessage\r\n$1\r\nx\r\n'), '>2\r\n$7\r\nmessage\r\n$1\r\nx\r\n');
    a.close();
  });
});

describe('server: listening', function () {
  this.timeout(30000);

  it('binds every address, skipping unavailable "-" ones, and shares the picked port', async () => {
    // 192.0.2.0/24 is TEST-NET-1: never assigned to this host, so binding it fails with EADDRNOTAVAIL.
    const t = await startServer({ config: { bind: '-192.0.2.123 127.0.0.1 -::1' } });
    try {
      assert.ok(t.port > 0);
      assert.ok(t.log.has('Skipping optional bind address 192.0.2.123'));
      const c = await RawClient.connect(t.port, '127.0.0.1');
      c.write('PING\r\n');
      assert.equal(await c.expect('+PONG\r\n'), '+PONG\r\n');
      c.close();
      if (!t.log.has('Skipping optional bind address ::1')) {
        const v6 = await RawClient.connect(t.port, '::1');
        v6.write('PING\r\n');
        assert.equal(await v6.expect('+PONG\r\n'), '+PONG\r\n');
        assert.ok(t.server.clients.list().at(-1)!.addr.startsWith('[::1]:'));
        v6.close();
      }
    } finally {
      await t.close();
    }
  });

  it('fails to start when a required address cannot be bound', async () => {
    await assert.rejects(startServer({ config: { bind: '192.0.2.123' } }), /EADDRNOTAVAIL/);
  });
});
