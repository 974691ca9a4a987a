// The generic keyspace commands, differentially: the same command sequences go
// to a real redis-server 7.0 and to poolkv-server, and the raw RESP replies
// (errors included) must be byte-for-byte the same. TTL-like replies are
// compared with a tolerance; KEYS and SCAN results as sets (their order follows
// each server's hash seed). Then SCAN's guarantee while the table resizes, and
// a randomized run over a small key set.
import { strict as assert } from 'assert';
import { commands as keysCommands } from '../src/commands/keys';
import { commands as expireCommands } from '../src/commands/expire';
import type { CommandSpec } from '../src/commands/types';
import {
  rawCommand, startPoolkv, startRedis, type RedisProcess,
} from './helpers/processes';
import { decode, expectSameReplies, runPipelined, show, showCmd, type Arg, type Cmd } from './helpers/differential';
import { rng } from './helpers/random';




/** The elements of a RESP2 array of bulk strings (binary-safe, as latin1 strings). */
function bulkArray(bytes: Buffer, from = 0): { items: string[]; end: number } {
  let p = from;
  const line = (): string => {
    const cr = bytes.indexOf('\r\n', p);
    const s = bytes.toString('latin1', p, cr);
    p = cr + 2;
    return s;
  };
  const header = line();
  assert.equal(header[0], '*', `not an array: ${show(bytes)}`);
  const n = Number(header.slice(1));
  const items: string[] = [];
  for (let i = 0; i < n; i++) {
    const h = line();
    assert.equal(h[0], '$', `not a bulk string: ${show(bytes)}`);
    const len = Number(h.slice(1));
    items.push(bytes.toString('latin1', p, p + len));
    p += len + 2;
  }
  return { items, end: p };
}

/** A SCAN reply: the cursor (a bulk string) and the keys. */
function scanReply(bytes: Buffer): { cursor: string; keys: string[] } {
  const s = bytes.toString('latin1');
  const m = /^\*2\r\n\$(\d+)\r\n/.exec(s);
  assert.ok(m, `not a SCAN reply: ${show(bytes)}`);
  const header = m[0].length;
  const cursor = s.slice(header, header + Number(m[1]));
  const { items } = bulkArray(bytes, header + Number(m[1]) + 2);
  return { cursor, keys: items };
}

function sorted(items: string[]): string[] {
  return [...items].sort();
}

const TOLERANCE: Record<string, number> = { ttl: 1, expiretime: 1, pttl: 1500, pexpiretime: 1500 };

/**
 * Whether poolkv's reply is Redis's. TTL-like integers may differ by the time
 * between the servers; KEYS and full-iteration SCAN replies compare as sets;
 * RANDOMKEY only as "null or a key".
 */
function equivalent(cmd: Cmd, ours: Buffer, theirs: Buffer): boolean {
  if (ours.equals(theirs)) return true;
  const name = String(cmd[0]).toLowerCase();
  const sub = cmd.length > 1 ? String(cmd[1]).toLowerCase() : '';
  if (name === 'keys' && ours[0] === 0x2a && theirs[0] === 0x2a) {
    return JSON.stringify(sorted(bulkArray(ours).items)) === JSON.stringify(sorted(bulkArray(theirs).items));
  }
  if (name === 'scan' && ours[0] === 0x2a && theirs[0] === 0x2a) {
    const a = scanReply(ours);
    const b = scanReply(theirs);
    // Only a call that finished the iteration is comparable (bucket order depends on the hash seed).
    return a.cursor === '0' && b.cursor === '0' && JSON.stringify(sorted(a.keys)) === JSON.stringify(sorted(b.keys));
  }
  if (name === 'randomkey') return (ours[0] === 0x24 && ours[1] !== 0x2d) === (theirs[0] === 0x24 && theirs[1] !== 0x2d);
  let tolerance = TOLERANCE[name] ?? 0;
  if (name === 'object' && sub === 'idletime') tolerance = 2;
  if (tolerance === 0) return false;
  const m1 = /^:(-?\d+)\r\n$/.exec(ours.toString('latin1'));
  const m2 = /^:(-?\d+)\r\n$/.exec(theirs.toString('latin1'));
  if (!m1 || !m2) return false;
  const a = Number(m1[1]);
  const b = Number(m2[1]);
  // poolkv keeps expire times as doubles: near the int64 limit they are rounded (to 2^-52 relative).
  return a >= 0 && b >= 0 && Math.abs(a - b) <= Math.max(tolerance, b / 2 ** 50);
}

