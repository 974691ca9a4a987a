// Snapshots side by side: starts redis-server and poolkv on free loopback
// ports, loads the same seeded dataset into both, then measures BGSAVE wall
// time and file size, PING latency and extra memory while BGSAVE runs, the
// time from spawn to the first PONG with the data loaded after a restart, and
// (poolkv only) a warm restart that attaches a cleanly shut down /dev/shm pool.
// Prints a table with the poolkv/redis ratio per row and, with --write,
// replaces the "## Snapshots" section of docs/benchmarks.md.
//
//   node dist/scripts/bench-snapshot.js [--keys N] [--max-value BYTES] [--seed N] [--write]
import { execFileSync, spawn, type ChildProcess } from 'child_process';
import * as fs from 'fs';
import * as net from 'net';
import * as os from 'os';
import * as path from 'path';
import { freePort, ROOT, waitForPing, writeSection } from './bench-common';

const POOLKV_MAIN = path.join(ROOT, 'dist/src/server/main.js');
const MIN_VALUE = 16;
const BATCH = 1000;

function arg(name: string, fallback: number): number {
  const i = process.argv.indexOf(`--${name}`);
  if (i < 0) return fallback;
  const v = Number(process.argv[i + 1]);
  if (!Number.isFinite(v) || v <= 0) throw new Error(`--${name} needs a positive number`);
  return v;
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
const nowMs = (): number => Number(process.hrtime.bigint()) / 1e6;

// ---------------------------------------------------------------- processes

const children = new Set<ChildProcess>();
const tempPaths: string[] = [];

function start(cmd: string, args: string[]): ChildProcess {
  const child = spawn(cmd, args, { stdio: ['ignore', 'ignore', 'inherit'] });
  children.add(child);
  child.once('exit', () => children.delete(child));
  return child;
}

function exited(child: ChildProcess, timeoutMs = 30000): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`pid ${child.pid} did not exit`)), timeoutMs);
    child.once('exit', () => { clearTimeout(t); resolve(); });
  });
}

function cleanup(): void {
  for (const child of children) {
    try { child.kill('SIGKILL'); } catch { /* already gone */ }
  }
  children.clear();
  for (const p of tempPaths) fs.rmSync(p, { recursive: true, force: true });
}

// ---------------------------------------------------------------- RESP client

type Reply = string | number | null | Buffer | Reply[] | Error;

function encode(args: (string | Buffer)[]): Buffer {
  const parts: Buffer[] = [Buffer.from(`*${args.length}\r\n`)];
  for (const a of args) {
    const b = typeof a === 'string' ? Buffer.from(a) : a;
    parts.push(Buffer.from(`$${b.length}\r\n`), b, Buffer.from('\r\n'));
  }
  return Buffer.concat(parts);
}

/** Minimal pipelining RESP2 client: replies resolve the oldest pending request. */
class Client {
  private buf: Buffer = Buffer.alloc(0);
  private pending: { left: number; replies: Reply[]; resolve: (r: Reply[]) => void; reject: (e: Error) => void }[] = [];
  private closed: Error | null = null;

  private constructor(private readonly sock: net.Socket) {
    sock.setNoDelay(true);
    sock.on('data', (d) => this.onData(d));
    const fail = (err: Error): void => {
      this.closed = err;
      for (const p of this.pending.splice(0)) p.reject(err);
    };
    sock.on('error', fail);
    sock.on('close', () => fail(new Error('connection closed')));
  }

  static connect(port: number): Promise<Client> {
    return new Promise((resolve, reject) => {
      const sock = net.connect(port, '127.0.0.1');
      sock.once('error', reject);
      sock.once('connect', () => { sock.off('error', reject); resolve(new Client(sock)); });
    });
  }

  /** Send an already encoded buffer holding `count` commands; resolves with all replies. */
  sendRaw(data: Buffer, count: number): Promise<Reply[]> {
    if (this.closed) return Promise.reject(this.closed);
    return new Promise((resolve, reject) => {
      this.pending.push({ left: count, replies: [], resolve, reject });
      this.sock.write(data);
    });
  }

