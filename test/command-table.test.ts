// The command table against a real redis-server 7.0: for every command and
// subcommand poolkv declares, COMMAND INFO must agree with Redis's on arity,
// flags, key positions and ACL categories (and COMMAND DOCS on summary, since,
// group and complexity; tips too). This is the check that keeps every family's
// declarations honest. Commands Redis has and poolkv does not must get the
// unknown-command (or unknown-subcommand) error.
import { strict as assert } from 'assert';
import { allCommandSpecs } from '../src/commands/index';
import type { CommandSpec } from '../src/commands/types';
import { encodeCommand, rawCommand, replyLength, startPoolkv, startRedis, type RedisProcess } from './helpers/processes';

const RedisParser = require('redis-parser') as new (options: {
  returnReply(reply: unknown): void; returnError(err: Error): void; returnBuffers?: boolean;
}) => { execute(b: Buffer): void };

type Reply = unknown;

/** Decode RESP2 replies (errors become Error objects). */
function decode(bytes: Buffer): Reply[] {
  const out: Reply[] = [];
  const parser = new RedisParser({ returnReply: (r) => out.push(r), returnError: (e) => out.push(e) });
  parser.execute(bytes);
  return out;
}

/** Send commands pipelined on one fresh connection; the raw bytes of each reply. */
async function session(port: number, commands: ReadonlyArray<ReadonlyArray<string | Buffer>>): Promise<Buffer[]> {
  const request = Buffer.concat(commands.map((args) => encodeCommand(args)));
  const bytes = await rawCommand(port, request, { replies: commands.length, timeoutMs: 20000 });
  const out: Buffer[] = [];
  let at = 0;
  for (let i = 0; i < commands.length; i++) {
    const len = replyLength(bytes, at);
    out.push(bytes.subarray(at, at + len));
    at += len;
  }
  return out;
}

async function query(port: number, ...args: string[]): Promise<Reply> {
  const [reply] = await session(port, [args]);
  return decode(reply!)[0];
}

/** One COMMAND INFO entry, flattened for comparison. */
interface Info {
  name: string;
  arity: number;
  flags: string[];
  firstKey: number;
  lastKey: number;
  step: number;
  acl: string[];
  tips: string[];
  subcommands: Info[];
}

function toInfo(raw: Reply): Info | null {
  if (raw === null) return null;
  const e = raw as unknown[];
  return {
    name: String(e[0]),
    arity: e[1] as number,
    flags: (e[2] as string[]).map(String),
    firstKey: e[3] as number,
    lastKey: e[4] as number,
    step: e[5] as number,
    acl: (e[6] as string[]).map(String),
    tips: (e[7] as string[]).map(String),
    subcommands: (e[9] as unknown[]).map((s) => toInfo(s)!),
  };
}

/**
 * Declarations that knowingly differ from Redis 7.0.15, with the reason. Anything
 * else that differs fails the test.
 */
const KNOWN_DEVIATIONS: Record<string, string> = {
  // CLIENT SETINFO is Redis 7.2's; clients send it on connect, so poolkv has it.
  'client|setinfo': 'absent from Redis 7.0.15',
};

/** Fields where a declaration is allowed to differ, per command, with the reason (none today). */
const KNOWN_FIELD_DEVIATIONS: Record<string, { field: keyof Info; reason: string }> = {};

function flatten(specs: readonly CommandSpec[], parent = ''): Array<{ fullName: string; spec: CommandSpec }> {
  const out: Array<{ fullName: string; spec: CommandSpec }> = [];
  for (const spec of specs) {
    const fullName = parent === '' ? spec.name.toLowerCase() : `${parent}|${spec.name.toLowerCase()}`;
    out.push({ fullName, spec });
    if (spec.subcommands) out.push(...flatten(spec.subcommands, fullName));
  }
  return out;
}

