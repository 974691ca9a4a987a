// Config loading (file + command line), the value parsers, CONFIG GET/SET
// semantics, and the poolkv-server start-up errors. Wherever an option means
// the same in Redis, the expected text is whatever the real redis-server says
// for the same input, so the messages are checked byte for byte.
import { strict as assert } from 'assert';
import { spawnSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { Config, ConfigError } from '../src/config/config';
import { parseCommandLine } from '../src/config/conf-file';
import { memtoull, quoteRepr, splitArgs, string2ll } from '../src/config/units';
import { Logger, formatLogTimestamp } from '../src/server/log';
import {
  POOLKV_MAIN, REDIS_SERVER_BIN, encodeCommand, rawCommand, startPoolkv, startRedis, type RedisProcess,
} from './helpers/processes';

const scratch = fs.mkdtempSync(path.join(os.tmpdir(), 'poolkv-config-test-'));
after(() => fs.rmSync(scratch, { recursive: true, force: true }));

let fileCounter = 0;
function writeConf(text: string): string {
  const file = path.join(scratch, `test-${++fileCounter}.conf`);
  fs.writeFileSync(file, text);
  return file;
}

/** What Config.load throws, or null. */
function loadError(argv: string[]): ConfigError | null {
  try {
    Config.load(argv);
    return null;
  } catch (err) {
    if (err instanceof ConfigError) return err;
    throw err;
  }
}

/** redis-server's fatal config output for the same arguments (it must refuse them). */
function redisFatal(argv: string[]): { stderr: string; stdout: string; status: number | null } {
  const result = spawnSync(REDIS_SERVER_BIN, argv, { encoding: 'utf8', timeout: 5000, cwd: scratch });
  if (result.signal) throw new Error(`redis-server accepted ${JSON.stringify(argv)} (had to be killed)`);
  return { stderr: result.stderr, stdout: result.stdout, status: result.status };
}

describe('config: value parsers', () => {
  it('memtoull reads sizes exactly like Redis', () => {
    const cases: Array<[string, bigint | null]> = [
      ['0', 0n], ['100', 100n], ['1b', 1n], ['10B', 10n], ['1k', 1000n], ['1K', 1000n], ['1kb', 1024n], ['1KB', 1024n],
      ['1kB', 1024n], ['2m', 2000000n], ['2mb', 2097152n], ['1g', 1000000000n], ['1gb', 1073741824n], ['1GB', 1073741824n],
      ['kb', 0n], ['', 0n], ['99999999999999999999999', 18446744073709551615n],
      ['-1', null], ['1.5gb', null], ['+5', null], ['0x10', null], [' 1', null], ['1 kb', null], ['1tb', null], ['1kbb', null],
    ];
    for (const [text, expected] of cases) assert.equal(memtoull(text), expected, JSON.stringify(text));
  });

  it('string2ll is strict', () => {
    const cases: Array<[string, bigint | null]> = [
      ['0', 0n], ['-5', -5n], ['6379', 6379n], ['9223372036854775807', 9223372036854775807n],
      ['-9223372036854775808', -9223372036854775808n], ['9223372036854775808', null],
      ['01', null], ['+1', null], ['-0', null], ['', null], [' 1', null], ['1 ', null], ['1.0', null], ['-', null],
    ];
    for (const [text, expected] of cases) assert.equal(string2ll(text), expected, JSON.stringify(text));
  });

  it('splits lines like sdssplitargs', () => {
    assert.deepEqual(splitArgs(`set "a b" 'c d'`), ['set', 'a b', 'c d']);
    assert.deepEqual(splitArgs('  x\t y  '), ['x', 'y']);
    assert.deepEqual(splitArgs('"\\x41\\n\\t\\"\\\\\\q"'), ['A\n\t"\\q']);
    assert.deepEqual(splitArgs(`'it\\'s' "x"`), ["it's", 'x']);
    assert.deepEqual(splitArgs('""'), ['']);
    assert.deepEqual(splitArgs(`a"b c" d`), ['ab c', 'd']);
    assert.deepEqual(splitArgs(''), []);
    assert.equal(splitArgs('"unterminated'), null);
    assert.equal(splitArgs(`'unterminated`), null);
    assert.equal(splitArgs('"a"b'), null);
    assert.equal(splitArgs(`'a'b`), null);
    assert.deepEqual(splitArgs('"\\xe2\\x82\\xac"'), ['€']);
  });

  it('quotes values so they split back unchanged', () => {
    for (const value of ['', 'plain', 'a b', 'quote " and \\ back', 'nl\nand\ttab\r\x07\x08', '\x01\x7f', 'é€', "it's"]) {
      assert.deepEqual(splitArgs(quoteRepr(value)), [value]);
    }
    assert.equal(quoteRepr('a"b\\c\n\x01é'), '"a\\"b\\\\c\\n\\x01\\xc3\\xa9"');
  });

  it('turns the command line into config lines like redis-server main()', () => {
    assert.deepEqual(parseCommandLine([]), { configFile: null, readStdin: false, optionsText: null });
    assert.equal(parseCommandLine(['--port', '7000', '--bind', '1.2.3.4', '::1']).optionsText, 'port "7000" \nbind "1.2.3.4" "::1" ');
    assert.equal(parseCommandLine(['--save', '--port', '1']).optionsText, 'save ""\nport "1" ');
    assert.equal(parseCommandLine(['--save']).optionsText, 'save ""');
    assert.equal(parseCommandLine(['--requirepass', '--port']).optionsText, 'requirepass "--port" ');
    assert.equal(parseCommandLine(['--port 7000', '--hz', '5']).optionsText, 'port 7000 \nhz "5" ');
    const withFile = parseCommandLine(['my.conf', '--port', '1', '-']);
    assert.equal(withFile.configFile, path.resolve('my.conf'));
    assert.equal(withFile.readStdin, true);
  });
});

describe('config: loading', () => {
  it('has the documented defaults', () => {
    const { config, configFile } = Config.load([]);
    assert.equal(configFile, '');
    const expected: Record<string, string> = {
      port: '6379', bind: '127.0.0.1 -::1', requirepass: '', databases: '16', dir: fs.realpathSync(process.cwd()),
      dbfilename: 'dump.pool', 'pool-size': '1073741824', 'pool-path': '', maxmemory: '0', 'maxmemory-policy': 'noeviction',
      'maxmemory-samples': '5', loglevel: 'notice', logfile: '', 'proto-max-bulk-len': '536870912',
      'client-query-buffer-limit': '1073741824', maxclients: '10000', timeout: '0', 'tcp-keepalive': '300', hz: '10',
      save: '', appendonly: 'no', daemonize: 'no', 'protected-mode': 'yes', 'stop-writes-on-bgsave-error': 'yes', 'lazyfree-lazy-user-flush': 'no',
      'slab-growth-factor': '1.25', 'slab-min-chunk': '48', activerehashing: 'yes', 'active-expire-effort': '1',
      'lfu-log-factor': '10', 'lfu-decay-time': '1',
      'snapshot-transport': 'file', 'snapshot-peer': '', 'snapshot-auth-token': '', 'snapshot-name': 'default', 'load-from-peer': 'no',
    };
    assert.deepEqual(Object.fromEntries(config.match('*')), expected);
    assert.equal(config.getNumber('pool-size'), 1024 ** 3);
    assert.equal(config.getNumber('slab-growth-factor'), 1.25);
    assert.equal(config.getBool('protected-mode'), true);
    assert.deepEqual(config.getList('bind'), ['127.0.0.1', '-::1']);
  });

  it('reads a redis.conf-style file, then lets the command line override it', () => {
    const file = writeConf([
      '# poolkv test config',
      '',
      '   PORT 7000   ',
      'bind 127.0.0.1 "::1"',
      'requirepass "secret with spaces"',
      "logfile ''",
      'maxmemory 100mb\r',
      'maxmemory-policy ALLKEYS-LRU',
      'pool-size 2gb',
      'pool-path /dev/shm/poolkv-test',
      'activerehashing NO',
      'hz 1000',
      'save ""',
      'slab-growth-factor 1.5',
      '   # indented comment',
      'port 7001',
    ].join('\n'));
    const { config, configFile } = Config.load([file, '--maxmemory', '1g', '--loglevel', 'warning']);
    assert.equal(configFile, file);
    assert.equal(config.get('port'), '7001');
    assert.deepEqual(config.getList('bind'), ['127.0.0.1', '::1']);
    assert.equal(config.get('requirepass'), 'secret with spaces');
    assert.equal(config.get('maxmemory'), '1000000000');
    assert.equal(config.get('maxmemory-policy'), 'allkeys-lru');
    assert.equal(config.getNumber('pool-size'), 2 * 1024 ** 3);
    assert.equal(config.getString('pool-path'), '/dev/shm/poolkv-test');
    assert.equal(config.get('activerehashing'), 'no');
    assert.equal(config.get('hz'), '500'); // clamped like Redis
    assert.equal(config.get('loglevel'), 'warning');
    assert.equal(config.get('slab-growth-factor'), '1.5');
  });

  it('splits a multi-argument option given as one argument', () => {
    const { config } = Config.load(['--bind', '10.0.0.1 -::1']);
    assert.deepEqual(config.getList('bind'), ['10.0.0.1', '-::1']);
    assert.equal(Config.load(['--bind', '']).config.get('bind'), '');
  });

  it('resolves dir to an absolute real path, relative dirs against the previous one', () => {
    const sub = path.join(scratch, 'sub');
    fs.mkdirSync(sub, { recursive: true });
    const file = writeConf(`dir ${scratch}\ndir sub\n`);
    assert.equal(Config.load([file]).config.get('dir'), fs.realpathSync(sub));
  });

  it('follows include lines, with wildcards in the file name', () => {
    const dir = path.join(scratch, 'conf.d');
    fs.mkdirSync(dir, { recursive: true });
    fs.writeFileSync(path.join(dir, '10-a.conf'), 'hz 20\nmaxmemory 1mb\n');
    fs.writeFileSync(path.join(dir, '20-b.conf'), 'hz 30\n');
    fs.writeFileSync(path.join(dir, '.hidden.conf'), 'hz 99\n');
    const single = writeConf(`include ${path.join(dir, '10-a.conf')}\n`);
    assert.equal(Config.load([single]).config.get('hz'), '20');
    const wild = writeConf(`include ${dir}/*.conf\nmaxmemory 2mb\n`);
    const { config } = Config.load([wild]);
    assert.equal(config.get('hz'), '30');
    assert.equal(config.get('maxmemory'), String(2 * 1024 * 1024));
    assert.equal(Config.load([writeConf(`include ${dir}/*.none\nhz 7\n`)]).config.get('hz'), '7');
    const loop = writeConf('');
    fs.writeFileSync(loop, `include ${loop}\n`);
    assert.match(loadError([loop])?.message ?? '', /include nesting deeper than 16 levels/);
  });

  it('refuses what poolkv does not support, clearly', () => {
    const cases: Array<[string[], string]> = [
      [['--daemonize', 'yes'], 'daemonize yes is not supported: poolkv runs in the foreground (use a supervisor such as systemd)'],
      [['--appendonly', 'yes'], 'appendonly yes is not supported: poolkv has no append-only file (the dataset lives in its shared-memory pool)'],
      [['--pool-size', 'banana'], 'argument must be a memory value'],
      [['--pool-size', '1000'], 'argument must be between 1048576 and 34358689792 inclusive'],
      [['--pool-path', '/tmp/pool'], 'pool-path must be empty (memfd) or a file under /dev/shm'],
      [['--slab-growth-factor', '1'], 'argument must be greater than 1 and at most 10'],
      [['--slab-growth-factor', 'x'], 'argument must be a decimal number'],
      [['--slab-min-chunk', '8'], 'argument must be between 16 and 524288 inclusive'],
    ];
    for (const [argv, reason] of cases) {
      const line = `${argv[0].slice(2)} ${argv.slice(1).map((a) => quoteRepr(a)).join(' ')}`;
      assert.equal(loadError(argv)?.message,
        `*** FATAL CONFIG FILE ERROR (Redis 7.0.15) ***\nReading the configuration file, at line 2\n>>> '${line}'\n${reason}`);
    }
    assert.equal(loadError([writeConf('pool-size banana\n')])?.message,
      "*** FATAL CONFIG FILE ERROR (Redis 7.0.15) ***\nReading the configuration file, at line 1\n>>> 'pool-size banana'\nargument must be a memory value");
  });
});

describe('config: start-up errors are byte-identical to redis-server', function () {
  this.timeout(60000);

  // Every case must make redis-server refuse to start too. "--port 0" first keeps
  // a mistaken case from ever starting a server on 6379.
  const argvCases: string[][] = [
    ['--port', 'abc'], ['--foo', 'bar'], ['--port'], ['--maxmemory', 'banana'], ['--port', '1', '--port', '2', '--bind', '1.2.3.4', '--foo'],
    ['--databases', '0'], ['--maxmemory-policy', 'foo'], ['--loglevel', 'foo'], ['--daemonize', 'maybe'], ['--port', '70000'],
    ['--hz', '-1'], ['--port', '1', '2'], ['--requirepass'], ['--port', 'a"b\\c\n\t\x01é'], ['--proto-max-bulk-len', '1'],
    ['--proto-max-bulk-len', '99999999999999999999'], ['--client-query-buffer-limit', '1'], ['--maxclients', '0'],
    ['--timeout', '-1'], ['--tcp-keepalive', '-1'], ['--active-expire-effort', '11'], ['--active-expire-effort', '0'],
    ['--lfu-log-factor', '-1'], ['--lfu-decay-time', 'x'], ['--port', '01'], ['--port', '+1'], ['--port', '-0'], ['--port', ''],
    ['--save', 'a b'], ['--save', '1 2 3'], ['--save', '0', '1'], ['--save', '1', ' '], ['--dir', '/nonexistent'], ['--dir', '/etc/passwd'],
    ['--dbfilename', 'a/b'], ['--bind', ...Array.from({ length: 17 }, (_, i) => `10.0.0.${i}`)], ['--maxmemory-samples', '0'],
    ['--protected-mode', '1'], ['--activerehashing', 'true'], ['--logfile', '/nonexistent/x.log'], ['--port 6380', '--hz', 'x'],
    ['--save', '--hz', 'x'], ['--requirepass', '--port', '--hz', 'x'], ['--MaxMemory', '1x'], ['--include', '/a', '/b'],
    ['--maxmemory-policy', 'ALLKEYS-LRU', '--loglevel', 'x'], ['--"port', '1'], ['--port', '"1"'],
  ];

  for (const argv of argvCases) {
    it(`redis-server ${JSON.stringify(argv)}`, () => {
      const args = ['--port', '0', ...argv];
      const redis = redisFatal(args);
      assert.equal(redis.status, 1);
      const ours = loadError(args);
      assert.ok(ours, 'poolkv accepted it');
      assert.equal(ours.asLogLine, false);
      assert.equal(`\n${ours.message}\n`, redis.stderr);
    });
  }

  const fileCases: string[] = [
    'port 1 # comment\n',
    'port "abc\n',
    'port 7000\r\nhz x\r\n',
    '\n\n  bind 127.0.0.1\nnosuch directive\n',
    "requirepass 'unterminated\n",
    'save "1 2" "3"\n',
    'port 7000', // no trailing newline: the command line options start on line 2
  ];
  for (const text of fileCases) {
    it(`config file ${JSON.stringify(text)}`, () => {
      const file = writeConf(text);
      const args = [file, '--port', '0', '--hz', 'bad'];
      const redis = redisFatal(args);
      assert.equal(redis.status, 1);
      assert.equal(`\n${loadError(args)?.message}\n`, redis.stderr);
    });
  }

  it('an unreadable config file is reported as a log line, as redis-server does', () => {
    for (const args of [[path.join(scratch, 'missing.conf')], [writeConf('include /nonexistent/inc.conf\n')]]) {
      const redis = redisFatal(args);
      assert.equal(redis.status, 1);
      const ours = loadError(args);
      assert.equal(ours?.asLogLine, true);
      assert.equal(redis.stdout.replace(/^\d+:C [^#]+# /, ''), `${ours?.message}\n`);
    }
  });

  it('poolkv-server prints the same text on stderr and exits 1', () => {
    for (const argv of [['--port', 'abc'], ['--foo', 'bar'], ['--maxmemory-policy', 'x']]) {
      const redis = redisFatal(argv);
      const ours = spawnSync(process.execPath, [POOLKV_MAIN, ...argv], { encoding: 'utf8', timeout: 10000 });
      assert.equal(ours.status, 1);
      assert.equal(ours.stderr, redis.stderr);
      assert.equal(ours.stdout, '');
    }
    const stdinCase = spawnSync(process.execPath, [POOLKV_MAIN, '-', '--port', '0'], { input: 'port 1\nhz x\n', encoding: 'utf8', timeout: 10000 });
    const redisStdin = spawnSync(REDIS_SERVER_BIN, ['-', '--port', '0'], { input: 'port 1\nhz x\n', encoding: 'utf8', timeout: 5000 });
    assert.equal(stdinCase.status, 1);
    assert.equal(stdinCase.stderr, redisStdin.stderr);
  });
});

describe('config: CONFIG SET / CONFIG GET semantics match Redis', function () {
  this.timeout(60000);
  let redis: RedisProcess;
  let config: Config;

  before(async () => {
    redis = await startRedis();
    config = Config.load(['--save', '', '--appendonly', 'no']).config;
  });
  after(async () => {
    await redis?.stop();
  });

  /** Our reply to CONFIG SET, encoded like the server will encode it. */
  function ourSet(pairs: string[]): string {
    const tuples: Array<[string, string]> = [];
    for (let i = 0; i + 1 < pairs.length; i += 2) tuples.push([pairs[i], pairs[i + 1]]);
    try {
      config.setMany(tuples);
      return '+OK\r\n';
    } catch (err) {
      assert.ok(err instanceof ConfigError);
      return `-${err.message}\r\n`;
    }
  }

  function ourGet(patterns: string[]): string {
    const pairs = config.getMany(patterns);
    return encodeCommand(pairs.flat()).toString('utf8');
  }

  const SHARED = [
    'maxmemory', 'maxmemory-policy', 'maxmemory-samples', 'loglevel', 'proto-max-bulk-len', 'client-query-buffer-limit',
    'maxclients', 'timeout', 'tcp-keepalive', 'hz', 'appendonly', 'daemonize', 'protected-mode', 'lazyfree-lazy-user-flush',
    'activerehashing', 'active-expire-effort', 'lfu-log-factor', 'lfu-decay-time', 'databases', 'requirepass', 'save', 'logfile',
  ];

  const setCases: string[][] = [
    ['foo', 'bar'], ['databases', '3'], ['maxmemory', 'banana'], ['dir', '/tmp'], ['dbfilename', 'x.rdb'],
    ['logfile', 'x'], ['daemonize', 'yes'], ['daemonize', 'no'], ['maxmemory', '1', 'maxmemory', '2'],
    ['MAXMEMORY', '1', 'maxmemory', '2'], ['maxmemory', '1', 'foo', '2'], ['foo', '1', 'databases', '2'],
    ['databases', '1', 'foo', '2'], ['maxmemory', 'x', 'databases', '2'], ['loglevel', 'x'], ['loglevel', 'WARNING'],
    ['loglevel', 'notice'], ['hz', '0'], ['hz', '1000'], ['hz', 'abc'], ['hz', '10'], ['maxmemory-policy', 'ALLKEYS-LRU'],
    ['activerehashing', 'YES'], ['activerehashing', '1'], ['protected-mode', 'no'], ['maxmemory', '1gb'], ['maxmemory', 'kb'],
    ['maxmemory', '18446744073709551616'], ['maxmemory', '20000000000gb'], ['maxmemory', '-1'], ['maxmemory', ''],
    ['maxmemory-samples', '0'], ['maxclients', '0'], ['timeout', '-1'], ['timeout', '2147483648'], ['tcp-keepalive', '60'],
    ['proto-max-bulk-len', '1mb'], ['proto-max-bulk-len', '1000000'], ['client-query-buffer-limit', '99999999999999999999'],
    ['maxmemory', '5', 'maxmemory-policy', 'bad'], ['maxmemory-policy', 'volatile-ttl', 'maxmemory', '7mb'],
    ['save', ''], ['save', 'x'], ['save', '100 2 '], ['save', ' '], ['save', '1 2 3'], ['appendonly', 'no'], ['appendonly', 'maybe'],
    ['lfu-log-factor', '-1'], ['lfu-decay-time', '5'], ['active-expire-effort', '11'], ['lazyfree-lazy-user-flush', 'yes'],
    ['requirepass', ''], ['Hz', '20', 'MaxMemory-Samples', '7'],
  ];

  it('answers every CONFIG SET like redis-server, and leaves the same values behind', async () => {
    for (const pairs of setCases) {
      const expected = (await rawCommand(redis.port, ['CONFIG', 'SET', ...pairs])).toString('utf8');
      assert.equal(ourSet(pairs), expected, `CONFIG SET ${JSON.stringify(pairs)}`);
      for (const name of SHARED) {
        const redisValue = (await rawCommand(redis.port, ['CONFIG', 'GET', name])).toString('utf8');
        assert.equal(ourGet([name]), redisValue, `CONFIG GET ${name} after CONFIG SET ${JSON.stringify(pairs)}`);
      }
    }
  });

  it('answers CONFIG GET with direct names echoed as typed and duplicates dropped', async () => {
    // Redis lists matches in its dict's hash order; compare them as sets of pairs.
    const pairsOf = (reply: string): string[] => {
      const items = reply.split('\r\n').filter((_, i) => i > 0 && i % 2 === 0);
      const pairs: string[] = [];
      for (let i = 0; i + 1 < items.length; i += 2) pairs.push(`${items[i]}=${items[i + 1]}`);
      return pairs.sort();
    };
    for (const patterns of [['MAXMEMORY', 'hz', 'HZ'], ['Hz', 'nosuch'], ['Hz', 'h?', 'HZ*'], ['MAXMEMORY-POLICY', 'maxmemory-pol*'], ['LogLevel', 'loglevel'], ['nosuch']]) {
      const expected = (await rawCommand(redis.port, ['CONFIG', 'GET', ...patterns])).toString('utf8');
      assert.deepEqual(pairsOf(ourGet(patterns)), pairsOf(expected), JSON.stringify(patterns));
    }
    assert.deepEqual(config.getMany(['PoRt']), [['PoRt', '6379']]);
  });

  it('matches patterns case-insensitively, in table order', () => {
    const fresh = new Config();
    assert.deepEqual(fresh.match('MAXMEMORY*').map(([n]) => n), ['maxmemory', 'maxmemory-policy', 'maxmemory-samples']);
    assert.deepEqual(fresh.match('slab-*'), [['slab-growth-factor', '1.25'], ['slab-min-chunk', '48']]);
    assert.deepEqual(fresh.match('nothing*'), []);
  });

  it('notifies listeners only on real changes, and rolls back when one refuses', () => {
    const fresh = new Config();
    const seen: string[] = [];
    const unsubscribe = fresh.onChange('maxmemory', (value, name) => seen.push(`${name}=${value}`));
    fresh.set('maxmemory', '1mb');
    fresh.set('maxmemory', '1048576'); // same value: no notification
    fresh.set('MAXMEMORY', '0');
    assert.deepEqual(seen, ['maxmemory=1048576', 'maxmemory=0']);
    unsubscribe();
    fresh.set('maxmemory', '5');
    assert.equal(seen.length, 2);

    fresh.onChange('maxmemory-samples', () => {
      throw new Error('cannot apply that');
    });
    assert.throws(() => fresh.setMany([['maxmemory', '10'], ['maxmemory-samples', '9']]), (err: Error) =>
      err instanceof ConfigError && err.message === "ERR CONFIG SET failed (possibly related to argument 'maxmemory-samples') - cannot apply that");
    assert.equal(fresh.get('maxmemory'), '5');
    assert.equal(fresh.get('maxmemory-samples'), '5');
  });

  it('refuses port and bind changes unless a component applies them', () => {
    const fresh = new Config();
    assert.throws(() => fresh.set('port', '7000'), (err: Error) =>
      err.message === "ERR CONFIG SET failed (possibly related to argument 'port') - can't set immutable config");
    const applied: string[] = [];
    fresh.onChange('port', (value) => applied.push(value));
    fresh.set('port', '7000');
    assert.deepEqual(applied, ['7000']);
    for (const name of ['pool-size', 'pool-path', 'slab-min-chunk', 'slab-growth-factor', 'databases']) {
      assert.throws(() => fresh.set(name, '1'), (err: Error) =>
        err.message === `ERR CONFIG SET failed (possibly related to argument '${name}') - can't set immutable config`);
    }
    // Save points are accepted since snapshots exist (src/snapshot); CONFIG SET replaces the rules.
    fresh.set('save', '900 1 300 10');
    assert.equal(fresh.get('save'), '900 1 300 10');
    fresh.set('save', '');
    fresh.set('requirepass', 'p a s s');
    assert.equal(fresh.get('requirepass'), 'p a s s');
  });
});

describe('logger', () => {
  it('formats lines like redis-server and honours the level', () => {
    const lines: string[] = [];
    const log = new Logger({ level: 'verbose', sink: (line) => lines.push(line) });
    log.debug('hidden');
    log.verbose('v');
    log.notice('n');
    log.warning('w');
    log.setLevel('warning');
    log.notice('hidden too');
    assert.equal(lines.length, 3);
    const shape = /^(\d+):M (\d\d [A-Z][a-z]{2} \d{4} \d\d:\d\d:\d\d\.\d{3}) ([.\-*#]) (.*)\n$/;
    assert.deepEqual(lines.map((l) => shape.exec(l)?.slice(3)), [['-', 'v'], ['*', 'n'], ['#', 'w']]);
    assert.equal(shape.exec(lines[0])?.[1], String(process.pid));
    assert.equal(formatLogTimestamp(new Date(2026, 10, 21, 1, 2, 3, 45)), '21 Nov 2026 01:02:03.045');
  });

  it('follows loglevel and logfile from the config, appending to the file', () => {
    const file = path.join(scratch, 'poolkv.log');
    fs.writeFileSync(file, 'existing\n');
    const { config } = Config.load(['--logfile', file, '--loglevel', 'warning']);
    const log = Logger.fromConfig(config);
    log.notice('dropped');
    log.warning('kept');
    config.set('loglevel', 'debug');
    log.debug('now visible');
    const text = fs.readFileSync(file, 'utf8').split('\n');
    assert.equal(text[0], 'existing');
    assert.match(text[1], / # kept$/);
    assert.match(text[2], / \. now visible$/);
    assert.equal(text.length, 4);
  });
});

describe('poolkv-server process', function () {
  this.timeout(60000);

  it('starts, answers PING, logs its banner, and shuts down cleanly on SIGTERM', async () => {
    const server = await startPoolkv(['--loglevel', 'notice']);
    assert.equal((await rawCommand(server.port, ['PING'])).toString(), '+PONG\r\n');
    assert.equal(await server.stop(), 0);
    const out = server.output();
    assert.match(out, /^\d+:C \d\d \w{3} \d{4} [\d:.]+ # oO0OoO0OoO0Oo poolkv is starting oO0OoO0OoO0Oo$/m);
    assert.match(out, /Redis 7\.0\.15 compatible/);
    assert.match(out, new RegExp(`Running mode=standalone, port=${server.port}\\.`));
    assert.match(out, /Pool of 67108864 bytes \(64\.00M\) in an anonymous memfd/);
    assert.match(out, /^\d+:signal-handler \(\d+\) Received SIGTERM scheduling shutdown\.\.\.$/m);
    assert.match(out, /ready to exit, bye bye/);
  });
});
