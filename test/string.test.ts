// The string family, differentially: the same command sequences go to a real
// redis-server 7.0 and to poolkv-server, and the raw RESP replies (errors
// included) must be byte-for-byte the same. TTL replies are compared with a
// tolerance. Then a randomized run, and real clients (ioredis, node-redis).
import { strict as assert } from 'assert';
import { commands as stringCommands } from '../src/commands/string';
import {
  rawCommand, startPoolkv, startRedis, type RedisProcess,
} from './helpers/processes';
import { decode, expectSameReplies, runPipelined, show, showCmd, type Arg, type Cmd } from './helpers/differential';
import { rng } from './helpers/random';

const MiB = 1024 * 1024;


/** TTL-like replies may differ by the time between the two servers; everything else must be equal. */
function equivalent(cmd: Cmd, ours: Buffer, theirs: Buffer): boolean {
  if (ours.equals(theirs)) return true;
  const name = String(cmd[0]).toLowerCase();
  const tolerance = name === 'pttl' ? 1500 : name === 'ttl' ? 2 : 0;
  if (tolerance === 0) return false;
  const m1 = /^:(-?\d+)\r\n$/.exec(ours.toString('latin1'));
  const m2 = /^:(-?\d+)\r\n$/.exec(theirs.toString('latin1'));
  if (!m1 || !m2) return false;
  const a = Number(m1[1]);
  const b = Number(m2[1]);
  return a >= 0 && b >= 0 && Math.abs(a - b) <= tolerance;
}