describe('command table vs Redis 7.0 COMMAND INFO', function () {
  this.timeout(60000);
  let redis: RedisProcess;
  let poolkv: RedisProcess;
  const declared = allCommandSpecs();
  const declaredAll = flatten(declared);
  const ours = new Map<string, Info>();
  const theirs = new Map<string, Info | null>();

  before(async () => {
    [redis, poolkv] = await Promise.all([startRedis(), startPoolkv()]);
    const names = declared.map((spec) => spec.name);
    const [ourReply, theirReply] = await Promise.all([
      query(poolkv.port, 'COMMAND', 'INFO', ...names),
      query(redis.port, 'COMMAND', 'INFO', ...names),
    ]);
    const collect = (list: Reply, into: Map<string, Info | null>, keys: readonly string[]): void => {
      (list as Reply[]).forEach((raw, i) => {
        const info = toInfo(raw);
        into.set(keys[i]!.toLowerCase(), info);
        for (const sub of info?.subcommands ?? []) into.set(sub.name, sub);
      });
    };
    collect(ourReply, ours as Map<string, Info | null>, names);
    collect(theirReply, theirs, names);
  });

  after(async () => {
    await Promise.all([redis?.stop(), poolkv?.stop()]);
  });

  it('COMMAND INFO answers for every declared command and subcommand', () => {
    const missing = declaredAll.filter(({ fullName }) => !ours.get(fullName));
    assert.deepEqual(missing.map((m) => m.fullName), []);
  });

  it('every declared command exists in Redis 7.0 with the same arity, flags, key positions and ACL categories', () => {
    const problems: string[] = [];
    for (const { fullName } of declaredAll) {
      if (KNOWN_DEVIATIONS[fullName]) continue;
      const mine = ours.get(fullName);
      const real = theirs.get(fullName);
      if (!mine) continue; // reported by the test above
      if (!real) {
        problems.push(`${fullName}: Redis 7.0.15 has no such command`);
        continue;
      }
      const allowed = KNOWN_FIELD_DEVIATIONS[fullName]?.field;
      const fields: Array<keyof Info> = ['arity', 'flags', 'firstKey', 'lastKey', 'step', 'acl'];
      for (const field of fields) {
        if (field === allowed) continue;
        const a = JSON.stringify(mine[field]);
        const b = JSON.stringify(real[field]);
        if (a !== b) problems.push(`${fullName}: ${field} is ${a}, Redis says ${b}`);
      }
    }
    assert.deepEqual(problems, [], `declaration mismatches:\n  ${problems.join('\n  ')}`);
  });

  it('declared subcommands are a subset of Redis\'s, and tips match Redis\'s', () => {
    const problems: string[] = [];
    for (const { fullName } of declaredAll) {
      if (KNOWN_DEVIATIONS[fullName]) continue;
      const mine = ours.get(fullName);
      const real = theirs.get(fullName);
      if (!mine || !real) continue;
      const realSubs = new Set(real.subcommands.map((s) => s.name));
      for (const sub of mine.subcommands) {
        if (!realSubs.has(sub.name) && !KNOWN_DEVIATIONS[sub.name]) problems.push(`${sub.name}: not a Redis 7.0 subcommand`);
      }
      if (JSON.stringify(mine.tips) !== JSON.stringify(real.tips)) {
        problems.push(`${fullName}: tips ${JSON.stringify(mine.tips)}, Redis says ${JSON.stringify(real.tips)}`);
      }
    }
    assert.deepEqual(problems, [], problems.join('\n'));
  });

  it('COMMAND DOCS agrees with Redis on summary, since, group and complexity', async () => {
    const names = declared.map((spec) => spec.name);
    const toMap = (flat: unknown[]): Map<string, unknown> => {
      const m = new Map<string, unknown>();
      for (let i = 0; i < flat.length; i += 2) m.set(String(flat[i]), flat[i + 1]);
      return m;
    };
    const docsOf = (reply: Reply): Map<string, Map<string, unknown>> => {
      const out = new Map<string, Map<string, unknown>>();
      const walk = (flat: unknown[]): void => {
        for (const [name, doc] of toMap(flat)) {
          const fields = toMap(doc as unknown[]);
          out.set(name, fields);
          if (fields.has('subcommands')) walk(fields.get('subcommands') as unknown[]);
        }
      };
      walk(reply as unknown[]);
      return out;
    };
    const [mine, real] = await Promise.all([
      query(poolkv.port, 'COMMAND', 'DOCS', ...names).then(docsOf),
      query(redis.port, 'COMMAND', 'DOCS', ...names).then(docsOf),
    ]);
    const problems: string[] = [];
    for (const { fullName } of declaredAll) {
      if (KNOWN_DEVIATIONS[fullName]) continue;
      const a = mine.get(fullName);
      const b = real.get(fullName);
      if (!a || !b) {
        if (!a) problems.push(`${fullName}: no COMMAND DOCS entry from poolkv`);
        continue;
      }
      for (const field of ['summary', 'since', 'group', 'complexity']) {
        const x = a.get(field) === undefined ? undefined : String(a.get(field));
        const y = b.get(field) === undefined ? undefined : String(b.get(field));
        if (x !== y) problems.push(`${fullName}: ${field} is ${JSON.stringify(x)}, Redis says ${JSON.stringify(y)}`);
      }
    }
    assert.deepEqual(problems, [], `docs mismatches:\n  ${problems.join('\n  ')}`);
  });

  it('bare COMMAND lists every command as COMMAND INFO describes it', async () => {
    const all = (await query(poolkv.port, 'COMMAND')) as Reply[];
    assert.equal(all.length, declared.length);
    const byName = new Map(all.map((raw) => [toInfo(raw)!.name, JSON.stringify(toInfo(raw))]));
    for (const spec of declared) assert.equal(byName.get(spec.name), JSON.stringify(ours.get(spec.name)));
  });

  it('COMMAND COUNT is the number of top-level declarations, COMMAND LIST names them all', async () => {
    assert.equal(await query(poolkv.port, 'COMMAND', 'COUNT'), declared.length);
    const list = (await query(poolkv.port, 'COMMAND', 'LIST')) as string[];
    assert.deepEqual([...list].map(String).sort(), declaredAll.map((d) => d.fullName).sort());
  });

  it('a command Redis has and poolkv does not is an unknown command', async () => {
    const redisNames = ((await query(redis.port, 'COMMAND', 'LIST')) as string[]).map(String);
    const declaredNames = new Set(declaredAll.map((d) => d.fullName));
    const missingTop = redisNames.filter((n) => !n.includes('|') && !declaredNames.has(n));
    assert.ok(missingTop.length > 0);
    const replies = await session(poolkv.port, missingTop.map((name) => [name, 'x']));
    missingTop.forEach((name, i) => {
      assert.equal(replies[i]!.toString('latin1'), `-ERR unknown command '${name}', with args beginning with: 'x' \r\n`);
    });
  });

  it('a Redis subcommand poolkv does not have is an unknown subcommand', async () => {
    const redisNames = ((await query(redis.port, 'COMMAND', 'LIST')) as string[]).map(String);
    const declaredNames = new Set(declaredAll.map((d) => d.fullName));
    const missingSubs = redisNames.filter((n) => n.includes('|') && declaredNames.has(n.split('|')[0]!) && !declaredNames.has(n));
    const replies = await session(poolkv.port, missingSubs.map((name) => name.split('|')));
    missingSubs.forEach((name, i) => {
      const [container, sub] = name.split('|') as [string, string];
      assert.equal(replies[i]!.toString('latin1'), `-ERR unknown subcommand '${sub}'. Try ${container.toUpperCase()} HELP.\r\n`);
    });
  });

  it('COMMAND INFO, DOCS and LIST replies have Redis\'s shapes (RESP2 and RESP3)', async () => {
    for (const hello of [[], [['HELLO', '3']]]) {
      const commands = [
        ...hello,
        ['COMMAND', 'INFO', 'dbsize', 'nosuchcommand', 'client|id', 'CONFIG|GET'],
        ['COMMAND', 'DOCS', 'dbsize', 'nosuchcommand', 'time'],
        ['COMMAND', 'LIST', 'FILTERBY', 'PATTERN', 'DBSIZ*'],
        ['COMMAND', 'LIST', 'FILTERBY', 'ACLCAT', 'nosuchcategory'],
        ['COMMAND', 'LIST', 'FILTERBY', 'MODULE', 'nosuchmodule'],
        ['COMMAND', 'LIST', 'FILTERBY', 'nosuchfilter', 'x'],
        ['COMMAND', 'LIST', 'FILTERBY', 'PATTERN'],
        ['COMMAND', 'LIST', 'bogus'],
        ['COMMAND', 'INFO', 'client|nosuch', 'get|x'],
        ['COMMAND', 'COUNT', 'extra'],
        ['COMMAND', 'GETKEYS', 'nosuchcommand', 'a'],
        ['COMMAND', 'GETKEYS', 'dbsize', 'a'],
        ['COMMAND', 'GETKEYS', 'client', 'id'],
      ];
      const [mine, real] = await Promise.all([session(poolkv.port, commands), session(redis.port, commands)]);
      const skip = hello.length;
      for (let i = skip; i < commands.length; i++) {
        let a = mine[i]!.toString('latin1');
        let b = real[i]!.toString('latin1');
        if (commands[i]![1] === 'DOCS') {
          // Redis adds "history" and "arguments"; compare only the documented fields.
          a = a.replace(/\r\n/g, '|');
          b = b.replace(/\r\n/g, '|');
          for (const field of ['summary', 'since', 'group', 'complexity']) {
            const grab = (s: string): string | undefined => new RegExp(`\\$${field.length}\\|${field}\\|\\$\\d+\\|([^|]*)`).exec(s)?.[1];
            assert.equal(grab(a), grab(b), `${commands[i]!.join(' ')}: ${field}`);
          }
          continue;
        }
        assert.equal(a, b, `${commands[i]!.join(' ')} (${skip ? 'RESP3' : 'RESP2'})`);
      }
    }
  });

  it('COMMAND GETKEYS extracts keys as Redis does for the declared range commands', async () => {
    const byName = new Map(declaredAll.map((d) => [d.fullName, d.spec]));
    const cases: string[][] = [];
    for (const [name, spec] of byName) {
      if (spec.firstKey <= 0) continue;
      // A plausible argument vector: enough arguments for the arity, then a few more for variadic commands.
      const argc = spec.arity > 0 ? spec.arity : -spec.arity + 3;
      const args = name.split('|');
      for (let i = args.length; i < argc; i++) args.push(`k${i}`);
      cases.push(['COMMAND', 'GETKEYS', ...args]);
    }
    if (cases.length === 0) return;
    const [mine, real] = await Promise.all([session(poolkv.port, cases), session(redis.port, cases)]);
    const problems: string[] = [];
    cases.forEach((c, i) => {
      const a = mine[i]!.toString('latin1');
      const b = real[i]!.toString('latin1');
      if (a !== b) problems.push(`${c.slice(2).join(' ')}: ${JSON.stringify(a)} vs Redis ${JSON.stringify(b)}`);
    });
    assert.deepEqual(problems, [], problems.join('\n'));
  });
});