  async call(...args: string[]): Promise<Reply> {
    return (await this.sendRaw(encode(args), 1))[0]!;
  }

  close(): void { this.sock.destroy(); }

  private onData(d: Buffer): void {
    this.buf = this.buf.length === 0 ? d : Buffer.concat([this.buf, d]);
    let pos = 0;
    for (;;) {
      const r = parse(this.buf, pos);
      if (r === null) break;
      pos = r.end;
      const head = this.pending[0];
      if (!head) continue;
      head.replies.push(r.value);
      if (--head.left === 0) { this.pending.shift(); head.resolve(head.replies); }
    }
    this.buf = this.buf.subarray(pos);
  }
}

function parse(buf: Buffer, pos: number): { value: Reply; end: number } | null {
  const nl = buf.indexOf('\r\n', pos);
  if (nl < 0) return null;
  const type = String.fromCharCode(buf[pos]!);
  const line = buf.toString('latin1', pos + 1, nl);
  switch (type) {
    case '+': return { value: line, end: nl + 2 };
    case '-': return { value: new Error(line), end: nl + 2 };
    case ':': return { value: Number(line), end: nl + 2 };
    case '$': {
      const n = Number(line);
      if (n < 0) return { value: null, end: nl + 2 };
      if (buf.length < nl + 2 + n + 2) return null;
      return { value: buf.subarray(nl + 2, nl + 2 + n), end: nl + 2 + n + 2 };
    }
    case '*': {
      const n = Number(line);
      if (n < 0) return { value: null, end: nl + 2 };
      const items: Reply[] = [];
      let p = nl + 2;
      for (let i = 0; i < n; i++) {
        const r = parse(buf, p);
        if (r === null) return null;
        items.push(r.value);
        p = r.end;
      }
      return { value: items, end: p };
    }
    default: throw new Error(`bad RESP type byte ${type}`);
  }
}

function text(r: Reply): string {
  if (r instanceof Error) throw r;
  return Buffer.isBuffer(r) ? r.toString() : String(r);
}

// ---------------------------------------------------------------- dataset

function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

interface Dataset { keys: number; maxValue: number; seed: number; totalValueBytes: number; batches: () => Generator<Buffer> }

/**
 * Value sizes: 50% uniform in [16, max/16), 35% in [max/16, max/2), 15% in
 * [max/2, max]. Value bytes are slices of a 4 MiB seeded random buffer at
 * random offsets, so they do not compress and are all different.
 */
function dataset(keys: number, maxValue: number, seed: number): Dataset {
  const rnd = mulberry32(seed);
  const pool = Buffer.alloc(4 << 20);
  for (let i = 0; i < pool.length; i += 4) pool.writeUInt32LE(Math.floor(rnd() * 4294967296), i);
  const band = (lo: number, hi: number): number => Math.max(MIN_VALUE, Math.floor(lo + rnd() * (hi - lo)));
  const sizes = new Uint32Array(keys);
  const offsets = new Uint32Array(keys);
  let total = 0;
  for (let i = 0; i < keys; i++) {
    const u = rnd();
    const size = u < 0.5 ? band(MIN_VALUE, maxValue / 16) : u < 0.85 ? band(maxValue / 16, maxValue / 2) : band(maxValue / 2, maxValue + 1);
    sizes[i] = Math.min(size, maxValue);
    offsets[i] = Math.floor(rnd() * (pool.length - sizes[i]!));
    total += sizes[i]!;
  }
  function* batches(): Generator<Buffer> {
    for (let i = 0; i < keys; i += BATCH) {
      const parts: Buffer[] = [];
      for (let k = i; k < Math.min(keys, i + BATCH); k++) {
        const key = `key:${String(k).padStart(8, '0')}`;
        const value = pool.subarray(offsets[k]!, offsets[k]! + sizes[k]!);
        parts.push(Buffer.from(`*3\r\n$3\r\nSET\r\n$${key.length}\r\n${key}\r\n$${value.length}\r\n`), value, Buffer.from('\r\n'));
      }
      yield Buffer.concat(parts);
    }
  }
  return { keys, maxValue, seed, totalValueBytes: total, batches };
}