describe('generic keyspace commands (differential against redis-server 7.0)', function () {
  this.timeout(180000);
  let redis: RedisProcess;
  let poolkv: RedisProcess;

  before(async () => {
    [redis, poolkv] = await Promise.all([startRedis(), startPoolkv(['--pool-size', '128mb'])]);
  });
  after(async () => {
    await Promise.all([redis?.stop(), poolkv?.stop()]);
  });

  /** Run on both servers and assert every reply is equivalent; returns poolkv's replies. */
  async function same(cmds: Cmd[], prefix: Cmd[] = []): Promise<Buffer[]> {
    const ours = await expectSameReplies(poolkv.port, redis.port, cmds, prefix, equivalent);
    return ours;
  }

  /** Both servers' replies, unchecked. */
  async function both(cmds: Cmd[], prefix: Cmd[] = []): Promise<{ ours: Buffer[]; theirs: Buffer[] }> {
    const [ours, theirs] = await Promise.all([runPipelined(poolkv.port, cmds, prefix), runPipelined(redis.port, cmds, prefix)]);
    return { ours, theirs };
  }

  /** A distinct key namespace per test, so tests do not see each other's keys. */
  let testNo = 0;
  function ns(): (name: string) => string {
    const prefix = `t${++testNo}:`;
    return (name) => prefix + name;
  }

  /** Full SCAN iteration on one server; every key seen, with duplicates. */
  async function scanAll(port: number, db: number, options: Cmd = [], between?: (calls: number) => Promise<void>): Promise<string[]> {
    const seen: string[] = [];
    let cursor = '0';
    let calls = 0;
    do {
      const [reply] = await runPipelined(port, [['SCAN', cursor, ...options]], [['SELECT', String(db)]]);
      const r = scanReply(reply!);
      seen.push(...r.keys);
      cursor = r.cursor;
      calls++;
      if (between && cursor !== '0') await between(calls);
      assert.ok(calls < 100000, 'SCAN did not terminate');
    } while (cursor !== '0');
    return seen;
  }

  // ---- declarations -------------------------------------------------------------------------

  it('declarations match COMMAND INFO and COMMAND DOCS of redis-server', async () => {
    const check = async (spec: CommandSpec, fullName: string, info: unknown[], doc: Map<string, unknown>): Promise<void> => {
      const [name, arity, flags, firstKey, lastKey, step, acl] = info;
      assert.equal(name, fullName);
      assert.equal(arity, spec.arity, `${fullName} arity`);
      assert.deepEqual(flags, spec.flags, `${fullName} flags`);
      assert.deepEqual([firstKey, lastKey, step], [spec.firstKey, spec.lastKey, spec.step], `${fullName} keys`);
      assert.deepEqual(acl, spec.acl.map((c) => `@${c}`), `${fullName} acl`);
      assert.equal(doc.get('summary'), spec.summary, `${fullName} summary`);
      assert.equal(doc.get('since'), spec.since, `${fullName} since`);
      assert.equal(doc.get('group'), spec.group, `${fullName} group`);
      assert.equal(doc.get('complexity'), spec.complexity, `${fullName} complexity`);
    };
    const toMap = (fields: unknown[]): Map<string, unknown> => {
      const m = new Map<string, unknown>();
      for (let i = 0; i < fields.length; i += 2) m.set(String(fields[i]), fields[i + 1]);
      return m;
    };
    const specs = [...keysCommands, ...expireCommands];
    assert.deepEqual(sorted(specs.map((s) => s.name)), sorted([
      'del', 'unlink', 'exists', 'type', 'keys', 'scan', 'randomkey', 'rename', 'renamenx', 'copy', 'move', 'touch',
      'expire', 'pexpire', 'expireat', 'pexpireat', 'ttl', 'pttl', 'expiretime', 'pexpiretime', 'persist', 'object',
    ]));
    for (const spec of specs) {
      const info = (decode(await rawCommand(redis.port, ['COMMAND', 'INFO', spec.name])) as unknown[][])[0]!;
      const docs = decode(await rawCommand(redis.port, ['COMMAND', 'DOCS', spec.name])) as unknown[];
      const doc = toMap(docs[1] as unknown[]);
      await check(spec, spec.name, info, doc);
      const subInfo = (info[9] ?? []) as unknown[][];
      assert.equal((spec.subcommands ?? []).length, subInfo.length, `${spec.name} subcommands`);
      if (spec.subcommands) {
        const subDocs = toMap(doc.get('subcommands') as unknown[]);
        for (const sub of spec.subcommands) {
          const full = `${spec.name}|${sub.name}`;
          const si = subInfo.find((x) => x[0] === full);
          assert.ok(si, `redis has no ${full}`);
          await check(sub, full, si, toMap(subDocs.get(full) as unknown[]));
        }
      }
    }
    // And poolkv answers COMMAND INFO for them with the same first seven fields.
    for (const spec of specs) {
      const [ours, theirs] = await Promise.all([
        rawCommand(poolkv.port, ['COMMAND', 'INFO', spec.name]), rawCommand(redis.port, ['COMMAND', 'INFO', spec.name]),
      ]);
      const a = (decode(ours) as unknown[][])[0]!.slice(0, 7);
      const b = (decode(theirs) as unknown[][])[0]!.slice(0, 7);
      assert.deepEqual(a, b, `COMMAND INFO ${spec.name}`);
    }
  });

  // ---- DEL UNLINK EXISTS TOUCH TYPE -------------------------------------------------------------

  it('DEL, UNLINK, EXISTS, TOUCH, TYPE (duplicates, missing keys, arity errors)', async () => {
    const k = ns();
    await same([
      ['SET', k('a'), '1'], ['SET', k('b'), '2'], ['SET', k('c'), '3'], ['SET', k('d'), 'x'.repeat(100)],
      ['EXISTS', k('a')], ['EXISTS', k('a'), k('a'), k('b'), k('missing')], ['EXISTS', k('missing')],
      ['TOUCH', k('a'), k('missing'), k('a')], ['TOUCH', k('missing')],
      ['TYPE', k('a')], ['TYPE', k('d')], ['TYPE', k('missing')],
      ['DEL', k('a'), k('a'), k('missing')], ['EXISTS', k('a')],
      ['UNLINK', k('b'), k('c'), k('missing')], ['EXISTS', k('b'), k('c')],
      ['DEL', k('d')], ['DEL', k('d')], ['UNLINK', k('d')],
      ['DEL'], ['UNLINK'], ['EXISTS'], ['TOUCH'], ['TYPE'], ['TYPE', k('a'), k('b')],
      ['del', k('x')], ['ExIsTs', k('x')],
    ]);
  });

  // ---- RENAME / RENAMENX ----------------------------------------------------------------------

  it('RENAME and RENAMENX: values, TTLs and encodings move; errors', async () => {
    const k = ns();
    const long = 'L'.repeat(60);
    await same([
      ['SET', k('s'), 'value'], ['PEXPIRE', k('s'), '100000'],
      ['RENAME', k('s'), k('d')], ['EXISTS', k('s')], ['GET', k('d')], ['PTTL', k('d')],
      ['RENAME', k('d'), k('d')], ['RENAMENX', k('d'), k('d')], ['PTTL', k('d')],
      ['RENAME', k('missing'), k('x')], ['RENAMENX', k('missing'), k('x')], ['RENAME', k('missing'), k('missing')],
      ['RENAMENX', k('missing'), k('missing')],
      ['SET', k('e'), 'other'], ['RENAMENX', k('d'), k('e')], ['GET', k('e')], ['TTL', k('e')],
      ['RENAME', k('d'), k('e')], ['GET', k('e')], ['PTTL', k('e')], ['EXISTS', k('d')],
      // the target's TTL goes away with it; a source without TTL leaves none
      ['SET', k('f'), 'f'], ['SET', k('g'), 'g', 'EX', '1000'], ['RENAME', k('f'), k('g')], ['TTL', k('g')],
      ['RENAMENX', k('g'), k('h')], ['GET', k('h')], ['EXISTS', k('g')],
      // encodings survive a rename
      ['SET', k('int'), '123'], ['RENAME', k('int'), k('int2')], ['OBJECT', 'ENCODING', k('int2')],
      ['OBJECT', 'REFCOUNT', k('int2')],
      ['SET', k('emb'), 'hello'], ['RENAME', k('emb'), k('emb2')], ['OBJECT', 'ENCODING', k('emb2')],
      ['SET', k('raw'), long], ['RENAME', k('raw'), k('raw2')], ['OBJECT', 'ENCODING', k('raw2')], ['GET', k('raw2')],
      ['RENAME', k('a')], ['RENAME', k('a'), k('b'), k('c')], ['RENAMENX', k('a')],
    ]);
    // A big value (page-chain storage) renames intact.
    const big = Buffer.alloc(3 * 1024 * 1024 + 17, 'q');
    big.write('head', 0);
    big.write('tail', big.length - 4);
    await same([['SET', k('big'), big], ['RENAME', k('big'), k('big2')], ['GET', k('big2')], ['STRLEN', k('big2')], ['EXISTS', k('big')]]);
  });

  it('encodings made by APPEND, SETRANGE and INCRBYFLOAT survive RENAME, COPY and MOVE', async () => {
    const k = ns();
    const cmds: Cmd[] = [
      ['SELECT', '3'], ['DEL', k('app3'), k('flt3')], ['SELECT', '0'],
      ['SET', k('app'), '12'], ['APPEND', k('app'), '3'], ['SETRANGE', k('rng'), '0', '45'], ['INCRBYFLOAT', k('flt'), '3'],
      ['SET', k('int'), '77'],
    ];
    for (const name of ['app', 'rng', 'flt', 'int']) {
      cmds.push(['OBJECT', 'ENCODING', k(name)],
        ['RENAME', k(name), k(`${name}2`)], ['OBJECT', 'ENCODING', k(`${name}2`)],
        ['COPY', k(`${name}2`), k(`${name}3`)], ['OBJECT', 'ENCODING', k(`${name}3`)],
        ['MOVE', k(`${name}3`), '3'], ['SELECT', '3'], ['OBJECT', 'ENCODING', k(`${name}3`)], ['DEL', k(`${name}3`)], ['SELECT', '0']);
    }
    await same(cmds, [['SELECT', '0']]);
  });

  // ---- COPY / MOVE -------------------------------------------------------------------------------

  it('COPY: DB, REPLACE, TTLs, and its errors', async () => {
    const k = ns();
    const prefix: Cmd[] = [['SELECT', '0']];
    await same([
      ['SELECT', '1'], ['DEL', k('b'), k('a')], ['SELECT', '0'],
      ['SET', k('a'), 'hello'], ['EXPIRE', k('a'), '1000'],
      ['COPY', k('a'), k('b')], ['GET', k('b')], ['TTL', k('b')], ['GET', k('a')], ['TTL', k('a')],
      ['COPY', k('a'), k('b')], ['SET', k('a'), 'changed'], ['COPY', k('a'), k('b'), 'REPLACE'], ['GET', k('b')], ['TTL', k('b')],
      ['COPY', k('a'), k('b'), 'DB', '1'], ['COPY', k('a'), k('b'), 'DB', '1'], ['COPY', k('a'), k('a'), 'DB', '1'],
      ['SELECT', '1'], ['GET', k('b')], ['GET', k('a')], ['COPY', k('a'), k('a'), 'db', '0', 'replace'], ['SELECT', '0'],
      ['COPY', k('missing'), k('b')], ['COPY', k('missing'), k('b'), 'REPLACE'],
      ['COPY', k('a'), k('a')], ['COPY', k('a'), k('a'), 'DB', '0'], ['COPY', k('a'), k('a'), 'REPLACE'],
      ['COPY', k('a'), k('c'), 'DB', '16'], ['COPY', k('a'), k('c'), 'DB', '-1'], ['COPY', k('a'), k('c'), 'DB', 'x'],
      ['COPY', k('a'), k('c'), 'DB', '99999999999'], ['COPY', k('a'), k('c'), 'DB', '1.5'], ['COPY', k('a'), k('c'), 'DB'],
      ['COPY', k('a'), k('c'), 'REPLACE', 'REPLACE'], ['COPY', k('a'), k('c'), 'foo'], ['COPY', k('a'), k('c'), 'DB', '1', 'DB', '0'],
      ['COPY', k('a'), k('c'), 'DB', '1', 'extra'], ['COPY', k('a'), k('c'), 'DB', '16', 'foo'], ['COPY', k('a'), k('c'), 'foo', 'DB', '16'],
      ['COPY', k('a')], ['COPY'], ['COPY', k('a'), k('b'), Buffer.from('replace\0junk')], ['COPY', k('a'), k('b'), Buffer.from('db\0'), '1'],
      ['SET', k('n'), '42'], ['COPY', k('n'), k('n2')], ['OBJECT', 'ENCODING', k('n2')], ['GET', k('n2')],
      ['SET', k('r'), 'R'.repeat(50)], ['COPY', k('r'), k('r2')], ['OBJECT', 'ENCODING', k('r2')],
      ['SET', k('e'), 'emb'], ['COPY', k('e'), k('e2')], ['OBJECT', 'ENCODING', k('e2')],
    ], prefix);
  });

  it('MOVE: between databases, existing targets, and its errors', async () => {
    const k = ns();
    await same([
      ['SELECT', '2'], ['DEL', k('a'), k('b')], ['SELECT', '0'],
      ['SET', k('a'), 'va'], ['PEXPIRE', k('a'), '500000'],
      ['MOVE', k('a'), '2'], ['EXISTS', k('a')], ['SELECT', '2'], ['GET', k('a')], ['PTTL', k('a')],
      ['MOVE', k('a'), '0'], ['SELECT', '0'], ['GET', k('a')], ['PTTL', k('a')],
      ['SET', k('b'), 'here'], ['SELECT', '2'], ['SET', k('b'), 'there'], ['SELECT', '0'],
      ['MOVE', k('b'), '2'], ['GET', k('b')], ['MOVE', k('missing'), '2'],
      ['MOVE', k('a'), '0'], ['MOVE', k('missing'), '0'], ['MOVE', k('a'), '16'], ['MOVE', k('a'), '-1'],
      ['MOVE', k('a'), 'x'], ['MOVE', k('a'), ''], ['MOVE', k('a'), '99999999999'], ['MOVE', k('a'), '-2147483649'],
      ['MOVE', k('a'), '2147483647'], ['MOVE', k('a'), '01'], ['MOVE', k('a')], ['MOVE', k('a'), '1', '2'],
      ['SELECT', '2'], ['DEL', k('a'), k('b')], ['SELECT', '0'],
    ], [['SELECT', '0']]);
  });

  // ---- EXPIRE family --------------------------------------------------------------------------

  it('EXPIRE, PEXPIRE, EXPIREAT, PEXPIREAT: every option on keys with and without a TTL', async () => {
    const k = ns();
    const nowS = Math.floor(Date.now() / 1000);
    const values: Record<string, { small: string; large: string; past: string; zero: string }> = {
      EXPIRE: { small: '50000', large: '200000', past: '-1', zero: '0' },
      PEXPIRE: { small: '50000000', large: '200000000', past: '-1000', zero: '0' },
      EXPIREAT: { small: String(nowS + 50000), large: String(nowS + 200000), past: String(nowS - 10), zero: '0' },
      PEXPIREAT: { small: String((nowS + 50000) * 1000), large: String((nowS + 200000) * 1000), past: '1', zero: '0' },
    };
    const options: Cmd[] = [
      [], ['NX'], ['XX'], ['GT'], ['LT'], ['nx'], ['Gt'], ['XX', 'GT'], ['XX', 'LT'], ['GT', 'XX'], ['LT', 'LT'],
      ['NX', 'XX'], ['NX', 'GT'], ['LT', 'NX'], ['GT', 'LT'], ['XX', 'XX', 'GT'], ['FOO'], ['NX', 'FOO'], ['XX', 'GT', 'LT'],
    ];
    const cmds: Cmd[] = [];
    for (const withTtl of [false, true]) {
      for (const [cmd, v] of Object.entries(values)) {
        for (const opts of options) {
          for (const which of ['small', 'large', 'past', 'zero'] as const) {
            cmds.push(['DEL', k('k')], ['SET', k('k'), 'v']);
            if (withTtl) cmds.push(['EXPIRE', k('k'), '100000']);
            cmds.push([cmd, k('k'), v[which], ...opts], ['PTTL', k('k')], ['EXISTS', k('k')]);
          }
          cmds.push([cmd, k('missing'), v.small, ...opts]);
        }
      }
    }
    await same(cmds);
  });

  it('EXPIRE family: argument parsing and overflow errors', async () => {
    const k = ns();
    const bad = ['abc', '', ' 1', '1 ', '+1', '01', '-0', '1.5', '1e3', '0x10', '9223372036854775808', '-9223372036854775809',
      '99999999999999999999'];
    const cmds: Cmd[] = [['SET', k('a'), 'v']];
    for (const cmd of ['EXPIRE', 'PEXPIRE', 'EXPIREAT', 'PEXPIREAT', 'expire', 'pexpireAT']) {
      for (const value of bad) cmds.push([cmd, k('a'), value], [cmd, k('missing'), value]);
      cmds.push([cmd, k('a')], [cmd], [cmd, k('a'), 'abc', 'NX', 'XX'], [cmd, k('a'), 'abc', 'FOO'], [cmd, k('a'), '100', 'NX\0'],
        [cmd, k('a'), '100', 'bad\r\nopt']);
    }
    // The unit conversion and the base time addition must not overflow (Redis answers "invalid expire time").
    cmds.push(
      ['EXPIRE', k('a'), '9223372036854775807'], ['EXPIRE', k('a'), '9223372036854775'], ['EXPIRE', k('a'), '9223372036854776'],
      ['EXPIRE', k('a'), '9223370399119966'], ['EXPIRE', k('a'), '-9223372036854775808'], ['EXPIRE', k('a'), '-9223372036854775'],
      ['EXPIRE', k('a'), '-9223372036854776'], ['TTL', k('a')], ['SET', k('a'), 'v'],
      ['PEXPIRE', k('a'), '9223372036854775807'], ['PEXPIRE', k('a'), '9223370399119966000'], ['PEXPIRE', k('a'), '-9223372036854775808'],
      ['EXISTS', k('a')], ['SET', k('a'), 'v'],
      ['EXPIREAT', k('a'), '9223372036854775'], ['EXISTS', k('a')], ['EXPIREAT', k('a'), '9223372036854776'],
      ['EXPIREAT', k('a'), '-9223372036854775'], ['EXISTS', k('a')], ['SET', k('a'), 'v'],
      ['PEXPIREAT', k('a'), '-9223372036854775808'], ['EXISTS', k('a')], ['SET', k('a'), 'v'],
      ['PEXPIREAT', k('a'), '9007199254740991'], ['PEXPIRETIME', k('a')], ['EXPIRETIME', k('a')],
      ['EXPIREAT', k('missing'), '9223372036854776'], ['PEXPIRE', k('missing'), '9223372036854775807'],
    );
    await same(cmds);
  });

  it('TTL, PTTL, EXPIRETIME, PEXPIRETIME, PERSIST', async () => {
    const k = ns();
    const atS = Math.floor(Date.now() / 1000) + 86400;
    await same([
      ['TTL', k('missing')], ['PTTL', k('missing')], ['EXPIRETIME', k('missing')], ['PEXPIRETIME', k('missing')],
      ['SET', k('p'), 'v'], ['TTL', k('p')], ['PTTL', k('p')], ['EXPIRETIME', k('p')], ['PEXPIRETIME', k('p')],
      ['EXPIREAT', k('p'), String(atS)], ['EXPIRETIME', k('p')], ['PEXPIRETIME', k('p')], ['TTL', k('p')], ['PTTL', k('p')],
      ['PEXPIREAT', k('p'), `${atS}499`], ['EXPIRETIME', k('p')], ['PEXPIRETIME', k('p')],
      ['PEXPIREAT', k('p'), `${atS}500`], ['EXPIRETIME', k('p')], ['PEXPIRETIME', k('p')],
      ['PEXPIREAT', k('p'), '4102444800123'], ['EXPIRETIME', k('p')], ['PEXPIRETIME', k('p')],
      ['PERSIST', k('p')], ['PERSIST', k('p')], ['TTL', k('p')], ['PERSIST', k('missing')],
      ['EXPIRE', k('p'), '100'], ['TTL', k('p')], ['SET', k('p'), 'w'], ['TTL', k('p')],
      ['PEXPIRE', k('p'), '1499'], ['TTL', k('p')], ['PEXPIRE', k('p'), '1500'], ['TTL', k('p')], ['PEXPIRE', k('p'), '2500'],
      ['TTL', k('p')], ['PERSIST', k('p')],
      ['TTL'], ['TTL', k('a'), k('b')], ['PTTL'], ['EXPIRETIME'], ['PEXPIRETIME', k('a'), k('b')], ['PERSIST'], ['PERSIST', k('a'), k('b')],
    ]);
  });

  it('a key whose TTL passed reads as missing everywhere (lazy expiry)', async () => {
    const k = ns();
    const setup: Cmd[] = [];
    for (const name of ['a', 'b', 'c', 'd', 'e', 'f', 'g', 'h', 'i', 'j']) setup.push(['SET', k(name), 'v', 'PX', '150']);
    setup.push(['SET', k('live'), 'v']);
    await same(setup);
    await new Promise((r) => setTimeout(r, 300));
    await same([
      ['GET', k('a')], ['EXISTS', k('b'), k('live')], ['TTL', k('c')], ['PTTL', k('c')], ['TYPE', k('d')],
      ['RENAME', k('e'), k('e2')], ['RENAMENX', k('f'), k('f2')], ['COPY', k('g'), k('g2')], ['MOVE', k('h'), '3'],
      ['EXPIRE', k('i'), '100'], ['PERSIST', k('j')], ['OBJECT', 'ENCODING', k('a')], ['TOUCH', k('a'), k('live')],
      ['DEL', k('a'), k('live')], ['KEYS', k('*')], ['EXPIRETIME', k('b')],
      ['SET', k('x'), 'v'], ['RENAME', k('x'), k('b')], ['GET', k('b')], ['TTL', k('b')],
    ]);
  });

  // ---- OBJECT ----------------------------------------------------------------------------------

  it('OBJECT ENCODING, REFCOUNT, IDLETIME, FREQ, HELP and the container errors', async () => {
    const k = ns();
    const values: Record<string, string> = {
      zero: '0', small: '123', max_shared: '9999', first_unshared: '10000', neg: '-5', i64max: '9223372036854775807',
      i64over: '9223372036854775808', i64min: '-9223372036854775808', lead0: '007', plus: '+1', space: ' 1', float: '1.5',
      word: 'hello', empty: '', e44: 'e'.repeat(44), r45: 'r'.repeat(45), twenty: '12345678901234567890', nineteen: '1234567890123456789',
    };
    // Redis keeps 0..9999 as shared objects whose access clock every key holding
    // that integer updates, so their IDLETIME is not per key: asked only of others.
    const shared = new Set(['zero', 'small', 'max_shared']);
    const cmds: Cmd[] = [];
    for (const [name, value] of Object.entries(values)) {
      cmds.push(['SET', k(name), value], ['OBJECT', 'ENCODING', k(name)], ['OBJECT', 'REFCOUNT', k(name)],
        ['OBJECT', 'FREQ', k(name)]);
      if (!shared.has(name)) cmds.push(['OBJECT', 'IDLETIME', k(name)]);
    }
    cmds.push(
      ['MSET', k('m1'), '77', k('m2'), 'seventy-seven'], ['OBJECT', 'ENCODING', k('m1')], ['OBJECT', 'REFCOUNT', k('m1')],
      ['OBJECT', 'ENCODING', k('m2')],
      ['SET', k('c'), '5'], ['INCR', k('c')], ['OBJECT', 'ENCODING', k('c')], ['OBJECT', 'REFCOUNT', k('c')],
      ['INCRBY', k('c'), '100000'], ['OBJECT', 'ENCODING', k('c')], ['OBJECT', 'REFCOUNT', k('c')],
      ['OBJECT', 'ENCODING', k('missing')], ['OBJECT', 'REFCOUNT', k('missing')], ['OBJECT', 'IDLETIME', k('missing')],
      ['OBJECT', 'FREQ', k('missing')],
      ['OBJECT', 'HELP'], ['object', 'help'], ['Object', 'Help'], ['OBJECT', 'HELP', 'extra'],
      ['OBJECT'], ['OBJECT', 'foo'], ['OBJECT', 'foo', 'bar'], ['OBJECT', 'ENCODING'], ['OBJECT', 'ENCODING', k('a'), k('b')],
      ['OBJECT', 'idletime'], ['OBJECT', 'FREQ', k('a'), k('b')],
    );
    await same(cmds);
  });

  it('OBJECT FREQ and IDLETIME follow maxmemory-policy (LFU vs LRU)', async () => {
    const k = ns();
    try {
      await same([
        ['CONFIG', 'SET', 'maxmemory-policy', 'allkeys-lfu'],
        ['SET', k('f'), 'v'], ['OBJECT', 'FREQ', k('f')], ['GET', k('f')], ['OBJECT', 'FREQ', k('f')],
        ['OBJECT', 'IDLETIME', k('f')], ['OBJECT', 'IDLETIME', k('missing')], ['OBJECT', 'FREQ', k('missing')],
        ['CONFIG', 'SET', 'maxmemory-policy', 'volatile-lru'],
        ['SET', k('g'), 'v'], ['OBJECT', 'IDLETIME', k('g')], ['OBJECT', 'FREQ', k('g')],
      ]);
    } finally {
      await both([['CONFIG', 'SET', 'maxmemory-policy', 'noeviction']]);
    }
  });

  it('which commands count keyspace hits and misses, as Redis', async () => {
    const k = ns();
    const stat = (info: Buffer, field: string): number => Number(new RegExp(`${field}:(\\d+)`).exec(info.toString('latin1'))![1]);
    await same([
      ['SET', k('a'), 'va'], ['SET', k('b'), 'vb'], ['SET', k('c'), 'vc'], ['SET', k('t'), 'vt', 'EX', '1000'],
      ['CONFIG', 'RESETSTAT'],
      ['EXISTS', k('a'), k('missing')], ['TYPE', k('a')], ['TYPE', k('missing')], ['TTL', k('t')], ['PTTL', k('missing')],
      ['EXPIRETIME', k('t')], ['PEXPIRETIME', k('a')], ['OBJECT', 'ENCODING', k('a')], ['OBJECT', 'REFCOUNT', k('missing')],
      ['OBJECT', 'IDLETIME', k('b')], ['OBJECT', 'FREQ', k('b')], ['TOUCH', k('a'), k('missing')],
      ['COPY', k('a'), k('a2')], ['COPY', k('missing'), k('x')], ['COPY', k('a'), k('b')],
      ['RENAME', k('a2'), k('a3')], ['RENAMENX', k('a3'), k('b')], ['RENAME', k('missing'), k('x')], ['MOVE', k('a3'), '3'],
      ['MOVE', k('missing'), '3'], ['EXPIRE', k('c'), '1000'], ['EXPIRE', k('missing'), '10'], ['PERSIST', k('c')],
      ['PERSIST', k('missing')], ['DEL', k('a3'), k('missing')], ['UNLINK', k('missing')], ['KEYS', k('*')], ['RANDOMKEY'],
      ['DBSIZE'],
    ]);
    const [ours, theirs] = await Promise.all([runPipelined(poolkv.port, [['INFO', 'stats']]), runPipelined(redis.port, [['INFO', 'stats']])]);
    for (const field of ['keyspace_hits', 'keyspace_misses']) {
      assert.equal(stat(ours[0]!, field), stat(theirs[0]!, field), field);
    }
    // SCAN's TYPE filter looks keys up (counted as hits); MATCH alone does not.
    await populate(10, ['s1', 's2', 's3', 'x1']);
    await both([['CONFIG', 'RESETSTAT']]);
    await same([['SCAN', '0', 'COUNT', '100', 'TYPE', 'string', 'MATCH', 's*'], ['SCAN', '0', 'MATCH', 'x*']], [['SELECT', '10']]);
    const [ours2, theirs2] = await Promise.all([runPipelined(poolkv.port, [['INFO', 'stats']]), runPipelined(redis.port, [['INFO', 'stats']])]);
    assert.equal(stat(ours2[0]!, 'keyspace_hits'), stat(theirs2[0]!, 'keyspace_hits'), 'SCAN TYPE hits');
    await both([['FLUSHDB']], [['SELECT', '10']]);
  });

  it('idle time: reads and writes reset it; EXISTS, TYPE, TTL, OBJECT do not', async function () {
    this.timeout(20000);
    const k = ns();
    const names = ['exists', 'type', 'ttl', 'object', 'touch', 'get', 'expire', 'persist', 'copy', 'rename', 'move'];
    const setup: Cmd[] = [];
    for (const n of names) setup.push(['SET', k(n), `value of ${n}`]);
    await same(setup);
    await new Promise((r) => setTimeout(r, 2200));
    await same([
      ['EXISTS', k('exists')], ['TYPE', k('type')], ['TTL', k('ttl')], ['OBJECT', 'ENCODING', k('object')],
      ['TOUCH', k('touch')], ['GET', k('get')], ['EXPIRE', k('expire'), '1000'], ['PERSIST', k('persist')],
      ['COPY', k('copy'), k('copy2')], ['RENAME', k('rename'), k('renamed')], ['MOVE', k('move'), '3'],
      ...names.filter((n) => n !== 'rename' && n !== 'move').map((n): Cmd => ['OBJECT', 'IDLETIME', k(n)]),
      ['OBJECT', 'IDLETIME', k('copy2')], ['OBJECT', 'IDLETIME', k('renamed')],
      ['SELECT', '3'], ['OBJECT', 'IDLETIME', k('move')], ['DEL', k('move')], ['SELECT', '0'],
    ]);
  });

  // ---- KEYS / SCAN / RANDOMKEY -------------------------------------------------------------------

  /** Make database `db` hold exactly `keys` (as strings or bytes) on both servers. */
  async function populate(db: number, keys: Arg[], extra: Cmd[] = []): Promise<void> {
    const cmds: Cmd[] = [['FLUSHDB']];
    for (const key of keys) cmds.push(['SET', key, 'v']);
    cmds.push(...extra);
    await both(cmds, [['SELECT', String(db)]]);
  }

  const GLOB_KEYS: Arg[] = [
    'hello', 'hallo', 'hxllo', 'hllo', 'heeeello', 'h\\llo', 'h*llo', 'h?llo', 'a*', 'a?b', '[x]', 'x', 'X', '', ' ', 'foo:1',
    'foo:2', 'foo:10', 'foo:bar:1', 'FOO:1', 'a-b', 'a]b', 'a^b', 'é', Buffer.from([0xff, 0x00, 0x41]), Buffer.from([0x80]),
    'user:1000:name', 'user:1001:name', 'user:1000:email',
  ];
  const PATTERNS: Arg[] = [
    '*', '**', '', 'hello', 'h?llo', 'h*llo', 'h[ae]llo', 'h[^e]llo', 'h[a-b]llo', 'h[b-a]llo', '*\\**', '\\[x\\]', '[x]',
    'h\\\\llo', '*llo', 'h*', '?', '??', '[', '[a', 'a[', '[]', '[^]', 'a[-]b', 'a[]]b', 'a[\\]]b', 'a[^]b', 'foo:*', 'foo:?',
    'foo:[0-9]', 'foo:[0-9]*', 'user:*:name', '*:name', 'FOO*', 'x', 'X', '\\', 'h\\', 'é', '*é*',
    Buffer.from([0xff, 0x2a]), Buffer.from([0x5b, 0x80, 0x2d, 0xff, 0x5d]), '*a*b*', '*[', '\\*', 'a?b', 'a\\?b',
  ];

  it('KEYS with glob patterns, binary keys included (compared as sets)', async () => {
    await populate(5, GLOB_KEYS);
    const cmds: Cmd[] = PATTERNS.map((p) => ['KEYS', p]);
    cmds.push(['KEYS'], ['KEYS', '*', '*']);
    await same(cmds, [['SELECT', '5']]);
    // And KEYS * is every key, each once.
    const [ours] = await runPipelined(poolkv.port, [['KEYS', '*']], [['SELECT', '5']]);
    assert.deepEqual(sorted(bulkArray(ours!).items), sorted(GLOB_KEYS.map((x) => (Buffer.isBuffer(x) ? x.toString('latin1') : Buffer.from(x).toString('latin1')))));
    // An empty database.
    await same([['FLUSHDB'], ['KEYS', '*'], ['KEYS', 'x*']], [['SELECT', '5']]);
  });

  it('SCAN: full iterations with MATCH, COUNT and TYPE equal Redis and KEYS', async () => {
    const keys: Arg[] = [...GLOB_KEYS];
    for (let i = 0; i < 700; i++) keys.push(`k:${i}`, `user:${i}:name`);
    await populate(6, keys);
    const optionSets: Cmd[] = [
      [], ['COUNT', '1'], ['COUNT', '3'], ['COUNT', '1000'], ['COUNT', '100000'], ['MATCH', 'k:1*'], ['MATCH', 'user:*:name', 'COUNT', '50'],
      ['MATCH', 'nothing*'], ['MATCH', '*'], ['TYPE', 'string'], ['TYPE', 'STRING'], ['TYPE', 'list'], ['TYPE', 'nosuchtype'],
      ['MATCH', 'h?llo', 'TYPE', 'string', 'COUNT', '7'], ['count', '5', 'match', 'k:?'], ['COUNT', '2', 'COUNT', '20'],
    ];
    for (const options of optionSets) {
      const [a, b] = await Promise.all([scanAll(poolkv.port, 6, options), scanAll(redis.port, 6, options)]);
      const ours = new Set(a);
      assert.deepEqual(sorted([...ours]), sorted([...new Set(b)]), `SCAN ${showCmd(options)}`);
    }
    // With a COUNT above the table size one call returns everything and cursor 0, on both.
    await same([['SCAN', '0', 'COUNT', '100000'], ['SCAN', '0', 'COUNT', '100000', 'MATCH', 'k:5*']], [['SELECT', '6']]);
  });

  it('SCAN: reply shape, cursor parsing and option errors', async () => {
    await populate(7, ['a', 'b', 'c']);
    const cmds: Cmd[] = [
      ['SCAN', '0'], ['SCAN', '0', 'COUNT', '10'], ['SCAN', ''], ['SCAN', '+0'], ['SCAN', '-0'], ['SCAN', '00'],
      ['SCAN', ' 1'], ['SCAN', '\t1'], ['SCAN', '1 '], ['SCAN', 'x'], ['SCAN', '1x'], ['SCAN', '-'], ['SCAN', '+'], ['SCAN', '0x1'],
      ['SCAN', '1.0'], ['SCAN', '18446744073709551616'], ['SCAN', '-18446744073709551616'], ['SCAN', '99999999999999999999999'],
      ['SCAN', '0', 'COUNT', '0'], ['SCAN', '0', 'COUNT', '-1'], ['SCAN', '0', 'COUNT', 'x'], ['SCAN', '0', 'COUNT', '1.5'],
      ['SCAN', '0', 'COUNT', '9223372036854775808'], ['SCAN', '0', 'COUNT'], ['SCAN', '0', 'MATCH'], ['SCAN', '0', 'TYPE'],
      ['SCAN', '0', 'FOO', 'bar'], ['SCAN', '0', 'COUNT', '10', 'MATCH'], ['SCAN', 'x', 'COUNT', '0'], ['SCAN', '0', 'COUNT', '0', 'FOO'],
      ['SCAN'], ['scan', '0', 'match', '*', 'count', '100', 'type', 'string'],
      ['SCAN', '0', Buffer.from('count\0x'), '100', Buffer.from('TYPE\0'), Buffer.from('String\0junk')], ['SCAN', Buffer.from('0\0')],
      ['FLUSHDB'], ['SCAN', '0'], ['SCAN', '12345'], ['SCAN', '18446744073709551615'], ['SCAN', '-1'], ['SCAN', '0', 'TYPE', 'string'],
    ];
    const replies = await same(cmds, [['SELECT', '7']]);
    // The cursor is a bulk string, as in Redis.
    assert.equal(replies[0]!.toString('latin1').slice(0, 11), '*2\r\n$1\r\n0\r\n');
    // Any cursor (even one above 2^32, or "-1" = ULONG_MAX) is accepted and lands in range.
    await populate(7, Array.from({ length: 100 }, (_, i) => `s${i}`));
    for (const cursor of ['-1', '18446744073709551615', '4294967296', '4294967297', '123456789']) {
      const [reply] = await runPipelined(poolkv.port, [['SCAN', cursor]], [['SELECT', '7']]);
      const r = scanReply(reply!);
      assert.ok(/^\d+$/.test(r.cursor) && Number(r.cursor) < 2 ** 32, `SCAN ${cursor} → ${r.cursor}`);
    }
  });

  it('SCAN guarantee: every key present throughout is returned while the table grows and shrinks', async () => {
    for (const server of [poolkv, redis]) {
      // Growing: 20 new keys between every call, several table doublings during the iteration.
      const initial: string[] = [];
      for (let i = 0; i < 1000; i++) initial.push(`init:${i}`);
      await populate(8, initial);
      let added = 0;
      const seen = await scanAll(server.port, 8, ['COUNT', '7'], async () => {
        const cmds: Cmd[] = [];
        for (let j = 0; j < 20; j++) cmds.push(['SET', `new:${added++}`, 'v']);
        await runPipelined(server.port, cmds, [['SELECT', '8']]);
      });
      const seenSet = new Set(seen);
      for (const key of initial) assert.ok(seenSet.has(key), `port ${server.port}: ${key} missed while growing (added ${added})`);
      for (const key of seenSet) assert.ok(key.startsWith('init:') || key.startsWith('new:'), `unknown key ${key}`);
      assert.ok(added > 2000, 'the table grew during the iteration');

      // Shrinking: delete keys not in the kept set between calls (the cron shrinks the table meanwhile).
      const kept: string[] = [];
      const doomed: string[] = [];
      for (let i = 0; i < 4000; i++) (i % 10 === 0 ? kept : doomed).push(`s:${i}`);
      await populate(8, [...kept, ...doomed]);
      let next = 0;
      const seen2 = await scanAll(server.port, 8, ['COUNT', '10'], async () => {
        const batch = doomed.slice(next, next + 200);
        next += batch.length;
        if (batch.length > 0) await runPipelined(server.port, [['DEL', ...batch]], [['SELECT', '8']]);
        await new Promise((r) => setTimeout(r, 2));
      });
      const seen2Set = new Set(seen2);
      for (const key of kept) assert.ok(seen2Set.has(key), `port ${server.port}: ${key} missed while shrinking`);
    }
    await both([['FLUSHDB']], [['SELECT', '8']]);
  });

  it('RANDOMKEY', async () => {
    await populate(9, []);
    await same([['RANDOMKEY'], ['RANDOMKEY', 'x']], [['SELECT', '9']]);
    const keys = ['r1', 'r2', 'r3', 'r4', 'r5'];
    await populate(9, keys);
    const seen = new Set<string>();
    const cmds: Cmd[] = Array.from({ length: 200 }, () => ['RANDOMKEY']);
    for (const reply of await runPipelined(poolkv.port, cmds, [['SELECT', '9']])) {
      const s = reply.toString('latin1');
      const m = /^\$2\r\n(r\d)\r\n$/.exec(s);
      assert.ok(m && keys.includes(m[1]!), `RANDOMKEY gave ${show(s)}`);
      seen.add(m[1]!);
    }
    assert.equal(seen.size, keys.length, 'RANDOMKEY reaches every key');
    // Keys whose TTL passed are never returned (they are reclaimed on the way).
    await populate(9, [], [['SET', 'dead1', 'v', 'PX', '20'], ['SET', 'dead2', 'v', 'PX', '20'], ['SET', 'alive', 'v']]);
    await new Promise((r) => setTimeout(r, 60));
    for (const reply of await runPipelined(poolkv.port, cmds.slice(0, 20), [['SELECT', '9']])) {
      assert.equal(reply.toString('latin1'), '$5\r\nalive\r\n');
    }
    await both([['FLUSHDB']], [['SELECT', '9']]);
  });

  it('replies under RESP3 (HELLO 3)', async () => {
    await populate(11, ['a', 'b']);
    await same([
      ['SET', 'c', '10', 'EX', '100'], ['TYPE', 'a'], ['TYPE', 'nope'], ['EXISTS', 'a', 'nope'], ['KEYS', '*'], ['SCAN', '0'],
      ['SCAN', '0', 'MATCH', 'a'], ['OBJECT', 'ENCODING', 'c'], ['OBJECT', 'ENCODING', 'nope'], ['OBJECT', 'REFCOUNT', 'nope'],
      ['OBJECT', 'FREQ', 'a'], ['OBJECT', 'HELP'], ['TTL', 'c'], ['PTTL', 'nope'], ['EXPIRETIME', 'a'], ['RENAME', 'nope', 'x'],
      ['COPY', 'a', 'd'], ['MOVE', 'd', '12'], ['PERSIST', 'c'], ['FLUSHDB'], ['RANDOMKEY'], ['SCAN', '0'], ['KEYS', '*'],
    ], [['HELLO', '3'], ['SELECT', '11']]);
    await both([['FLUSHDB']], [['SELECT', '12']]);
  });

  // ---- randomized ----------------------------------------------------------------------------------

  it('randomized: thousands of keyspace and TTL commands over a small key set', async () => {
    const seed = Number(process.env.KEYS_SEED ?? 0) || Math.floor(Math.random() * 2 ** 31);
    const rnd = rng(seed);
    const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rnd() * xs.length)]!;
    const names = ['a', 'b', 'c', 'd', 'e', 'f'].map((n) => `rk:${n}`);
    const nowS = Math.floor(Date.now() / 1000);
    const values = ['1', '0', '9999', '10000', '-7', 'hello', '', 'x'.repeat(44), 'y'.repeat(45), '3.14', '007'];
    const expireValue = (cmd: string): string => {
      const x = rnd();
      const future = x < 0.6;
      if (x > 0.93) return pick(['abc', '', '1.5', '9223372036854775807', '-9223372036854775808']);
      switch (cmd) {
        case 'EXPIRE': return future ? String(1000 + Math.floor(rnd() * 100000)) : String(-Math.floor(rnd() * 10));
        case 'PEXPIRE': return future ? String(1000000 + Math.floor(rnd() * 1e8)) : String(-Math.floor(rnd() * 1000));
        case 'EXPIREAT': return future ? String(nowS + 1000 + Math.floor(rnd() * 100000)) : String(nowS - Math.floor(rnd() * 1e6));
        default: return future ? String((nowS + 1000) * 1000 + Math.floor(rnd() * 1e8)) : String(Math.floor(rnd() * nowS * 1000));
      }
    };
    const flagSets: Cmd[] = [[], [], [], ['NX'], ['XX'], ['GT'], ['LT'], ['XX', 'GT'], ['LT', 'XX'], ['NX', 'GT'], ['GT', 'LT'], ['ZZ']];
    const gen = (): Cmd => {
      const key = pick(names);
      const other = pick(names);
      const x = rnd();
      if (x < 0.14) return rnd() < 0.3 ? ['SET', key, pick(values), 'EX', String(1000 + Math.floor(rnd() * 5000))] : ['SET', key, pick(values)];
      if (x < 0.18) return ['GET', key];
      if (x < 0.21) return [pick(['DEL', 'UNLINK']), key, ...(rnd() < 0.5 ? [other] : [])];
      if (x < 0.24) return [pick(['EXISTS', 'TOUCH']), key, other, key];
      if (x < 0.26) return ['TYPE', key];
      if (x < 0.31) return [pick(['RENAME', 'RENAMENX']), key, rnd() < 0.1 ? key : other];
      if (x < 0.36) {
        const cmd: Cmd = ['COPY', key, rnd() < 0.1 ? key : other];
        if (rnd() < 0.4) cmd.push('DB', pick(['0', '1', '1', '16', 'x']));
        if (rnd() < 0.4) cmd.push('REPLACE');
        return cmd;
      }
      if (x < 0.39) return ['MOVE', key, pick(['0', '1', '1', '16', '-1', 'x'])];
      if (x < 0.41) return ['SELECT', pick(['0', '1'])];
      if (x < 0.55) {
        const cmd = pick(['EXPIRE', 'PEXPIRE', 'EXPIREAT', 'PEXPIREAT']);
        return [cmd, key, expireValue(cmd), ...pick(flagSets)];
      }
      if (x < 0.66) return [pick(['TTL', 'PTTL', 'EXPIRETIME', 'PEXPIRETIME']), key];
      if (x < 0.7) return ['PERSIST', key];
      // (Not IDLETIME: small integers are shared objects in Redis, with one access clock for all their keys.)
      if (x < 0.75) return ['OBJECT', pick(['ENCODING', 'ENCODING', 'FREQ']), key];
      if (x < 0.78) return ['INCR', key];
      if (x < 0.82) return ['DBSIZE'];
      if (x < 0.87) return ['KEYS', pick(['*', 'rk:*', 'rk:[a-c]', 'rk:?', 'zz*'])];
      if (x < 0.92) return ['SCAN', '0', 'COUNT', '1000', ...(rnd() < 0.5 ? ['MATCH', pick(['rk:*', 'rk:[d-f]', '*a'])] : [])];
      if (x < 0.94) return ['RANDOMKEY'];
      if (x < 0.96) return ['SCAN', pick(['x', '-', ' 0']), 'COUNT', '1000'];
      return ['SET', key, pick(values), 'PX', String(1000000 + Math.floor(rnd() * 1e6))];
    };
    // Start clean in both databases.
    await both([['FLUSHALL']]);
    let db = '0';
    const total = 10000;
    for (let done = 0; done < total; done += 250) {
      const cmds: Cmd[] = [];
      for (let i = 0; i < 250; i++) cmds.push(gen());
      const prefix: Cmd[] = [['SELECT', db]];
      const { ours, theirs } = await both(cmds, prefix);
      for (let i = 0; i < cmds.length; i++) {
        assert.ok(equivalent(cmds[i]!, ours[i]!, theirs[i]!),
          `seed ${seed}, command #${done + i}: ${showCmd(cmds[i]!)}\n  poolkv: ${show(ours[i]!)}\n  redis:  ${show(theirs[i]!)}`);
        const c = cmds[i]!;
        if (String(c[0]) === 'SELECT' && ours[i]!.toString('latin1') === '+OK\r\n') db = String(c[1]);
      }
    }
    // Both databases end up with the same keys, values and (within tolerance) TTLs.
    for (const d of ['0', '1']) {
      const check: Cmd[] = [['KEYS', '*']];
      for (const n of names) check.push(['GET', n], ['PTTL', n], ['OBJECT', 'ENCODING', n]);
      await same(check, [['SELECT', d]]);
    }
    await both([['FLUSHALL']]);
  });
});
