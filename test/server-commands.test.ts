// The server command group (INFO, CONFIG, TIME, DBSIZE, FLUSHDB, FLUSHALL,
// SWAPDB) and CLIENT, against a real redis-server 7.0 side by side: the same
// requests on both, replies compared byte for byte where they are
// deterministic, by shape and field format where they are not. Then the
// clients people use: redis-cli and ioredis.
import { strict as assert } from 'assert';
import { execFile } from 'child_process';
import * as net from 'net';
import { promisify } from 'util';
import { encodeCommand, rawCommand, replyLength, startPoolkv, startRedis, type RedisProcess } from './helpers/processes';

const Redis = require('ioredis') as new (options: Record<string, unknown>) => IoRedis;
interface IoRedis {
  call(...args: Array<string | number>): Promise<unknown>;
  info(...sections: string[]): Promise<string>;
  dbsize(): Promise<number>;
  set(key: string, value: string): Promise<unknown>;
  get(key: string): Promise<string | null>;
  quit(): Promise<unknown>;
  disconnect(): void;
  status: string;
  once(event: string, cb: (...args: unknown[]) => void): void;
}

const RedisParser = require('redis-parser') as new (options: {
  returnReply(reply: unknown): void; returnError(err: Error): void;
}) => { execute(b: Buffer): void };

const execFileAsync = promisify(execFile);
const REDIS_CLI = '/usr/bin/redis-cli';

function decode(bytes: Buffer): unknown {
  const out: unknown[] = [];
  new RedisParser({ returnReply: (r) => out.push(r), returnError: (e) => out.push(e) }).execute(bytes);
  return out[0];
}

type Args = ReadonlyArray<string | Buffer>;

/** Send commands pipelined on one fresh connection; the raw bytes of each reply, as latin1 strings. */
async function session(port: number, commands: readonly Args[]): Promise<string[]> {
  const bytes = await rawCommand(port, Buffer.concat(commands.map((c) => encodeCommand(c))), {
    replies: commands.length, timeoutMs: 20000,
  });
  const out: string[] = [];
  let at = 0;
  for (let i = 0; i < commands.length; i++) {
    const len = replyLength(bytes, at);
    out.push(bytes.toString('latin1', at, at + len));
    at += len;
  }
  return out;
}

async function one(port: number, ...args: string[]): Promise<unknown> {
  const [reply] = await session(port, [args]);
  return decode(Buffer.from(reply!, 'latin1'));
}

/** Parse INFO text into sections of key → value. */
function parseInfo(text: string): Map<string, Map<string, string>> {
  const sections = new Map<string, Map<string, string>>();
  let current: Map<string, string> | null = null;
  for (const line of text.split('\r\n')) {
    if (line === '') continue;
    if (line.startsWith('# ')) {
      current = new Map();
      sections.set(line.slice(2), current);
      continue;
    }
    const colon = line.indexOf(':');
    assert.ok(current && colon > 0, `bad INFO line ${JSON.stringify(line)}`);
    current.set(line.slice(0, colon), line.slice(colon + 1));
  }
  return sections;
}

/** The lexical kind of an INFO value, so fields can be checked to "parse the same way". */
function valueKind(value: string): string {
  if (/^-?\d+$/.test(value)) return 'integer';
  if (/^-?\d+\.\d{2}$/.test(value)) return 'fixed2';
  if (/^\d+\.\d{6}$/.test(value)) return 'cpu-seconds';
  if (/^\d+\.\d{2}%$/.test(value)) return 'percent';
  if (/^(\d+B|\d+\.\d{2}[KMGTP])$/.test(value)) return 'human-bytes';
  if (/^[0-9a-f]{40}$/.test(value)) return 'hex40';
  if (/^(\w+=[^,]*)(,\w+=[^,]*)*$/.test(value)) return 'kv-list';
  return 'string';
}