/** Pipelined SETs, BATCH commands per write, a few writes in flight, into every port at once. */
async function load(ds: Dataset, ports: number[]): Promise<void> {
  const clients = await Promise.all(ports.map((p) => Client.connect(p)));
  try {
    const inflight: Promise<void>[] = [];
    for (const batch of ds.batches()) {
      const n = parseBatchCount(batch);
      inflight.push(Promise.all(clients.map((c) => c.sendRaw(batch, n))).then((all) => {
        for (const replies of all) for (const r of replies) if (r instanceof Error) throw r;
      }));
      if (inflight.length >= 4) await inflight.shift();
    }
    await Promise.all(inflight);
    for (const c of clients) {
      const size = Number(text(await c.call('DBSIZE')));
      if (size !== ds.keys) throw new Error(`DBSIZE ${size} after loading ${ds.keys} keys`);
    }
  } finally {
    for (const c of clients) c.close();
  }
}

/** Number of commands in a batch built by dataset(): count the "*3\r\n$3\r\nSET" headers. */
function parseBatchCount(batch: Buffer): number {
  const marker = Buffer.from('*3\r\n$3\r\nSET\r\n');
  let n = 0;
  let p = 0;
  for (;;) {
    // Values are random bytes, so skip over them by parsing lengths rather than searching.
    if (p >= batch.length) return n;
    if (batch.compare(marker, 0, marker.length, p, p + marker.length) !== 0) throw new Error('bad batch');
    p += marker.length;
    for (let i = 0; i < 2; i++) {
      const nl = batch.indexOf('\r\n', p);
      const len = Number(batch.toString('latin1', p + 1, nl));
      p = nl + 2 + len + 2;
    }
    n++;
  }
}

// ---------------------------------------------------------------- measurements

function statusField(pid: number, field: string): number {
  try {
    const m = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(fs.readFileSync(`/proc/${pid}/status`, 'latin1'));
    return m ? Number(m[1]) * 1024 : 0;
  } catch {
    return 0; // process gone between listing and reading
  }
}

function childPids(parent: number): number[] {
  const out: number[] = [];
  for (const name of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const stat = fs.readFileSync(`/proc/${name}/stat`, 'latin1');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      if (ppid === parent) out.push(Number(name));
    } catch { /* gone */ }
  }
  return out;
}

/**
 * RSS of the server plus its children. A shared-memory pool mapped by both a
 * parent and a child is counted once (the child's RssShmem is left out); a
 * forked Redis child has no shmem, so its whole VmRSS counts.
 */
function treeRss(pid: number): number {
  let rss = statusField(pid, 'VmRSS');
  for (const c of childPids(pid)) rss += statusField(c, 'VmRSS') - statusField(c, 'RssShmem');
  return rss;
}

function percentile(sorted: number[], q: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))]!;
}

/** PING one at a time until stop() says so; returns sorted round trips in ms. */
async function pingLoop(client: Client, stop: () => boolean): Promise<number[]> {
  const rtts: number[] = [];
  while (!stop()) {
    const t0 = nowMs();
    const r = await client.call('PING');
    rtts.push(nowMs() - t0);
    if (r !== 'PONG') throw new Error(`PING answered ${text(r)}`);
  }
  return rtts.sort((a, b) => a - b);
}

function infoField(info: string, field: string): string | undefined {
  return new RegExp(`^${field}:(.*)$`, 'm').exec(info)?.[1]?.trim();
}

interface SaveResult {
  bgsaveMs: number; fileBytes: number;
  idleMax: number; idleP999: number; idlePings: number;
  saveMax: number; saveP999: number; savePings: number;
  rssBefore: number; rssPeakDelta: number;
}