describe('string commands (differential against redis-server 7.0)', function () {
  this.timeout(180000);
  let redis: RedisProcess;
  let poolkv: RedisProcess;

  before(async () => {
    [redis, poolkv] = await Promise.all([startRedis(), startPoolkv(['--pool-size', '256mb'])]);
  });
  after(async () => {
    await Promise.all([redis?.stop(), poolkv?.stop()]);
  });

  /** Run on both servers and assert every reply is the same; returns poolkv's replies as latin1 strings. */
  async function same(cmds: Cmd[], prefix: Cmd[] = []): Promise<string[]> {
    const ours = await expectSameReplies(poolkv.port, redis.port, cmds, prefix, equivalent);
    return ours.map((b) => b.toString('latin1'));
  }

  /** A distinct key namespace per test, so tests do not see each other's keys. */
  let testNo = 0;
  function ns(): (name: string) => string {
    const prefix = `t${++testNo}:`;
    return (name) => prefix + name;
  }

  it('declarations match COMMAND INFO and COMMAND DOCS of redis-server', async () => {
    for (const spec of stringCommands) {
      const info = decode(await rawCommand(redis.port, ['COMMAND', 'INFO', spec.name])) as unknown[][];
      const [name, arity, flags, firstKey, lastKey, step, acl] = info[0]!;
      assert.equal(name, spec.name);
      assert.equal(arity, spec.arity, `${spec.name} arity`);
      assert.deepEqual(flags, spec.flags, `${spec.name} flags`);
      assert.deepEqual([firstKey, lastKey, step], [spec.firstKey, spec.lastKey, spec.step], `${spec.name} keys`);
      assert.deepEqual(acl, spec.acl.map((c) => `@${c}`), `${spec.name} acl`);
      const docs = decode(await rawCommand(redis.port, ['COMMAND', 'DOCS', spec.name])) as unknown[];
      const fields = docs[1] as unknown[];
      const doc = new Map<string, unknown>();
      for (let i = 0; i < fields.length; i += 2) doc.set(String(fields[i]), fields[i + 1]);
      assert.equal(doc.get('summary'), spec.summary, `${spec.name} summary`);
      assert.equal(doc.get('since'), spec.since, `${spec.name} since`);
      assert.equal(doc.get('group'), spec.group, `${spec.name} group`);
      assert.equal(doc.get('complexity'), spec.complexity, `${spec.name} complexity`);
    }
    // And poolkv answers COMMAND INFO for them with the same first seven fields.
    for (const spec of stringCommands) {
      const [ours, theirs] = await Promise.all([
        rawCommand(poolkv.port, ['COMMAND', 'INFO', spec.name]), rawCommand(redis.port, ['COMMAND', 'INFO', spec.name]),
      ]);
      const a = (decode(ours) as unknown[][])[0]!.slice(0, 7);
      const b = (decode(theirs) as unknown[][])[0]!.slice(0, 7);
      assert.deepEqual(a, b, `COMMAND INFO ${spec.name}`);
    }
  });

  it('GET / SET basics, binary and empty values, arity errors', async () => {
    const k = ns();
    const binary = Buffer.from([0, 13, 10, 0, 255, 36, 45, 13, 10, 42, 0]);
    await same([
      ['GET', k('missing')],
      ['SET', k('a'), 'hello'], ['GET', k('a')],
      ['SET', k('a'), ''], ['GET', k('a')], ['STRLEN', k('a')],
      ['SET', k('bin'), binary], ['GET', k('bin')], ['STRLEN', k('bin')],
      ['SET', binary, binary], ['GET', binary],
      ['SET', k('int'), '12345'], ['GET', k('int')],
      ['SET', k('a')], ['GET'], ['GET', k('a'), k('b')], ['SET'],
      ['set', k('case'), 'v'], ['gEt', k('case')],
    ]);
  });

  it('SET: every option combination, on a missing key, a plain key and a key with a TTL', async () => {
    const k = ns();
    const nowS = Math.floor(Date.now() / 1000);
    const futureS = String(nowS + 5000);
    const futureMs = String((nowS + 5000) * 1000);
    const atoms: Cmd[] = [
      ['NX'], ['XX'], ['GET'], ['KEEPTTL'], ['EX', '1000'], ['PX', '900000'], ['EXAT', futureS], ['PXAT', futureMs],
      ['nx'], ['Get'], ['keepttl'], ['ex', '0'], ['PX', '-5'], ['EX', 'abc'], ['EXAT', '1'], ['PXAT', '1'], ['EX'], ['PERSIST'], ['FOO'],
    ];
    // All ordered pairs of atoms plus single atoms and some triples.
    const combos: Cmd[] = [[]];
    for (const a of atoms) combos.push(a);
    for (const a of atoms.slice(0, 12)) for (const b of atoms.slice(0, 12)) if (a !== b) combos.push([...a, ...b]);
    const triples: Cmd[] = [
      ['NX', 'GET', 'EX', '100'], ['XX', 'GET', 'KEEPTTL'], ['GET', 'XX', 'PX', '100000'], ['EX', '10', 'EX', '20', 'GET'],
      ['EX', 'abc', 'EX', '100'], ['PX', '100', 'EX', '100'], ['NX', 'XX', 'GET'], ['GET', 'GET', 'NX', 'NX'],
      ['KEEPTTL', 'KEEPTTL', 'XX'], ['EXAT', futureS, 'EXAT', '1'], ['EX', '9223372036854775'], ['EX', '9223372036854776'],
      ['PX', '9223372036854775807'], ['PXAT', '9223372036854775807'], ['EXAT', '9223372036854775'], ['EX', '-9223372036854775808'],
      ['EX', '99999999999999999999'], ['EX', '+5'], ['EX', '05'], ['EX', ' 5'], ['EX', '5.0'], [Buffer.from('nx\0junk')],
      [Buffer.from('EX\0'), '100'], ['EXAT', '1', 'GET'], ['PXAT', '1', 'XX', 'GET'],
    ];
    combos.push(...triples);
    const states: Cmd[][] = [
      [],
      [['SET', k('s'), 'old']],
      [['SET', k('s'), 'old', 'PX', '500000']],
      [['SET', k('s'), '1234567890123', 'EX', '700']],
    ];
    const cmds: Cmd[] = [];
    for (const state of states) {
      for (const opts of combos) {
        cmds.push(['DEL', k('s')], ...state, ['SET', k('s'), 'new', ...opts], ['GET', k('s')], ['PTTL', k('s')], ['EXISTS', k('s')]);
      }
    }
    await same(cmds);
  });

  it('SET with an absolute time in the past: the key reads as missing', async () => {
    const k = ns();
    await same([
      ['SET', k('p'), 'v', 'EXAT', '1'], ['GET', k('p')], ['EXISTS', k('p')], ['TTL', k('p')],
      ['SET', k('q'), 'v'], ['SET', k('q'), 'w', 'PXAT', '1000', 'GET'], ['GET', k('q')],
      ['SET', k('r'), 'v', 'PXAT', String(Date.now() - 10)], ['STRLEN', k('r')], ['APPEND', k('r'), 'x'], ['GET', k('r')],
    ]);
  });

  it('SETNX, SETEX, PSETEX', async () => {
    const k = ns();
    await same([
      ['SETNX', k('a'), 'one'], ['SETNX', k('a'), 'two'], ['GET', k('a')],
      ['SETEX', k('b'), '100', 'v'], ['TTL', k('b')], ['GET', k('b')],
      ['SETEX', k('b'), '0', 'v'], ['SETEX', k('b'), '-1', 'v'], ['SETEX', k('b'), 'x', 'v'], ['SETEX', k('b'), '1.5', 'v'],
      ['SETEX', k('b'), '9223372036854775', 'v'], ['SETEX', k('b'), '9223372036854776', 'v'],
      ['PSETEX', k('c'), '100000', 'v'], ['PTTL', k('c')], ['GET', k('c')],
      ['PSETEX', k('c'), '0', 'v'], ['PSETEX', k('c'), '-100', 'v'], ['PSETEX', k('c'), 'abc', 'v'],
      ['PSETEX', k('c'), '9223372036854775807', 'v'], ['PSETEX', k('c'), '9223372036854775808', 'v'],
      ['SET', k('c'), 'plain'], ['TTL', k('c')],
      ['SETEX', k('b'), '100'], ['PSETEX', k('b')], ['SETNX', k('a')], ['SETNX', k('a'), 'b', 'c'],
    ]);
  });

  it('MGET, MSET, MSETNX', async () => {
    const k = ns();
    await same([
      ['MSET', k('a'), '1', k('b'), '2', k('c'), ''], ['MGET', k('a'), k('b'), k('c'), k('nope')],
      ['MSET', k('a'), '1', k('b')], ['MSET', k('a')], ['MGET'],
      ['MSET', k('d'), 'x', k('d'), 'y'], ['GET', k('d')],
      ['SET', k('t'), 'v', 'EX', '100'], ['MSET', k('t'), 'w'], ['TTL', k('t')],
      ['MSETNX', k('a'), 'z', k('new1'), 'z'], ['EXISTS', k('new1')],
      ['MSETNX', k('new1'), 'p', k('new2'), 'q'], ['MGET', k('new1'), k('new2')],
      ['MSETNX', k('dup'), '1', k('dup'), '2'], ['GET', k('dup')],
      ['MSETNX', k('x'), '1', k('y')], ['MSETNX', k('x')],
      ['MGET', k('a'), k('a'), k('a')],
    ]);
  });

  it('GETSET, GETDEL, GETEX with every option', async () => {
    const k = ns();
    const future = String(Math.floor(Date.now() / 1000) + 3000);
    const futureMs = String(Date.now() + 3000000);
    await same([
      ['GETSET', k('a'), 'one'], ['GETSET', k('a'), 'two'], ['GET', k('a')],
      ['SET', k('t'), 'v', 'EX', '100'], ['GETSET', k('t'), 'w'], ['TTL', k('t')],
      ['GETDEL', k('a')], ['GETDEL', k('a')], ['EXISTS', k('a')],
      ['SET', k('g'), 'val'],
      ['GETEX', k('g')], ['TTL', k('g')],
      ['GETEX', k('g'), 'EX', '100'], ['TTL', k('g')],
      ['GETEX', k('g'), 'PX', '200000'], ['PTTL', k('g')],
      ['GETEX', k('g'), 'EXAT', future], ['TTL', k('g')],
      ['GETEX', k('g'), 'PXAT', futureMs], ['PTTL', k('g')],
      ['GETEX', k('g'), 'PERSIST'], ['TTL', k('g')],
      ['GETEX', k('g'), 'persist'], ['GETEX', k('g'), 'ex', '10', 'ex', '20'], ['TTL', k('g')],
      ['GETEX', k('g'), 'EX', '10', 'PERSIST'], ['GETEX', k('g'), 'PERSIST', 'EX', '10'],
      ['GETEX', k('g'), 'EX', '10', 'PX', '100'], ['GETEX', k('g'), 'KEEPTTL'], ['GETEX', k('g'), 'NX'],
      ['GETEX', k('g'), 'GET'], ['GETEX', k('g'), 'EX'], ['GETEX', k('g'), 'FOO'],
      ['GETEX', k('g'), 'EX', '0'], ['GETEX', k('g'), 'EX', '-1'], ['GETEX', k('g'), 'EX', 'x'],
      ['GETEX', k('g'), 'PX', '9223372036854775807'], ['GETEX', k('g'), 'EX', '9223372036854776'],
      ['GETEX', k('missing'), 'EX', 'abc'], ['GETEX', k('missing'), 'EX', '0'], ['GETEX', k('missing'), 'FOO'],
      ['GETEX', k('missing')],
      ['TTL', k('g')], ['GETEX', k('g'), 'EXAT', '1'], ['EXISTS', k('g')],
      ['SET', k('h'), 'v'], ['GETEX', k('h'), 'PXAT', String(Date.now() - 1)], ['GET', k('h')],
      ['GETSET', k('a')], ['GETDEL'], ['GETEX'],
    ]);
  });

  it('APPEND and STRLEN, including binary data and growth past 512 KiB', async () => {
    const k = ns();
    const cmds: Cmd[] = [
      ['APPEND', k('a'), 'hello'], ['APPEND', k('a'), ' world'], ['GET', k('a')], ['STRLEN', k('a')],
      ['APPEND', k('e'), ''], ['EXISTS', k('e')], ['STRLEN', k('e')], ['APPEND', k('e'), ''],
      ['APPEND', k('b'), Buffer.from([0, 13, 10])], ['APPEND', k('b'), Buffer.from([0xff, 0])], ['GET', k('b')],
      ['SET', k('n'), '12'], ['APPEND', k('n'), '34'], ['GET', k('n')], ['INCR', k('n')],
      ['SET', k('t'), 'v', 'EX', '100'], ['APPEND', k('t'), 'w'], ['TTL', k('t')],
      ['STRLEN', k('missing')], ['APPEND', k('a')], ['STRLEN'],
    ];
    // Grow one value across the inline-chunk / page-chain boundary (512 KiB) and beyond 1 MiB.
    for (let i = 0; i < 45; i++) {
      cmds.push(['APPEND', k('grow'), String.fromCharCode(97 + (i % 26)).repeat(30011)]);
      if (i % 5 === 0) cmds.push(['STRLEN', k('grow')], ['GETRANGE', k('grow'), '-40', '-1']);
    }
    cmds.push(['GET', k('grow')], ['GETRANGE', k('grow'), '524270', '524300'], ['GETRANGE', k('grow'), '1048560', '1048600']);
    await same(cmds);
  });

  it('values from 1 byte to 5 MiB round-trip (inline and page-chain storage)', async () => {
    const k = ns();
    const sizes = [1, 2, 43, 44, 45, 100, 1000, 4096, 65535, 65536, 262144, 524255, 524256, 524288, 524289, 1048568, 1048576, 3 * MiB + 7, 5 * MiB];
    const cmds: Cmd[] = [];
    sizes.forEach((size, i) => {
      const v = Buffer.alloc(size);
      for (let j = 0; j < size; j++) v[j] = (j * 31 + i) & 0xff;
      cmds.push(['SET', k(`v${size}`), v], ['STRLEN', k(`v${size}`)], ['GET', k(`v${size}`)],
        ['GETRANGE', k(`v${size}`), String(Math.floor(size / 2)), String(Math.floor(size / 2) + 100)]);
    });
    cmds.push(['MGET', ...sizes.map((s) => k(`v${s}`))]);
    // Replace a large value by a small one and back.
    cmds.push(['SET', k('swap'), 'x'.repeat(2 * MiB)], ['SET', k('swap'), 'small'], ['GET', k('swap')],
      ['SET', k('swap'), 'y'.repeat(MiB + 1)], ['STRLEN', k('swap')], ['GETDEL', k('swap')], ['GET', k('swap')]);
    await same(cmds);
  });

  it('INCR, DECR, INCRBY, DECRBY: parsing rules and 64-bit overflow boundaries', async () => {
    const k = ns();
    const max = '9223372036854775807';
    const min = '-9223372036854775808';
    await same([
      ['INCR', k('a')], ['INCR', k('a')], ['DECR', k('a')], ['DECR', k('d')], ['INCRBY', k('a'), '100'], ['DECRBY', k('a'), '50'],
      ['SET', k('m'), String(2 ** 53 - 1)], ['INCR', k('m')], ['INCR', k('m')], ['INCRBY', k('m'), String(2 ** 53)],
      ['SET', k('m'), String(-(2 ** 53))], ['DECR', k('m')], ['DECRBY', k('m'), String(2 ** 53)],
      ['SET', k('x'), max], ['INCR', k('x')], ['INCRBY', k('x'), '0'], ['DECR', k('x')], ['INCRBY', k('x'), '1'], ['INCRBY', k('x'), '1'],
      ['SET', k('y'), min], ['DECR', k('y')], ['DECRBY', k('y'), '1'], ['INCRBY', k('y'), '-1'], ['INCRBY', k('y'), max], ['GET', k('y')],
      ['DECRBY', k('y'), min], ['DECRBY', k('missing'), min], ['INCRBY', k('z'), min], ['INCRBY', k('z'), '-1'], ['GET', k('z')],
      ['SET', k('z'), '0'], ['DECRBY', k('z'), max], ['DECR', k('z')], ['DECR', k('z')],
      ['INCRBY', k('a'), '9223372036854775808'], ['INCRBY', k('a'), '-9223372036854775809'],
      ['INCRBY', k('a'), '+1'], ['INCRBY', k('a'), ' 1'], ['INCRBY', k('a'), '1 '], ['INCRBY', k('a'), '01'], ['INCRBY', k('a'), '-0'],
      ['INCRBY', k('a'), '1.0'], ['INCRBY', k('a'), ''], ['INCRBY', k('a'), '-'], ['INCRBY', k('a'), '0x10'], ['INCRBY', k('a'), '1e3'],
      ['SET', k('s'), 'abc'], ['INCR', k('s')], ['SET', k('s'), ''], ['INCR', k('s')], ['SET', k('s'), '007'], ['INCR', k('s')],
      ['SET', k('s'), ' 7'], ['INCR', k('s')], ['SET', k('s'), '7.0'], ['INCR', k('s')], ['SET', k('s'), '99999999999999999999'], ['INCR', k('s')],
      ['SET', k('s'), '-0'], ['DECR', k('s')], ['SET', k('s'), Buffer.from('5\0')], ['INCR', k('s')],
      ['SET', k('t'), '10', 'EX', '100'], ['INCR', k('t')], ['TTL', k('t')], ['INCRBY', k('t'), '5'], ['GET', k('t')],
      ['INCR'], ['INCR', k('a'), 'b'], ['INCRBY', k('a')], ['DECRBY', k('a'), '1', '2'],
    ]);
  });

  it('INCRBYFLOAT: long double precision, formatting, parsing and errors', async () => {
    const k = ns();
    const steps: Array<[string, string]> = [
      ['f1', '10.5'], ['f1', '0.1'], ['f1', '3.0e3'], ['f1', '-5.0e3'], ['f1', '1e-17'], ['f1', '0.00000000000000001'],
      ['f2', '5.0e3'], ['f2', '2.0e2'], ['f2', '0.3333333333333333333333'], ['f2', '-200'],
      ['f3', '1e300'], ['f3', '1e300'], ['f4', '-1e-300'], ['f5', '1.18973149535723176502e4932'], ['f6', '1e4932'], ['f6', '1e4932'],
      ['f7', '0x1p3'], ['f7', '0X1.8P1'], ['f7', '.5'], ['f7', '5.'], ['f7', '+1.5'], ['f7', '-.25e1'],
      ['f8', 'inf'], ['f8', '-inf'], ['f8', 'Infinity'], ['f8', 'nan'], ['f8', 'NaN'], ['f8', '1e5000'], ['f8', '1e-5000'],
      ['f8', 'abc'], ['f8', ''], ['f8', ' 1'], ['f8', '1 '], ['f8', '1e'], ['f8', '0x'], ['f8', '1..2'], ['f8', '--1'],
      ['f9', '1.1'], ['f9', '2.2'], ['f9', '3.3'], ['f9', '-6.6'], ['f9', '1e-4940'], ['f9', '4e-4951'],
      ['f10', '123456789012345678'], ['f10', '0.5'], ['f10', '9223372036854775807'], ['f10', '1'],
      ['f11', '-0'], ['f11', '0'], ['f11', '-1e-30'],
    ];
    const cmds: Cmd[] = steps.map(([key, incr]) => ['INCRBYFLOAT', k(key), incr]);
    cmds.push(
      ['SET', k('s'), '  1'], ['INCRBYFLOAT', k('s'), '1'], ['SET', k('s'), 'x'], ['INCRBYFLOAT', k('s'), '1'],
      ['SET', k('s'), '5'], ['INCRBYFLOAT', k('s'), Buffer.from('1\0')], ['INCRBYFLOAT', k('s'), Buffer.from('\0')],
      ['SET', k('s'), '1e3'], ['INCRBYFLOAT', k('s'), '0'], ['SET', k('s'), '0x10'], ['INCRBYFLOAT', k('s'), '1'],
      ['SET', k('s'), 'inf'], ['INCRBYFLOAT', k('s'), '1'], ['SET', k('s'), 'nan'], ['INCRBYFLOAT', k('s'), '1'],
      ['SET', k('s'), '1.5', 'EX', '100'], ['INCRBYFLOAT', k('s'), '1'], ['TTL', k('s')],
      ['SET', k('s'), 'y'.repeat(6000)], ['INCRBYFLOAT', k('s'), '1'], ['INCRBYFLOAT', k('s2'), '1'.repeat(5119)],
      ['INCRBYFLOAT', k('s3'), '1'.repeat(5120)], ['INCRBYFLOAT', k('s4'), `0.${'3'.repeat(5000)}`],
      ['INCRBYFLOAT', k('s')], ['INCRBYFLOAT'],
    );
    await same(cmds);
    // Repeated small increments accumulate as long double does.
    const acc: Cmd[] = [];
    for (let i = 0; i < 200; i++) acc.push(['INCRBYFLOAT', k('acc'), i % 3 === 0 ? '0.1' : i % 3 === 1 ? '-0.07' : '1.23e-3']);
    await same(acc);
  });

  it('GETRANGE and SUBSTR index arithmetic', async () => {
    const k = ns();
    const cmds: Cmd[] = [['SET', k('s'), 'This is a string'], ['SET', k('e'), ''], ['SET', k('i'), '1234567']];
    const idx = ['0', '1', '3', '-1', '-3', '-16', '-17', '-100', '15', '16', '100', '9223372036854775807',
      '-9223372036854775808', '9007199254740993', '-9007199254740993', '-9007199254740992'];
    for (const key of ['s', 'e', 'i', 'missing']) {
      for (const a of idx) for (const b of idx) cmds.push(['GETRANGE', k(key), a, b]);
    }
    cmds.push(['SUBSTR', k('s'), '0', '3'], ['SUBSTR', k('s'), '-3', '-1'], ['GETRANGE', k('s'), 'a', '1'],
      ['GETRANGE', k('s'), '1', 'b'], ['GETRANGE', k('s'), '1.5', '2'], ['GETRANGE', k('s'), '9223372036854775808', '1'],
      ['GETRANGE', k('missing'), 'x', '1'], ['GETRANGE', k('s'), '0'], ['SUBSTR', k('s')]);
    await same(cmds);
  });

  it('SETRANGE: zero padding, big offsets, and errors', async () => {
    const k = ns();
    await same([
      ['SET', k('a'), 'Hello World'], ['SETRANGE', k('a'), '6', 'Redis'], ['GET', k('a')],
      ['SETRANGE', k('b'), '6', 'Redis'], ['GET', k('b')], ['STRLEN', k('b')],
      ['SETRANGE', k('a'), '0', ''], ['SETRANGE', k('missing'), '100', ''], ['EXISTS', k('missing')],
      ['SETRANGE', k('missing'), '9223372036854775807', ''], ['SETRANGE', k('missing'), '-1', ''],
      ['SETRANGE', k('a'), '-1', 'x'], ['SETRANGE', k('a'), 'x', 'y'], ['SETRANGE', k('a'), '1.5', 'y'],
      ['SETRANGE', k('a'), '9223372036854775807', 'x'], ['SETRANGE', k('a'), '9223372036854775806', 'xy'],
      ['SETRANGE', k('a'), '536870911', 'xy'], ['SETRANGE', k('c'), '536870912', 'x'],
      ['SETRANGE', k('a'), '9223372036854775808', 'x'], ['STRLEN', k('a')],
      ['SETRANGE', k('p'), '1000000', 'tail'], ['STRLEN', k('p')], ['GETRANGE', k('p'), '999990', '-1'],
      ['SETRANGE', k('p'), '524280', Buffer.from([1, 2, 0, 3, 13, 10, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14])],
      ['GETRANGE', k('p'), '524270', '524310'], ['SETRANGE', k('p'), '0', 'head'], ['GETRANGE', k('p'), '0', '10'],
      ['SETRANGE', k('p'), '3000000', 'far'], ['STRLEN', k('p')], ['GETRANGE', k('p'), '2999990', '-1'],
      ['SET', k('n'), '12345'], ['SETRANGE', k('n'), '1', '9'], ['GET', k('n')], ['INCR', k('n')],
      ['SET', k('t'), 'abc', 'EX', '100'], ['SETRANGE', k('t'), '5', 'z'], ['TTL', k('t')], ['GET', k('t')],
      ['SETRANGE', k('a'), '1'], ['SETRANGE'],
    ]);
  });

  it('LCS: the examples from the Redis docs, options and errors', async () => {
    const k = ns();
    await same([
      ['MSET', k('key1'), 'ohmytext', k('key2'), 'mynewtext'],
      ['LCS', k('key1'), k('key2')], ['LCS', k('key1'), k('key2'), 'LEN'], ['LCS', k('key1'), k('key2'), 'IDX'],
      ['LCS', k('key1'), k('key2'), 'IDX', 'MINMATCHLEN', '4'], ['LCS', k('key1'), k('key2'), 'IDX', 'MINMATCHLEN', '4', 'WITHMATCHLEN'],
      ['LCS', k('key1'), k('key2'), 'IDX', 'WITHMATCHLEN'], ['LCS', k('key1'), k('key2'), 'idx', 'minmatchlen', '-5', 'withmatchlen'],
      ['LCS', k('key1'), k('key2'), 'IDX', 'MINMATCHLEN', '9223372036854775807'],
      ['LCS', k('key1'), k('key2'), 'LEN', 'IDX'], ['LCS', k('key1'), k('key2'), 'IDX', 'LEN', 'WITHMATCHLEN'],
      ['LCS', k('key1'), k('key2'), 'MINMATCHLEN'], ['LCS', k('key1'), k('key2'), 'MINMATCHLEN', 'x'],
      ['LCS', k('key1'), k('key2'), 'FOO'], ['LCS', k('key1'), k('key2'), 'FOO', 'MINMATCHLEN', 'x'],
      ['LCS', k('key1'), k('key2'), 'MINMATCHLEN', 'x', 'FOO'], ['LCS', k('key1'), k('key2'), 'LEN', 'LEN'],
      ['LCS', k('key1'), k('nokey')], ['LCS', k('nokey'), k('nokey2'), 'IDX'], ['LCS', k('nokey'), k('key2'), 'LEN'],
      ['LCS', k('key1'), k('key1'), 'IDX', 'WITHMATCHLEN'],
      ['MSET', k('a'), 'ABCBDAB', k('b'), 'BDCABA'], ['LCS', k('a'), k('b')], ['LCS', k('a'), k('b'), 'IDX', 'WITHMATCHLEN'],
      ['MSET', k('c'), Buffer.from([0, 1, 2, 13, 10, 3]), k('d'), Buffer.from([1, 13, 10, 9, 3, 0])],
      ['LCS', k('c'), k('d')], ['LCS', k('c'), k('d'), 'IDX'],
      ['MSET', k('x'), 'a'.repeat(300) + 'xyz' + 'b'.repeat(200), k('y'), 'b'.repeat(150) + 'xyz' + 'a'.repeat(250)],
      ['LCS', k('x'), k('y'), 'LEN'], ['LCS', k('x'), k('y'), 'IDX', 'MINMATCHLEN', '3', 'WITHMATCHLEN'],
      ['LCS', k('key1')], ['LCS'],
    ]);
  });

  it('replies under RESP3 (HELLO 3)', async () => {
    const k = ns();
    await same([
      ['SET', k('a'), 'v'], ['GET', k('a')], ['GET', k('missing')], ['MGET', k('a'), k('missing')],
      ['SET', k('a'), 'w', 'NX'], ['SET', k('a'), 'w', 'XX', 'GET'], ['SET', k('m'), 'w', 'XX'], ['SET', k('m'), 'w', 'NX', 'GET'],
      ['GETEX', k('missing')], ['GETDEL', k('missing')], ['GETSET', k('missing'), 'x'],
      ['INCRBYFLOAT', k('f'), '1.5'], ['INCR', k('i')], ['STRLEN', k('a')], ['GETRANGE', k('missing'), '0', '1'],
      ['MSET', k('key1'), 'ohmytext', k('key2'), 'mynewtext'], ['LCS', k('key1'), k('key2'), 'IDX', 'WITHMATCHLEN'],
      ['LCS', k('key1'), k('key2')], ['LCS', k('key1'), k('key2'), 'LEN'], ['SETNX', k('a'), 'x'], ['MSETNX', k('a'), 'x'],
      ['INCR', k('a')], ['SET', k('a'), 'v', 'EX', '0'],
    ], [['HELLO', '3']]);
  });

  it('randomized: thousands of string commands over a small key set', async () => {
    const seed = Number(process.env.STRING_FUZZ_SEED ?? Date.now() % 1000000);
    const rand = rng(seed);
    const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rand() * xs.length)]!;
    const int = (n: number): number => Math.floor(rand() * n);
    const keys = ['r:a', 'r:b', 'r:c', 'r:d', 'r:e', 'r:f'].map((x) => `${x}:${seed}`);
    const now = Date.now();
    const values: Array<() => Arg> = [
      () => String(int(100) - 50), () => String(int(2 ** 31)), () => pick(['9223372036854775806', '-9223372036854775807', '0', '-1']),
      () => pick(['1.5', '-0.25', '3.0e3', '.5', '0x1p4', '1e-3', '10.5', 'inf', 'abc', '']),
      () => 'x'.repeat(int(70)), () => Buffer.from([int(256), 13, 10, 0, int(256)]), () => pick(['hello', 'world', 'ohmytext', 'mynewtext']),
    ];
    const value = (): Arg => pick(values)();
    const ttlOpt = (): Arg[] => pick<Arg[]>([
      ['EX', String(100 + int(900))], ['PX', String(100000 + int(900000))], ['EXAT', String(Math.floor(now / 1000) + 2000 + int(1000))],
      ['PXAT', String(now + 2000000 + int(100000))], ['PXAT', String(1 + int(1000))], ['EX', pick(['0', '-1', 'x'])],
    ]);
    const floats = ['1', '-1', '0.1', '-2.5', '1e2', '3.0e3', '1e-10', '0x10', 'abc', 'inf', '1e400', '7'];
    const ints = ['1', '-1', '0', '100', '-100', '9223372036854775807', '-9223372036854775808', 'x', '+1', '2147483648'];
    const gen: Array<() => Cmd> = [
      () => ['SET', pick(keys), value()],
      () => ['SET', pick(keys), value(), ...pick<Arg[]>([[], ['NX'], ['XX'], ['GET'], ['KEEPTTL'], ['NX', 'GET'], ['XX', 'GET'], ['XX', 'KEEPTTL']]),
        ...(rand() < 0.4 ? ttlOpt() : [])],
      () => ['SETNX', pick(keys), value()],
      () => ['SETEX', pick(keys), pick(['100', '0', 'x', '5000']), value()],
      () => ['PSETEX', pick(keys), pick(['100000', '0', '-3', '5000000']), value()],
      () => ['GET', pick(keys)],
      () => ['MGET', ...Array.from({ length: 1 + int(4) }, () => pick(keys))],
      () => ['MSET', ...Array.from({ length: 1 + int(3) }, () => [pick(keys), value()]).flat()],
      () => ['MSETNX', ...Array.from({ length: 1 + int(2) }, () => [pick(keys), value()]).flat()],
      () => ['GETSET', pick(keys), value()],
      () => ['GETDEL', pick(keys)],
      () => ['GETEX', pick(keys), ...pick<Arg[]>([[], ['PERSIST'], ttlOpt(), ['NX'], ttlOpt()])],
      () => ['APPEND', pick(keys), value()],
      () => ['STRLEN', pick(keys)],
      () => ['INCR', pick(keys)],
      () => ['DECR', pick(keys)],
      () => ['INCRBY', pick(keys), pick(ints)],
      () => ['DECRBY', pick(keys), pick(ints)],
      () => ['INCRBYFLOAT', pick(keys), pick(floats)],
      () => [pick(['GETRANGE', 'SUBSTR']), pick(keys), String(int(20) - 10), String(int(40) - 10)],
      () => ['SETRANGE', pick(keys), pick(['0', '1', '5', '30', '-1', 'x']), value()],
      () => ['LCS', pick(keys), pick(keys), ...pick<Arg[]>([[], ['LEN'], ['IDX'], ['IDX', 'WITHMATCHLEN'], ['IDX', 'MINMATCHLEN', '2'], ['LEN', 'IDX']])],
      () => ['TTL', pick(keys)],
      () => ['EXISTS', pick(keys)],
      () => ['DEL', pick(keys)],
    ];
    const cmds: Cmd[] = [];
    for (let i = 0; i < 4000; i++) cmds.push(pick(gen)());
    try {
      await same(cmds);
    } catch (err) {
      (err as Error).message = `seed ${seed} (STRING_FUZZ_SEED=${seed} replays it): ${(err as Error).message}`;
      throw err;
    }
  });

  describe('with proto-max-bulk-len 1mb', () => {
    let smallRedis: RedisProcess;
    let smallPoolkv: RedisProcess;
    before(async () => {
      [smallRedis, smallPoolkv] = await Promise.all([
        startRedis(['--proto-max-bulk-len', '1mb']), startPoolkv(['--proto-max-bulk-len', '1mb']),
      ]);
    });
    after(async () => {
      await Promise.all([smallRedis?.stop(), smallPoolkv?.stop()]);
    });

    it('APPEND, SETRANGE and LCS refuse results over the limit', async () => {
      const cmds: Cmd[] = [
        ['SET', 'a', 'x'.repeat(MiB - 10)], ['APPEND', 'a', '0123456789'], ['APPEND', 'a', 'z'], ['STRLEN', 'a'],
        ['SETRANGE', 'a', String(MiB - 1), 'y'], ['SETRANGE', 'a', String(MiB - 1), 'yz'], ['SETRANGE', 'b', String(MiB), 'q'],
        ['SETRANGE', 'b', String(MiB - 1), 'q'], ['STRLEN', 'b'], ['SETRANGE', 'c', String(MiB), ''],
        ['MSET', 'l1', 'a'.repeat(600), 'l2', 'b'.repeat(600)], ['LCS', 'l1', 'l2', 'LEN'],
        ['MSET', 'l3', 'a'.repeat(500), 'l4', 'b'.repeat(400)], ['LCS', 'l3', 'l4', 'LEN'],
      ];
      const [ours, theirs] = await Promise.all([runPipelined(smallPoolkv.port, cmds), runPipelined(smallRedis.port, cmds)]);
      for (let i = 0; i < cmds.length; i++) {
        assert.ok(ours[i]!.equals(theirs[i]!), `${showCmd(cmds[i]!)}\n  poolkv: ${show(ours[i]!)}\n  redis:  ${show(theirs[i]!)}`);
      }
    });
  });

  describe('a full pool (16 MiB)', () => {
    let tiny: RedisProcess;
    before(async () => {
      tiny = await startPoolkv(['--pool-size', '16mb']);
    });
    after(async () => {
      await tiny?.stop();
    });

    /** One command on the tiny server, its reply as text. */
    async function q(...args: Arg[]): Promise<string> {
      return (await rawCommand(tiny.port, args, { timeoutMs: 30000 })).toString('latin1');
    }

    it('a command that runs out of pool memory changes nothing', async () => {
      const OOM = "-OOM command not allowed when used memory > 'maxmemory'.\r\n";
      const chunk = 'v'.repeat(700 * 1024);
      // Fill the pool with large values until it refuses one.
      let stored = 0;
      for (; stored < 64; stored++) {
        const r = await q('SET', `fill:${stored}`, chunk);
        if (r !== '+OK\r\n') {
          assert.equal(r, OOM);
          break;
        }
      }
      assert.ok(stored > 4 && stored < 64, `stored ${stored} values`);
      // Leave a few pages free: enough to start growing a value, not to finish.
      await q('DEL', 'fill:2', 'fill:3');
      await q('SET', 'small', 'before');
      await q('SET', 'ttl', 'kept', 'EX', '1000');
      const snapshot = async (): Promise<string[]> => [
        await q('GET', 'small'), await q('GET', 'ttl'), await q('STRLEN', 'fill:0'), await q('STRLEN', 'fill:1'),
        await q('EXISTS', 'new1'), await q('EXISTS', 'new2'), await q('EXISTS', 'new3'), await q('DBSIZE'),
      ];
      const usedMemory = async (): Promise<string> => /used_memory:(\d+)/.exec(await q('INFO', 'memory'))?.[1] ?? '?';
      const before = await snapshot();
      const memoryBefore = await usedMemory();
      const big = 'x'.repeat(3 * MiB);
      assert.equal(await q('SET', 'small', big), OOM);
      assert.equal(await q('SET', 'new1', big), OOM);
      assert.equal(await q('SET', 'small', big, 'GET'), OOM);
      assert.equal(await q('MSET', 'small', 'changed', 'ttl', 'changed', 'new1', big, 'new2', big), OOM);
      assert.equal(await q('MSET', 'new1', 'a', 'new2', big, 'new3', big), OOM);
      assert.equal(await q('MSETNX', 'new1', 'a', 'new2', big, 'new3', big), OOM);
      assert.equal(await q('APPEND', 'small', big), OOM);
      assert.equal(await q('SETRANGE', 'small', String(4 * MiB), 'x'), OOM);
      assert.equal(await q('SETRANGE', 'new1', String(4 * MiB), 'x'), OOM);
      assert.equal(await q('SETRANGE', 'fill:0', String(9 * MiB), 'x'), OOM);
      assert.deepEqual(await snapshot(), before);
      assert.equal(await usedMemory(), memoryBefore, 'failed commands left memory allocated');
      assert.ok(Number((await q('TTL', 'ttl')).slice(1)) > 900);
      // Freeing memory makes the same commands work.
      for (let i = 0; i < stored; i++) await q('DEL', `fill:${i}`);
      assert.equal(await q('MSET', 'new1', 'a', 'new2', big), '+OK\r\n');
      assert.equal(await q('STRLEN', 'new2'), `:${big.length}\r\n`);
    });
  });

  describe('real clients against poolkv', () => {
    it('ioredis', async () => {
      // eslint-disable-next-line @typescript-eslint/no-require-imports
      const IORedis = require('ioredis') as typeof import('ioredis').default;
      const c = new IORedis({ port: poolkv.port, host: '127.0.0.1', lazyConnect: true, maxRetriesPerRequest: 0 });
      await c.connect();
      try {
        assert.equal(await c.set('io:a', 'hello'), 'OK');
        assert.equal(await c.get('io:a'), 'hello');
        assert.equal(await c.set('io:a', 'x', 'NX'), null);
        assert.equal(await c.set('io:a', 'world', 'XX', 'GET'), 'hello');
        assert.equal(await c.append('io:a', '!'), 6);
        assert.equal(await c.strlen('io:a'), 6);
        assert.equal(await c.getrange('io:a', 0, 2), 'wor');
        assert.equal(await c.setrange('io:a', 1, 'OO'), 6);
        assert.equal(await c.incr('io:n'), 1);
        assert.equal(await c.incrby('io:n', 41), 42);
        assert.equal(await c.decrby('io:n', 2), 40);
        assert.equal(await c.decr('io:n'), 39);
        assert.equal(await c.incrbyfloat('io:f', '10.5'), '10.5');
        assert.equal(await c.incrbyfloat('io:f', '0.1'), '10.6');
        assert.equal(await c.mset('io:m1', '1', 'io:m2', '2'), 'OK');
        assert.deepEqual(await c.mget('io:m1', 'io:m2', 'io:none'), ['1', '2', null]);
        assert.equal(await c.msetnx('io:m1', 'x', 'io:m3', 'y'), 0);
        assert.equal(await c.getset('io:m1', 'one'), '1');
        assert.equal(await c.getdel('io:m1'), 'one');
        assert.equal(await c.getex('io:m2', 'EX', 100), '2');
        assert.ok((await c.ttl('io:m2')) > 90);
        assert.equal(await c.setex('io:e', 100, 'v'), 'OK');
        assert.equal(await c.psetex('io:p', 100000, 'v'), 'OK');
        assert.equal(await c.setnx('io:p', 'w'), 0);
        const bin = Buffer.from([0, 1, 2, 13, 10, 255]);
        await c.set('io:bin', bin);
        assert.ok((await c.getBuffer('io:bin'))!.equals(bin));
        const big = Buffer.alloc(3 * MiB, 7);
        await c.set('io:big', big);
        assert.ok((await c.getBuffer('io:big'))!.equals(big));
        await c.mset('io:k1', 'ohmytext', 'io:k2', 'mynewtext');
        assert.equal(await c.call('LCS', 'io:k1', 'io:k2'), 'mytext');
        assert.deepEqual(await c.call('LCS', 'io:k1', 'io:k2', 'IDX', 'MINMATCHLEN', '4'),
          ['matches', [[[4, 7], [5, 8]]], 'len', 6]);
        const results = await c.pipeline().incr('io:pipe').incr('io:pipe').get('io:pipe').exec();
        assert.deepEqual(results!.map((r) => r[1]), [1, 2, '2']);
        await assert.rejects(c.incr('io:a'), /value is not an integer or out of range/);
        await assert.rejects(c.incrbyfloat('io:a', 'x'), /value is not a valid float/);
      } finally {
        c.disconnect();
      }
    });

    it('node-redis (redis v6)', async () => {
      // eslint-disable-next-line @typescript-eslint/no-require-imports
      const { createClient } = require('redis') as typeof import('redis');
      for (const RESP of [2, 3] as const) {
        const c = createClient({ socket: { port: poolkv.port, host: '127.0.0.1' }, RESP });
        c.on('error', () => {});
        await c.connect();
        try {
          const p = `nr${RESP}:`;
          assert.equal(await c.set(`${p}a`, 'hello'), 'OK');
          assert.equal(await c.get(`${p}a`), 'hello');
          assert.equal(await c.get(`${p}missing`), null);
          assert.equal(await c.set(`${p}a`, 'v2', { condition: 'NX' }), null);
          assert.equal(await c.set(`${p}a`, 'v3', { expiration: { type: 'EX', value: 100 } }), 'OK');
          assert.ok((await c.ttl(`${p}a`)) > 90);
          assert.equal(await c.append(`${p}a`, '!'), 3);
          assert.equal(await c.strLen(`${p}a`), 3);
          assert.equal(await c.incr(`${p}n`), 1);
          assert.equal(await c.incrBy(`${p}n`, 9), 10);
          assert.equal(await c.decr(`${p}n`), 9);
          assert.equal(await c.decrBy(`${p}n`, 4), 5);
          assert.equal(String(await c.incrByFloat(`${p}f`, 2.5)), '2.5');
          assert.equal(await c.mSet([`${p}m1`, '1', `${p}m2`, '2']), 'OK');
          assert.deepEqual(await c.mGet([`${p}m1`, `${p}m2`, `${p}none`]), ['1', '2', null]);
          assert.equal(await c.mSetNX([`${p}m1`, 'x', `${p}m9`, 'y']), 0);
          assert.equal(await c.getDel(`${p}m1`), '1');
          assert.equal(await c.getEx(`${p}m2`, { type: 'PX', value: 100000 }), '2');
          assert.equal(await c.getRange(`${p}a`, 0, 1), 'v3');
          assert.equal(await c.setRange(`${p}a`, 5, 'x'), 6);
          await c.mSet([`${p}k1`, 'ohmytext', `${p}k2`, 'mynewtext']);
          assert.equal(await c.lcs(`${p}k1`, `${p}k2`), 'mytext');
          assert.equal(await c.lcsLen(`${p}k1`, `${p}k2`), 6);
          const idx = await c.lcsIdxWithMatchLen(`${p}k1`, `${p}k2`, { MINMATCHLEN: 4 }) as unknown as { len: number };
          assert.equal(idx.len, 6);
          await assert.rejects(c.incr(`${p}a`), /value is not an integer or out of range/);
        } finally {
          c.destroy();
        }
      }
    });
  });
});