describe('server commands vs Redis 7.0', function () {
  this.timeout(60000);
  let redis: RedisProcess;
  let poolkv: RedisProcess;

  before(async () => {
    [redis, poolkv] = await Promise.all([startRedis(), startPoolkv()]);
  });
  after(async () => {
    await Promise.all([redis?.stop(), poolkv?.stop()]);
  });

  /**
   * Run the same pipelined session on both servers and require identical bytes
   * (the first `skip` replies, e.g. HELLO's with its client id, are not compared).
   */
  async function same(commands: readonly Args[], label = '', skip = 0): Promise<string[]> {
    const [mine, real] = await Promise.all([session(poolkv.port, commands), session(redis.port, commands)]);
    commands.forEach((c, i) => {
      if (i >= skip) assert.equal(mine[i], real[i], `${label}${c.map(String).join(' ')}`);
    });
    return mine;
  }

  /** CONFIG GET with several names: Redis answers in its dict's hash order, so compare as sorted pairs. */
  async function sameConfigPairs(resp3: boolean, args: string[]): Promise<void> {
    const commands: Args[] = resp3 ? [['HELLO', '3'], ['CONFIG', 'GET', ...args]] : [['CONFIG', 'GET', ...args]];
    const [mine, real] = await Promise.all([session(poolkv.port, commands), session(redis.port, commands)]);
    const pairs = (reply: string): string[] => {
      const header = reply.slice(0, reply.indexOf('\r\n') + 2);
      const items = reply.slice(header.length).split('\r\n').filter((x) => x !== '');
      const out: string[] = [];
      for (let i = 0; i < items.length; i += 4) out.push(items.slice(i, i + 4).join('|'));
      return [header, ...out.sort()];
    };
    assert.deepEqual(pairs(mine.at(-1)!), pairs(real.at(-1)!), `CONFIG GET ${args.join(' ')}${resp3 ? ' (RESP3)' : ''}`);
  }

  describe('CONFIG', () => {
    it('CONFIG GET replies as Redis does (direct names echo as typed, several patterns, RESP2 and RESP3)', async () => {
      const gets: Args[] = [
        ['CONFIG', 'GET', 'maxmemory'],
        ['CONFIG', 'GET', 'MAXMEMORY'],
        ['CONFIG', 'GET', 'maxmemory-p*'],
        ['CONFIG', 'GET', 'no-such-option'],
        ['CONFIG', 'GET', 'no-such-*'],
        ['CONFIG', 'GET'],
      ];
      await same(gets);
      await same([['HELLO', '3'], ...gets], 'RESP3: ', 1);
      for (const resp3 of [false, true]) {
        await sameConfigPairs(resp3, ['maxmemory', 'MaxMemory', 'maxmemory-policy']);
        await sameConfigPairs(resp3, ['maxmemory-policy', 'maxmemory-p*', 'timeout']);
        await sameConfigPairs(resp3, ['databases', 'hz', 'maxclients', 'timeout', 'tcp-keepalive', 'lfu-log-factor']);
      }
    });

    it('CONFIG SET replies and errors as Redis does, all or nothing', async () => {
      await same([
        ['CONFIG', 'SET', 'maxmemory', '10mb'],
        ['CONFIG', 'GET', 'maxmemory'],
        ['CONFIG', 'SET', 'maxmemory', 'abc'],
        ['CONFIG', 'SET', 'no-such-option', 'x'],
        ['CONFIG', 'SET', 'maxmemory', '1', 'MAXMEMORY', '2'],
        ['CONFIG', 'SET', 'maxmemory', '1', 'x'],
        ['CONFIG', 'SET', 'maxmemory'],
        ['CONFIG', 'SET', 'daemonize', 'yes'],
        ['CONFIG', 'SET', 'maxmemory-policy', 'bogus'],
        // Atomic: the valid maxmemory is not kept when the policy is refused.
        ['CONFIG', 'SET', 'maxmemory', '5mb', 'maxmemory-policy', 'bogus'],
        ['CONFIG', 'GET', 'maxmemory'],
        ['CONFIG', 'SET', 'no-such-option', '1', 'daemonize', 'yes'],
        ['CONFIG', 'SET', 'daemonize', 'yes', 'no-such-option', '1'],
        ['CONFIG', 'SET', 'maxmemory', '0', 'maxmemory-policy', 'allkeys-lru', 'hz', '10'],
        ['CONFIG', 'GET', 'maxmemory-policy'],
        ['CONFIG', 'SET', 'maxmemory-policy', 'noeviction'],
        ['CONFIG', 'RESETSTAT'],
        ['CONFIG', 'RESETSTAT', 'extra'],
        ['CONFIG', 'NOSUCH'],
        ['CONFIG'],
      ]);
    });

    it('CONFIG SET maxmemory reaches the pool (INFO memory, OOM on writes) and the policy reaches the store', async () => {
      const both = async (commands: Args[]): Promise<string[]> => same(commands);
      await both([['CONFIG', 'SET', 'maxmemory', '7mb']]);
      const info = parseInfo(String(await one(poolkv.port, 'INFO', 'memory'))).get('Memory')!;
      assert.equal(info.get('maxmemory'), String(7 * 1024 * 1024));
      assert.equal(info.get('maxmemory_human'), '7.00M');
      // A limit far below what is used: denyoom commands are refused, as by Redis.
      await both([
        ['SET', 'oomkey', 'v'],
        ['CONFIG', 'SET', 'maxmemory', '1'],
        ['SET', 'oomkey2', 'v'],
        ['CONFIG', 'SET', 'maxmemory', '0'],
        ['SET', 'oomkey2', 'v'],
        ['DEL', 'oomkey', 'oomkey2'],
      ]);
      // LFU policies switch the access word to LFU counters: OBJECT FREQ starts answering.
      await both([
        ['SET', 'freqkey', 'v'],
        ['OBJECT', 'FREQ', 'freqkey'],
        ['DEL', 'freqkey'],
        ['CONFIG', 'SET', 'maxmemory-policy', 'allkeys-lfu'],
        ['SET', 'freqkey', 'v'],
        ['OBJECT', 'FREQ', 'freqkey'],
        ['CONFIG', 'SET', 'maxmemory-policy', 'noeviction'],
        ['OBJECT', 'FREQ', 'freqkey'],
        ['DEL', 'freqkey'],
      ]);
      const policy = parseInfo(String(await one(poolkv.port, 'INFO', 'memory'))).get('Memory')!;
      assert.equal(policy.get('maxmemory_policy'), 'noeviction');
    });

    it('CONFIG RESETSTAT zeroes the INFO stats and commandstats', async () => {
      await session(poolkv.port, [['DBSIZE'], ['NOSUCHCOMMAND'], ['CONFIG', 'RESETSTAT']]);
      const info = parseInfo(String(await one(poolkv.port, 'INFO', 'stats', 'commandstats', 'errorstats')));
      assert.equal(info.get('Stats')!.get('total_error_replies'), '0');
      assert.equal(info.get('Stats')!.get('keyspace_hits'), '0');
      // RESETSTAT is counted after it ran (as in Redis); nothing before it remains.
      assert.deepEqual([...info.get('Commandstats')!.keys()], ['cmdstat_config|resetstat']);
      assert.deepEqual([...info.get('Errorstats')!.keys()], []);
    });

    it('CONFIG HELP lists what is offered; REWRITE is not offered', async () => {
      const help = (await one(poolkv.port, 'config', 'help')) as string[];
      assert.equal(help[0], 'CONFIG <subcommand> [<arg> [value] [opt] ...]. Subcommands are:');
      assert.deepEqual(help.slice(-2), ['HELP', '    Prints this help.']);
      assert.ok(!help.some((line) => line.startsWith('REWRITE')));
      assert.deepEqual(await session(poolkv.port, [['CONFIG', 'REWRITE']]), ["-ERR unknown subcommand 'REWRITE'. Try CONFIG HELP.\r\n"]);
    });
  });

  describe('DBSIZE, FLUSHDB, FLUSHALL, SWAPDB, TIME', () => {
    it('have Redis\'s effects and errors', async () => {
      await same([['FLUSHALL']]);
      await same([
        ['SET', 'a', '1'], ['SET', 'b', '2'], ['SELECT', '1'], ['SET', 'c', '3'], ['SELECT', '0'],
        ['DBSIZE'],
        ['SWAPDB', '0', '1'],
        ['DBSIZE'], ['GET', 'c'], ['GET', 'a'],
        ['SELECT', '1'], ['DBSIZE'], ['GET', 'a'],
        ['SWAPDB', '1', '1'], ['DBSIZE'],
        ['SWAPDB', '0', '1'], ['SELECT', '0'], ['DBSIZE'],
        ['SWAPDB', 'a', '1'], ['SWAPDB', '0', 'b'], ['SWAPDB', 'a', 'b'],
        ['SWAPDB', '0', '16'], ['SWAPDB', '-1', '0'], ['SWAPDB', '0', '2147483648'],
        ['SWAPDB', '0', ' 1'], ['SWAPDB', '+1', '0'], ['SWAPDB', '01', '0'], ['SWAPDB', '0'],
        ['FLUSHDB', 'foo'], ['FLUSHDB', 'SYNC', 'extra'], ['FLUSHALL', 'bar'],
        ['FLUSHDB'], ['DBSIZE'], ['GET', 'a'],
        ['SELECT', '1'], ['DBSIZE'],
        ['SET', 'x', '1'], ['SELECT', '5'], ['SET', 'y', '1'],
        ['FLUSHDB', 'async'], ['DBSIZE'], ['SELECT', '1'], ['DBSIZE'],
        ['FLUSHALL', 'ASYNC'], ['DBSIZE'],
        ['SET', 'z', '1'], ['FLUSHALL', 'sync'], ['DBSIZE'], ['FLUSHALL'],
        ['DBSIZE', 'extra'], ['TIME', 'extra'],
      ]);
    });

    it('keys survive a SWAPDB round trip with their values and TTLs', async () => {
      await same([
        ['FLUSHALL'],
        ['SET', 'k', 'v', 'EX', '1000'], ['SELECT', '9'], ['SET', 'other', 'w'],
        ['SWAPDB', '9', '0'], ['GET', 'other'], ['TTL', 'k'], ['SELECT', '0'], ['GET', 'k'], ['TTL', 'k'],
        ['GET', 'other'], ['SWAPDB', '0', '9'], ['TTL', 'k'], ['EXISTS', 'other'],
        ['FLUSHALL'],
      ]);
    });

    it('TIME is [seconds, microseconds] as bulk strings, close to our clock', async () => {
      const [mine, real] = await Promise.all([one(poolkv.port, 'TIME'), one(redis.port, 'TIME')]);
      for (const reply of [mine, real] as string[][]) {
        assert.equal(reply.length, 2);
        assert.match(reply[0]!, /^\d+$/);
        assert.match(reply[1]!, /^\d{1,6}$/);
      }
      const [secs, micros] = (mine as string[]).map(Number) as [number, number];
      assert.ok(Math.abs(secs * 1000 + micros / 1000 - Date.now()) < 2000);
    });
  });

  describe('INFO', () => {
    it('selects sections as Redis 7.0 does (default, all, everything, several, unknown)', async () => {
      const headers = (text: string): string[] => text.split('\r\n').filter((l) => l.startsWith('# '));
      const ask = async (...args: string[]): Promise<[string[], string[]]> => {
        const [a, b] = await Promise.all([one(poolkv.port, 'INFO', ...args), one(redis.port, 'INFO', ...args)]);
        return [headers(String(a)), headers(String(b))];
      };
      for (const args of [[], ['default'], ['server', 'clients'], ['SERVER', 'keyspace', 'server'], ['nosuch', 'cpu'], ['module_list'],
        ['modules'], ['commandstats'], ['errorstats'], ['latencystats'], ['default', 'commandstats']]) {
        const [mine, real] = await ask(...args);
        assert.deepEqual(mine, real, `INFO ${args.join(' ')}`);
      }
      for (const args of [['all'], ['everything'], ['all', 'slabs']]) {
        const [mine, real] = await ask(...args);
        assert.deepEqual(mine, [...real, '# Slabs'], `INFO ${args.join(' ')}`);
      }
      assert.deepEqual((await ask('slabs'))[0], ['# Slabs']);
      // Unknown sections: an empty reply, not an error.
      await same([['INFO', 'nosuchsection'], ['INFO', 'nosuch', 'other']]);
    });

    it('is a bulk string in RESP2 and a verbatim txt string in RESP3, lines ending in CRLF', async () => {
      const [mine2, mine3] = await session(poolkv.port, [['INFO', 'server'], ['HELLO', '3'], ['INFO', 'server']])
        .then((r) => [r[0]!, r[2]!]);
      assert.match(mine2, /^\$\d+\r\n# Server\r\n/);
      assert.match(mine3, /^=\d+\r\ntxt:# Server\r\n/);
      const body = mine2.slice(mine2.indexOf('\r\n') + 2, -2);
      assert.ok(body.endsWith('\r\n'));
      assert.ok(!/[^\r]\n/.test(body), 'every line ends in CRLF');
      assert.equal(Buffer.byteLength(body, 'latin1'), Number(/^\$(\d+)/.exec(mine2)![1]));
    });

    it('every field also in Redis\'s section parses the same way; extra fields are poolkv\'s own', async () => {
      const [mineText, realText] = await Promise.all([one(poolkv.port, 'INFO', 'everything'), one(redis.port, 'INFO', 'everything')]);
      const mine = parseInfo(String(mineText));
      const real = parseInfo(String(realText));
      const problems: string[] = [];
      for (const [section, fields] of mine) {
        const theirs = real.get(section);
        if (section === 'Slabs') continue;
        assert.ok(theirs, `Redis has no section ${section}`);
        for (const [key, value] of fields) {
          const other = theirs.get(key);
          if (other === undefined) {
            if (section === 'Commandstats' || section === 'Errorstats' || section === 'Keyspace') continue;
            if (!/^(pool_|poolkv_|snapshot_)/.test(key)) problems.push(`${section}.${key}: not a Redis field`);
            continue;
          }
          if (valueKind(value) !== valueKind(other)) {
            problems.push(`${section}.${key}: ${JSON.stringify(value)} (${valueKind(value)}) vs Redis ${JSON.stringify(other)} (${valueKind(other)})`);
          }
        }
      }
      assert.deepEqual(problems, [], problems.join('\n'));
      // The fields clients rely on.
      const server = mine.get('Server')!;
      assert.equal(server.get('redis_version'), '7.0.15');
      assert.equal(server.get('redis_mode'), 'standalone');
      assert.equal(server.get('tcp_port'), String(poolkv.port));
      assert.equal(server.get('process_id'), String(poolkv.process.pid));
      assert.match(server.get('run_id')!, /^[0-9a-f]{40}$/);
      assert.match(server.get('poolkv_version')!, /^\d+\.\d+\.\d+/);
      assert.equal(mine.get('Persistence')!.get('loading'), '0');
      assert.equal(mine.get('Replication')!.get('role'), 'master');
      assert.equal(mine.get('Clients')!.get('blocked_clients'), '0');
      const memory = mine.get('Memory')!;
      assert.equal(memory.get('pool_path'), 'memfd');
      assert.equal(memory.get('pool_size'), String(64 * 1024 * 1024));
      for (const key of ['used_memory', 'used_memory_rss', 'used_memory_peak', 'pool_free_pages']) {
        assert.ok(Number(memory.get(key)) > 0, key);
      }
      assert.ok(Number(memory.get('used_memory_peak')) >= Number(memory.get('used_memory')));
      // Sections are separated by exactly one blank line and the text ends with CRLF.
      assert.ok(!String(mineText).includes('\r\n\r\n\r\n'));
      assert.ok(String(mineText).endsWith('\r\n'));
    });

    it('human-readable sizes follow Redis\'s bytesToHuman', async () => {
      const { bytesToHuman } = await import('../src/server/info');
      assert.equal(bytesToHuman(0), '0B');
      assert.equal(bytesToHuman(1023), '1023B');
      assert.equal(bytesToHuman(1024), '1.00K');
      assert.equal(bytesToHuman(1024 * 1024), '1.00M');
      assert.equal(bytesToHuman(1089368), '1.04M');
      assert.equal(bytesToHuman(25276514304), '23.54G');
      assert.equal(bytesToHuman(3 * 1024 ** 4), '3.00T');
    });

    it('keyspace lines follow the writes (keys and expires per non-empty database)', async () => {
      const commands: Args[] = [
        ['FLUSHALL'],
        ['SET', 'a', '1'], ['SET', 'b', '2', 'EX', '1000'], ['SET', 'c', '3', 'PX', '500000'],
        ['SELECT', '3'], ['SET', 'd', '4'],
        ['SELECT', '15'], ['SET', 'e', '5', 'EX', '100'], ['DEL', 'e'],
        ['INFO', 'keyspace'],
      ];
      const [mine, real] = await Promise.all([session(poolkv.port, commands), session(redis.port, commands)]);
      const strip = (reply: string): string => String(decode(Buffer.from(reply, 'latin1'))).replace(/,avg_ttl=\d+/g, '');
      assert.equal(strip(mine.at(-1)!), strip(real.at(-1)!));
      assert.equal(strip(mine.at(-1)!), '# Keyspace\r\ndb0:keys=3,expires=2\r\ndb3:keys=1,expires=0\r\n');
      await same([['FLUSHALL'], ['INFO', 'keyspace']]);
    });

    it('stats count hits, misses and errors; slabs list the allocator classes in use', async () => {
      await session(poolkv.port, [['CONFIG', 'RESETSTAT'], ['SET', 'hit', 'x'], ['GET', 'hit'], ['GET', 'miss'], ['GET', 'miss2'], ['NOSUCH']]);
      const info = parseInfo(String(await one(poolkv.port, 'INFO', 'stats', 'errorstats', 'commandstats', 'slabs')));
      const stats = info.get('Stats')!;
      assert.equal(stats.get('keyspace_hits'), '1');
      assert.equal(stats.get('keyspace_misses'), '2');
      assert.equal(stats.get('total_error_replies'), '1');
      assert.equal(info.get('Errorstats')!.get('errorstat_ERR'), 'count=1');
      assert.match(info.get('Commandstats')!.get('cmdstat_get')!, /^calls=3,usec=\d+,usec_per_call=\d+\.\d{2},rejected_calls=0,failed_calls=0$/);
      const slabs = info.get('Slabs')!;
      assert.ok(Number(slabs.get('active_slabs')) >= 1);
      const classes = [...slabs.entries()].filter(([k]) => /^slab\d+$/.test(k));
      assert.equal(classes.length, Number(slabs.get('active_slabs')));
      for (const [, value] of classes) {
        const f = Object.fromEntries(value.split(',').map((kv) => kv.split('=') as [string, string]));
        assert.deepEqual(Object.keys(f), ['chunk_size', 'chunks_per_page', 'total_pages', 'used_chunks', 'free_chunks']);
        assert.equal(Number(f.used_chunks) + Number(f.free_chunks), Number(f.total_pages) * Number(f.chunks_per_page));
      }
      await session(poolkv.port, [['DEL', 'hit']]);
    });
  });

  describe('CLIENT', () => {
    it('SETNAME / GETNAME / ID / SETINFO replies have Redis\'s shapes', async () => {
      const idPattern = /^:\d+\r\n$/;
      const commands: Args[] = [
        ['CLIENT', 'GETNAME'],
        ['CLIENT', 'SETNAME', 'a b'],
        ['CLIENT', 'SETNAME', 'bad\nname'],
        ['CLIENT', 'SETNAME', Buffer.from([0xc3, 0xa9])],
        ['CLIENT', 'SETNAME', 'good-name'],
        ['CLIENT', 'GETNAME'],
        ['CLIENT', 'SETNAME', ''],
        ['CLIENT', 'GETNAME'],
        ['CLIENT', 'SETNAME'],
        ['CLIENT', 'SETNAME', 'a', 'b'],
        ['CLIENT', 'GETNAME', 'x'],
        ['CLIENT', 'ID', 'x'],
        ['CLIENT'],
        ['CLIENT', 'NOSUCH'],
      ];
      await same(commands);
      await same([['HELLO', '3'], ['CLIENT', 'GETNAME'], ['CLIENT', 'SETNAME', 'x'], ['CLIENT', 'GETNAME']], 'RESP3: ', 1);
      const [mine, real] = await Promise.all([session(poolkv.port, [['CLIENT', 'ID']]), session(redis.port, [['CLIENT', 'ID']])]);
      assert.match(mine[0]!, idPattern);
      assert.match(real[0]!, idPattern);
      // SETINFO is Redis 7.2's; its replies follow 7.2's clientSetinfoCommand.
      const setinfo = await session(poolkv.port, [
        ['CLIENT', 'SETINFO', 'LIB-NAME', 'mylib'], ['CLIENT', 'SETINFO', 'lib-ver', '1.2.3'],
        ['CLIENT', 'SETINFO', 'lib-name', 'has space'], ['CLIENT', 'SETINFO', 'nosuch', 'x'], ['CLIENT', 'INFO'],
      ]);
      assert.deepEqual(setinfo.slice(0, 4), [
        '+OK\r\n', '+OK\r\n', '-ERR lib-name cannot contain spaces, newlines or special characters.\r\n',
        "-ERR Unrecognized option 'nosuch'\r\n",
      ]);
      assert.match(setinfo[4]!, / lib-name=mylib lib-ver=1\.2\.3\n\r\n$/);
    });

    it('ids are unique and increasing per connection', async () => {
      const ids = await Promise.all([1, 2, 3].map(() => one(poolkv.port, 'CLIENT', 'ID') as Promise<number>));
      assert.equal(new Set(ids).size, 3);
      const later = (await one(poolkv.port, 'CLIENT', 'ID')) as number;
      assert.ok(ids.every((id) => id < later));
    });

    it('CLIENT INFO / LIST lines have Redis 7.0\'s fields in Redis\'s order', async () => {
      const fieldsOf = (line: string): string[] => line.trim().split(' ').map((kv) => kv.slice(0, kv.indexOf('=')));
      const cmds: Args[] = [['CLIENT', 'SETNAME', 'me'], ['SELECT', '2'], ['CLIENT', 'INFO'], ['CLIENT', 'LIST']];
      const [mine, real] = await Promise.all([session(poolkv.port, cmds), session(redis.port, cmds)]);
      const myInfo = String(decode(Buffer.from(mine[2]!, 'latin1')));
      const realInfo = String(decode(Buffer.from(real[2]!, 'latin1')));
      assert.ok(myInfo.endsWith('\n') && !myInfo.endsWith('\n\n'));
      // Redis 7.2 appended lib-name and lib-ver; everything before them is 7.0's line.
      assert.deepEqual(fieldsOf(myInfo), [...fieldsOf(realInfo), 'lib-name', 'lib-ver']);
      const values = Object.fromEntries(myInfo.trim().split(' ').map((kv) => [kv.slice(0, kv.indexOf('=')), kv.slice(kv.indexOf('=') + 1)]));
      assert.equal(values.name, 'me');
      assert.equal(values.db, '2');
      assert.equal(values.cmd, 'client|info');
      assert.equal(values.flags, 'N');
      assert.equal(values.resp, '2');
      assert.equal(values['argv-mem'], '10');
      assert.match(values.addr!, /^127\.0\.0\.1:\d+$/);
      assert.equal(values.laddr, `127.0.0.1:${poolkv.port}`);
      const myList = String(decode(Buffer.from(mine[3]!, 'latin1')));
      assert.ok(myList.split('\n').some((l) => / name=me /.test(l) && / cmd=client\|list /.test(l)));
      assert.match(mine[2]!, /^\$\d+\r\nid=/);
    });

    it('CLIENT LIST filters and errors as Redis does', async () => {
      await same([
        ['CLIENT', 'LIST', 'TYPE', 'bogus'],
        ['CLIENT', 'LIST', 'ID', 'abc'],
        ['CLIENT', 'LIST', 'ID', '1', 'abc'],
        ['CLIENT', 'LIST', 'foo'],
        ['CLIENT', 'LIST', 'TYPE', 'master'],
        ['CLIENT', 'LIST', 'TYPE', 'replica'],
        ['CLIENT', 'LIST', 'TYPE', 'pubsub'],
        ['CLIENT', 'LIST', 'ID', '999999'],
      ]);
      const [id] = (await session(poolkv.port, [['CLIENT', 'ID']])).map((r) => Number(r.slice(1, -2)));
      const [byType, byId] = await session(poolkv.port, [['CLIENT', 'LIST', 'TYPE', 'normal'], ['CLIENT', 'LIST', 'ID', String(id! + 1), '999999']]);
      assert.match(String(decode(Buffer.from(byType!, 'latin1'))), /^id=\d+ .* cmd=client\|list /);
      assert.match(String(decode(Buffer.from(byId!, 'latin1'))), new RegExp(`^id=${id! + 1} [^\\n]*\\n$`));
    });

    it('CLIENT KILL errors as Redis does', async () => {
      await same([
        ['CLIENT', 'KILL', 'ID', 'abc'], ['CLIENT', 'KILL', 'ID', '0'], ['CLIENT', 'KILL', 'ID', '-5'],
        ['CLIENT', 'KILL', 'TYPE', 'bogus'], ['CLIENT', 'KILL', 'USER', 'nobody'], ['CLIENT', 'KILL', 'USER', 'default'],
        ['CLIENT', 'KILL', 'SKIPME', 'maybe'], ['CLIENT', 'KILL', 'ADDR', '1.1.1.1:1'], ['CLIENT', 'KILL', '1.1.1.1:1'],
        ['CLIENT', 'KILL', 'foo', 'bar'], ['CLIENT', 'KILL', 'ID', '1', 'TYPE'], ['CLIENT', 'KILL'],
        ['CLIENT', 'KILL', 'ID', '999999'], ['CLIENT', 'KILL', 'TYPE', 'master'],
      ]);
    });

    it('CLIENT KILL closes the chosen connections (ID, ADDR, LADDR, old form, itself)', async () => {
      const connect = (): Promise<net.Socket> => new Promise((resolve, reject) => {
        const s = net.connect({ port: poolkv.port, host: '127.0.0.1' }, () => resolve(s));
        s.once('error', reject);
      });
      const closed = (s: net.Socket): Promise<void> => new Promise((resolve) => {
        if (s.destroyed) resolve();
        else s.once('close', () => resolve());
      });
      const ask = (s: net.Socket, args: string[]): Promise<string> => new Promise((resolve) => {
        let got = Buffer.alloc(0);
        const onData = (chunk: Buffer): void => {
          got = Buffer.concat([got, chunk]);
          if (replyLength(got) >= 0) {
            s.off('data', onData);
            resolve(got.toString('latin1'));
          }
        };
        s.on('data', onData);
        s.write(encodeCommand(args));
      });
      const killer = await connect();
      const victims = await Promise.all([connect(), connect(), connect()]);
      const ids = await Promise.all(victims.map((v) => ask(v, ['CLIENT', 'ID']).then((r) => r.slice(1, -2))));
      const infos = await Promise.all(victims.map((v) => ask(v, ['CLIENT', 'INFO'])));
      const addrOf = (info: string): string => /addr=(\S+)/.exec(info)![1]!;

      assert.equal(await ask(killer, ['CLIENT', 'KILL', 'ID', ids[0]!]), ':1\r\n');
      await closed(victims[0]!);
      assert.equal(await ask(killer, ['CLIENT', 'KILL', addrOf(infos[1]!)]), '+OK\r\n');
      await closed(victims[1]!);
      assert.equal(await ask(killer, ['CLIENT', 'KILL', 'ADDR', addrOf(infos[2]!), 'SKIPME', 'no']), ':1\r\n');
      await closed(victims[2]!);
      assert.equal(await ask(killer, ['CLIENT', 'KILL', 'ID', ids[0]!]), ':0\r\n');
      // LADDR matches every client of this listener but the caller (SKIPME yes).
      const others = await Promise.all([connect(), connect()]);
      await Promise.all(others.map((o) => ask(o, ['PING'])));
      const killedByLaddr = await ask(killer, ['CLIENT', 'KILL', 'LADDR', `127.0.0.1:${poolkv.port}`]);
      assert.ok(Number(killedByLaddr.slice(1, -2)) >= 2);
      await Promise.all(others.map(closed));
      // The old form may kill the caller itself: the reply arrives, then the connection closes.
      const self = await ask(killer, ['CLIENT', 'INFO']);
      assert.equal(await ask(killer, ['CLIENT', 'KILL', addrOf(self)]), '+OK\r\n');
      await closed(killer);
    });

    it('CLIENT HELP has Redis\'s frame', async () => {
      const help = (await one(poolkv.port, 'client', 'help')) as string[];
      const real = (await one(redis.port, 'client', 'help')) as string[];
      assert.equal(help[0], real[0]);
      assert.deepEqual(help.slice(-2), real.slice(-2));
      for (const line of ['ID', 'GETNAME', 'SETNAME <name>', 'INFO', 'LIST [options ...]', 'KILL <ip:port>']) {
        assert.ok(help.includes(line), line);
        assert.ok(real.includes(line), line);
      }
    });
  });

  describe('clients', () => {
    it('redis-cli talks to poolkv like to Redis', async function () {
      const cli = async (port: number, ...args: string[]): Promise<string> => (await execFileAsync(REDIS_CLI, ['-p', String(port), ...args])).stdout;
      const info = await cli(poolkv.port, 'INFO');
      assert.match(info, /^# Server\r?\nredis_version:7\.0\.15\r?\n/);
      assert.match(info, /\nloading:0\r?\n/);
      for (const args of [
        ['--no-raw', 'CONFIG', 'GET', 'maxmemory'],
        ['--no-raw', 'CLIENT', 'GETNAME'],
        ['--no-raw', 'DBSIZE'],
        ['--no-raw', 'CONFIG', 'SET', 'maxmemory', 'abc'],
        ['--no-raw', 'SWAPDB', '0', '99'],
        ['--no-raw', 'COMMAND', 'INFO', 'dbsize'],
        ['INFO', 'nosuchsection'],
      ]) {
        const [mine, real] = await Promise.all([cli(poolkv.port, ...args), cli(redis.port, ...args)]);
        assert.equal(mine, real, args.join(' '));
      }
    });

    it('ioredis connects (ready check reads INFO loading:0) and works', async () => {
      const client = new Redis({ port: poolkv.port, host: '127.0.0.1', lazyConnect: false, maxRetriesPerRequest: 1 });
      try {
        await new Promise<void>((resolve, reject) => {
          if (client.status === 'ready') resolve();
          client.once('ready', () => resolve());
          client.once('error', (err) => reject(err));
        });
        assert.equal(await client.call('CLIENT', 'SETNAME', 'io'), 'OK');
        assert.equal(await client.call('CLIENT', 'GETNAME'), 'io');
        assert.match(await client.info('server'), /redis_version:7\.0\.15/);
        await client.set('ioredis-key', 'v');
        assert.equal(await client.dbsize(), 1);
        const config = await client.call('CONFIG', 'GET', 'maxmemory');
        assert.ok(JSON.stringify(config).includes('maxmemory'));
        assert.equal(typeof (await client.call('CLIENT', 'ID')), 'number');
        const list = String(await client.call('CLIENT', 'LIST'));
        assert.match(list, / name=io .* lib-name=ioredis /);
        assert.equal(await client.call('FLUSHALL'), 'OK');
        assert.equal(await client.dbsize(), 0);
      } finally {
        client.disconnect();
      }
    });
  });
});