async function measureBgsave(port: number, pid: number, file: string): Promise<SaveResult> {
  const ctl = await Client.connect(port);
  const pinger = await Client.connect(port);
  try {
    // Untimed warm-up (JIT, connection), then the idle baseline: 2 s of PINGs with nothing else going on.
    const warmEnd = Date.now() + 300;
    await pingLoop(pinger, () => Date.now() >= warmEnd);
    const idleEnd = Date.now() + 2000;
    const idle = await pingLoop(pinger, () => Date.now() >= idleEnd);
    await sleep(200);

    const rssBefore = treeRss(pid);
    let peak = rssBefore;
    const sampler = setInterval(() => { peak = Math.max(peak, treeRss(pid)); }, 10);
    let done = false;
    const pings = pingLoop(pinger, () => done);
    await sleep(20); // the pinger is running before BGSAVE goes out
    const t0 = nowMs();
    const started = text(await ctl.call('BGSAVE'));
    if (!/started/i.test(started)) throw new Error(`BGSAVE answered ${started}`);
    let info = '';
    for (;;) {
      info = text(await ctl.call('INFO', 'persistence'));
      if (infoField(info, 'rdb_bgsave_in_progress') === '0') break;
      await sleep(10);
    }
    const bgsaveMs = nowMs() - t0;
    done = true;
    const during = await pings;
    clearInterval(sampler);
    peak = Math.max(peak, treeRss(pid));
    const status = infoField(info, 'rdb_last_bgsave_status');
    if (status !== 'ok') throw new Error(`rdb_last_bgsave_status:${status}`);
    return {
      bgsaveMs, fileBytes: fs.statSync(file).size,
      idleMax: idle[idle.length - 1]!, idleP999: percentile(idle, 0.999), idlePings: idle.length,
      saveMax: during[during.length - 1]!, saveP999: percentile(during, 0.999), savePings: during.length,
      rssBefore, rssPeakDelta: peak - rssBefore,
    };
  } finally {
    ctl.close();
    pinger.close();
  }
}

/** SHUTDOWN NOSAVE and wait for the process to go away. */
async function shutdown(port: number, child: ChildProcess): Promise<void> {
  const c = await Client.connect(port);
  await c.call('SHUTDOWN', 'NOSAVE').catch(() => undefined); // the connection just closes
  c.close();
  await exited(child);
}

/** Spawn → first +PONG after which DBSIZE equals `keys`; polls every 5 ms. */
async function timeToReady(cmd: string, args: string[], port: number, keys: number): Promise<{ ms: number; child: ChildProcess }> {
  const t0 = nowMs();
  const child = start(cmd, args);
  const deadline = Date.now() + 120000;
  let client: Client | null = null;
  while (Date.now() < deadline) {
    if (child.exitCode !== null) throw new Error(`${cmd} exited with ${child.exitCode} during restart`);
    try {
      client ??= await Client.connect(port);
      if ((await client.call('PING')) === 'PONG') {
        const ms = nowMs() - t0;
        const size = Number(text(await client.call('DBSIZE')));
        if (size === keys) { client.close(); return { ms, child }; }
      }
    } catch {
      client?.close();
      client = null;
    }
    await sleep(5);
  }
  throw new Error(`${cmd} was not ready with ${keys} keys within 120 s`);
}

// ---------------------------------------------------------------- report

const mib = (b: number): string => `${(b / 1048576).toFixed(1)} MiB`;
const ms = (v: number): string => (v >= 100 ? `${v.toFixed(0)} ms` : `${v.toFixed(2)} ms`);
const ratio = (p: number, r: number): string => (r > 0 ? `${(p / r).toFixed(2)}x` : 'n/a');

async function main(): Promise<void> {
  const keys = Math.floor(arg('keys', 300000));
  const maxValue = Math.floor(arg('max-value', 4096));
  const seed = Math.floor(arg('seed', 1));
  const write = process.argv.includes('--write');
  if (maxValue < MIN_VALUE * 16) throw new Error(`--max-value must be at least ${MIN_VALUE * 16}`);
  if (!fs.existsSync(POOLKV_MAIN)) throw new Error(`${POOLKV_MAIN} missing: run npx tsc -p . first`);

  const ds = dataset(keys, maxValue, seed);
  const description = `${keys} string keys (SET key:NNNNNNNN), values of ${MIN_VALUE}..${maxValue} random bytes ` +
    `(50% < ${maxValue / 16}, 35% < ${maxValue / 2}, 15% up to ${maxValue}; seed ${seed}), ${mib(ds.totalValueBytes)} of values`;
  console.log(`dataset: ${description}`);

  const redisDir = fs.mkdtempSync(path.join(os.tmpdir(), 'bench-snapshot-redis-'));
  const poolkvDir = fs.mkdtempSync(path.join(os.tmpdir(), 'bench-snapshot-poolkv-'));
  const warmDir = fs.mkdtempSync(path.join(os.tmpdir(), 'bench-snapshot-warm-'));
  const shmFile = `/dev/shm/poolkv-bench-${process.pid}.pool`;
  tempPaths.push(redisDir, poolkvDir, warmDir, shmFile);

  const redisPort = await freePort();
  const poolkvPort = await freePort();
  const redisArgs = ['--port', String(redisPort), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', redisDir];
  const poolkvArgs = [POOLKV_MAIN, '--port', String(poolkvPort), '--pool-size', '2gb', '--dir', poolkvDir, '--loglevel', 'warning'];

  let redis = start('redis-server', redisArgs);
  let poolkv = start(process.execPath, poolkvArgs);
  await Promise.all([waitForPing(redisPort), waitForPing(poolkvPort)]);
  const redisVersion = execFileSync('redis-server', ['--version'], { encoding: 'utf8' }).trim();

  let t = nowMs();
  await load(ds, [redisPort, poolkvPort]);
  console.log(`loaded both servers in ${((nowMs() - t) / 1000).toFixed(1)} s`);

  // 1-3: BGSAVE, one server at a time so they do not compete for the cores.
  const r = await measureBgsave(redisPort, redis.pid!, path.join(redisDir, 'dump.rdb'));
  console.log(`redis  BGSAVE ${ms(r.bgsaveMs)}`);
  const p = await measureBgsave(poolkvPort, poolkv.pid!, path.join(poolkvDir, 'dump.pool'));
  console.log(`poolkv BGSAVE ${ms(p.bgsaveMs)}`);

  // 4: restart from the file in dir.
  await shutdown(redisPort, redis);
  await shutdown(poolkvPort, poolkv);
  const rr = await timeToReady('redis-server', redisArgs, redisPort, keys);
  redis = rr.child;
  await shutdown(redisPort, redis);
  const pr = await timeToReady(process.execPath, poolkvArgs, poolkvPort, keys);
  poolkv = pr.child;
  await shutdown(poolkvPort, poolkv);

  // 5: poolkv warm restart from a cleanly shut down /dev/shm pool.
  const warmPort = await freePort();
  const warmArgs = [POOLKV_MAIN, '--port', String(warmPort), '--pool-size', '2gb', '--dir', warmDir,
    '--pool-path', shmFile, '--loglevel', 'warning'];
  const warm = start(process.execPath, warmArgs);
  await waitForPing(warmPort);
  await load(ds, [warmPort]);
  await shutdown(warmPort, warm);
  if (fs.existsSync(path.join(warmDir, 'dump.pool'))) throw new Error('SHUTDOWN NOSAVE wrote an image; warm restart would not be measured');
  const wr = await timeToReady(process.execPath, warmArgs, warmPort, keys);
  await shutdown(warmPort, wr.child);

  const rows: [string, string, string, string][] = [
    ['BGSAVE wall time', ms(r.bgsaveMs), ms(p.bgsaveMs), ratio(p.bgsaveMs, r.bgsaveMs)],
    ['snapshot file size', mib(r.fileBytes), mib(p.fileBytes), ratio(p.fileBytes, r.fileBytes)],
    ['PING max, idle (2 s)', ms(r.idleMax), ms(p.idleMax), ratio(p.idleMax, r.idleMax)],
    ['PING p99.9, idle (2 s)', ms(r.idleP999), ms(p.idleP999), ratio(p.idleP999, r.idleP999)],
    ['PING max, during BGSAVE', ms(r.saveMax), ms(p.saveMax), ratio(p.saveMax, r.saveMax)],
    ['PING p99.9, during BGSAVE', ms(r.saveP999), ms(p.saveP999), ratio(p.saveP999, r.saveP999)],
    ['PINGs answered during BGSAVE', String(r.savePings), String(p.savePings), ratio(p.savePings, r.savePings)],
    ['RSS before BGSAVE', mib(r.rssBefore), mib(p.rssBefore), ratio(p.rssBefore, r.rssBefore)],
    ['peak RSS increase during BGSAVE', mib(r.rssPeakDelta), mib(p.rssPeakDelta), ratio(p.rssPeakDelta, r.rssPeakDelta)],
    ['restart from file: spawn → PONG with data', ms(rr.ms), ms(pr.ms), ratio(pr.ms, rr.ms)],
    ['warm restart (/dev/shm pool): spawn → PONG with data', 'n/a', ms(wr.ms), 'n/a'],
  ];
  const table = [
    '| metric | redis | poolkv | poolkv/redis |',
    '|---|---|---|---|',
    ...rows.map((row) => `| ${row.join(' | ')} |`),
  ].join('\n');
  console.log('\n' + table);

  if (write) {
    const machine = `${os.cpus().length} cores (${os.cpus()[0]?.model ?? 'unknown'}), Node ${process.version}, ${redisVersion.split(' ').slice(0, 3).join(' ')}`;
    const command = ['node dist/scripts/bench-snapshot.js', ...process.argv.slice(2)].join(' ');
    const section = [
      '## Snapshots (BGSAVE, restart)',
      '',
      `Command: \`${command}\` (run on ${new Date().toISOString().slice(0, 10)}; ${machine}).`,
      `Dataset, loaded identically into both with pipelined SET (${BATCH} per write): ${description}.`,
      `redis-server runs with \`--save '' --appendonly no\`; poolkv with \`--pool-size 2gb\`; both on the same cores as the benchmark client,`,
      'measured one server at a time.',
      '',
      '- BGSAVE wall time: BGSAVE sent → `INFO persistence` (polled every 10 ms) shows `rdb_bgsave_in_progress:0`; status checked `ok`.',
      '- PING: one client sends PING one at a time; "idle" is 2 s with nothing else running, "during BGSAVE" from just before BGSAVE until it ends.',
      '- RSS: VmRSS of the server (for Redis plus the forked child) sampled every 10 ms from /proc; the increase is peak minus the value before BGSAVE.',
      '  poolkv\'s pool is shared memory and counted once. Redis\'s child shares pages with its parent until they are copied, so summing the two',
      '  VmRSS overstates Redis\'s real extra memory (the shared pages count twice).',
      '- Restart from file: SHUTDOWN NOSAVE after the BGSAVE, start again with the same dir (dump.rdb / dump.pool), spawn → first `+PONG`',
      '  (PING polled every 5 ms) after which DBSIZE equals the key count.',
      '- Warm restart: poolkv with `--pool-path /dev/shm/…`, loaded, SHUTDOWN NOSAVE, started again with the same pool-path (no image in dir).',
      '',
      table,
      '',
    ].join('\n');
    writeSection(section, '## Snapshots');
    console.log('\nwrote the Snapshots section of docs/benchmarks.md');
  }
}

/** Replace the section starting with `heading` in docs/benchmarks.md (or append it). */
for (const sig of ['SIGINT', 'SIGTERM'] as const) {
  process.once(sig, () => { cleanup(); process.exit(130); });
}
process.once('exit', () => { for (const child of children) { try { child.kill('SIGKILL'); } catch { /* gone */ } } });

main().then(() => cleanup(), (err) => {
  console.error(err);
  cleanup();
  process.exit(1);
});
