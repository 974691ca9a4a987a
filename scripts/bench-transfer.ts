// Snapshot transfer throughput: BGSAVE to a poolkv-receiver and a restart with
// load-from-peer, over tcp (anywhere) or rdma (inside the soft-RoCE VM, next
// to ib_write_bw / ib_read_bw measured in the same VM, which are the limit there).
//
//   node dist/scripts/bench-transfer.js --transport tcp [--mb 256] [--rounds 3] [--write]
//   scripts/rxe-vm/run -- node dist/scripts/bench-transfer.js --transport rdma [--mb 256] [--write]
//
// The dataset is incompressible 64 KiB values filling about --mb MiB of pool.
// BGSAVE time runs from the BGSAVE reply to rdb_bgsave_in_progress:0 (the
// receiver has fsynced and committed); load time from spawning the server to
// the first DBSIZE answered with the whole dataset in place. Both poll every
// POLL_MS: each poll costs the server CPU (a new connection per DBSIZE), which
// in the TCG VM slowed what it measured; the figures are at most POLL_MS late.
// The server's and the receiver's log lines give the transfer alone: the
// receiver's blocks phase of a save, and the load from connecting to the last
// verified page (process start excluded).
import { type ChildProcess, execFileSync, spawn } from 'child_process';
import { randomBytes } from 'crypto';
import * as fs from 'fs';
import * as net from 'net';
import * as os from 'os';
import * as path from 'path';
import Redis from 'ioredis';
import { freePort, numberArg, ROOT, waitForPing, writeSection } from './bench-common';

type Transport = 'tcp' | 'rdma';

interface Round {
  imageBytes: number;
  bgsaveMs: number;
  loadMs: number;
  /** The receiver's log: the blocks of the save (first to last block), the pages of the load (READY to LOADED). */
  saveBlocksMs: number;
  loadPagesMs: number;
  /** The server's log: the load from connecting to the last verified page (process start excluded). */
  loadServerMs: number;
}

/** The `index`-th (0-based) match of `pattern` in `file`, once the file has that many (within 30 s). */
async function nthLogMatch(file: string, pattern: RegExp, index: number): Promise<RegExpExecArray> {
  const global = new RegExp(pattern.source, 'g');
  const deadline = Date.now() + 30000;
  for (;;) {
    const matches = [...fs.readFileSync(file, 'utf8').matchAll(global)];
    if (matches.length > index) return matches[index] as RegExpExecArray;
    if (Date.now() > deadline) throw new Error(`${file}: no match ${index + 1} of ${pattern}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

const VALUE_BYTES = 64 * 1024;
const POLL_MS = 20;
const TOKEN = 'bench-transfer-token';

function stringArg(name: string, fallback: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1]! : fallback;
}

const children = new Set<ChildProcess>();
function start(cmd: string, args: string[], logFile: string): ChildProcess {
  const out = fs.openSync(logFile, 'a');
  const child = spawn(cmd, args, { stdio: ['ignore', out, out] });
  fs.closeSync(out);
  children.add(child);
  child.once('exit', () => children.delete(child));
  return child;
}

async function stop(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  child.kill('SIGKILL');
  await exited;
}

function infoField(info: string, field: string): string | undefined {
  const m = new RegExp(`^${field}:(.*)$`, 'm').exec(info);
  return m ? m[1]!.trim() : undefined;
}

async function waitForLog(file: string, pattern: RegExp, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (fs.existsSync(file) && pattern.test(fs.readFileSync(file, 'utf8'))) return;
    await new Promise((r) => setTimeout(r, 20));
  }
  throw new Error(`${file}: no line matching ${pattern} within ${timeoutMs} ms:\n${fs.existsSync(file) ? fs.readFileSync(file, 'utf8').slice(-2000) : ''}`);
}

function serverArgs(port: number, transport: Transport, peer: string, poolMb: number, dir: string, extra: string[]): string[] {
  return [path.join(ROOT, 'dist/src/server/main.js'), '--port', String(port), '--pool-size', `${poolMb}mb`, '--save', '',
    '--dir', dir, '--snapshot-transport', transport, '--snapshot-peer', peer, '--snapshot-auth-token', TOKEN,
    '--snapshot-name', 'bench', ...extra];
}

async function fill(port: number, mb: number): Promise<number> {
  const client = new Redis({ port, host: '127.0.0.1', lazyConnect: true, enableOfflineQueue: true });
  await client.connect();
  const keys = Math.ceil((mb * 1024 * 1024) / VALUE_BYTES);
  const value = randomBytes(VALUE_BYTES);
  for (let i = 0; i < keys; i += 256) {
    const batch = client.pipeline();
    for (let k = i; k < Math.min(keys, i + 256); k++) {
      value.writeUInt32LE(k, 0); // every value differs: nothing is accidentally shared
      batch.set(`key:${k}`, value);
    }
    await batch.exec();
  }
  await client.quit();
  return keys;
}

async function bgsave(port: number): Promise<{ ms: number; bytes: number }> {
  const client = new Redis({ port, host: '127.0.0.1' });
  try {
    const startedAt = performance.now();
    const reply: string = await client.bgsave();
    if (reply !== 'Background saving started') throw new Error(`BGSAVE: ${reply}`);
    for (;;) {
      const info = await client.info('persistence');
      if (infoField(info, 'rdb_bgsave_in_progress') === '0') {
        const ms = performance.now() - startedAt;
        if (infoField(info, 'rdb_last_bgsave_status') !== 'ok') throw new Error(`BGSAVE failed:\n${info}`);
        return { ms, bytes: Number(infoField(info, 'snapshot_last_image_bytes') ?? 0) };
      }
      await new Promise((r) => setTimeout(r, POLL_MS));
    }
  } finally {
    client.disconnect();
  }
}

/** DBSIZE as soon as the server answers it (not refused, not -LOADING): the first reply with the data in place. */
async function dbsizeOnceLoaded(port: number, timeoutMs: number): Promise<number> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const reply = await new Promise<string>((resolve) => {
      const socket = net.connect(port, '127.0.0.1');
      let text = '';
      socket.once('error', () => resolve(''));
      socket.on('data', (chunk) => {
        text += chunk.toString('latin1');
        if (text.endsWith('\r\n')) {
          socket.destroy();
          resolve(text);
        }
      });
      socket.write('DBSIZE\r\n');
    });
    if (reply.startsWith(':')) return Number(reply.slice(1));
    if (reply !== '' && !reply.startsWith('-LOADING')) throw new Error(`DBSIZE during load answered ${JSON.stringify(reply)}`);
    await new Promise((r) => setTimeout(r, POLL_MS));
  }
  throw new Error(`the server on ${port} did not finish loading within ${timeoutMs} ms`);
}

/** The BW average[MB/sec] column of a perftest client run with `bytes`-sized messages (perftest's MB is 2^20 bytes). */
function perftest(tool: 'ib_write_bw' | 'ib_read_bw', host: string, device: string, bytes: number): number {
  const args = ['-d', device, '-s', String(bytes), '-D', '5', '-F'];
  const server = spawn(tool, args, { stdio: 'ignore' });
  try {
    execFileSync('sleep', ['1']);
    const out = execFileSync(tool, [...args, host], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
    const line = out.split('\n').find((l) => new RegExp(`^\\s*${bytes}\\s`).test(l));
    if (line === undefined) throw new Error(`${tool}: no result line in:\n${out}`);
    return Number(line.trim().split(/\s+/)[3]);
  } finally {
    server.kill('SIGKILL');
  }
}

/** perftest at 64 KiB and 1 MiB messages (rxe's best size varies with load); the faster is the limit. */
function perftestBest(tool: 'ib_write_bw' | 'ib_read_bw', host: string, device: string): { best: number; text: string } {
  const small = perftest(tool, host, device, 65536);
  const large = perftest(tool, host, device, 1048576);
  return { best: Math.max(small, large), text: `${tool} ${small.toFixed(1)} MiB/s (64 KiB messages) / ${large.toFixed(1)} MiB/s (1 MiB)` };
}

async function main(): Promise<void> {
  const transport = stringArg('transport', 'tcp') as Transport;
  if (transport !== 'tcp' && transport !== 'rdma') throw new Error('--transport must be tcp or rdma');
  const host = transport === 'rdma' ? (process.env.RXE_ADDR ?? '') : '127.0.0.1';
  if (host === '') throw new Error('--transport rdma needs RXE_ADDR (run it inside scripts/rxe-vm/run)');
  const mb = numberArg('mb', 256);
  const rounds = numberArg('rounds', transport === 'rdma' ? 1 : 3);
  const poolMb = Math.ceil(mb * 1.25) + 64;
  // Where the receiver stores images (and the server its dir): in the RDMA VM, a real disk (--disk) rather than tmpfs.
  const work = fs.mkdtempSync(path.join(stringArg('work-dir', os.tmpdir()), 'poolkv-bench-transfer-'));
  const receiverDir = path.join(work, 'receiver');
  fs.mkdirSync(receiverDir);
  const receiverPort = await freePort();
  const receiverLog = path.join(work, 'receiver.log');
  const peer = `${host}:${receiverPort}`;
  const receiver = start(process.execPath, [path.join(ROOT, 'dist/src/receiver/cli.js'), '--listen', peer, '--dir', receiverDir,
    '--auth-token', TOKEN, '--transport', transport, '--keep', '1'], receiverLog);
  const results: Round[] = [];
  let storage = '';
  try {
    await waitForLog(receiverLog, /listening|Ready/i, 30000);
    let port = await freePort();
    const serverLog = path.join(work, 'server.log');
    let server = start(process.execPath, serverArgs(port, transport, peer, poolMb, work, []), serverLog);
    await waitForPing(port, 60000);
    const keys = await fill(port, mb);
    for (let round = 0; round < rounds; round++) {
      const saved = await bgsave(port);
      await stop(server);
      const loadStarted = performance.now();
      const loadPort = await freePort();
      server = start(process.execPath, serverArgs(loadPort, transport, peer, poolMb, work, ['--load-from-peer', 'yes']), serverLog);
      const size = await dbsizeOnceLoaded(loadPort, 600000);
      const loadMs = performance.now() - loadStarted;
      if (size !== keys) throw new Error(`after load-from-peer DBSIZE is ${size}, expected ${keys}`);
      const saveBlocksMs = Number((await nthLogMatch(receiverLog, /committed from .*\(blocks (\d+) ms/, round))[1]);
      const loadPagesMs = Number((await nthLogMatch(receiverLog, /loaded by .*\(pages (\d+) ms/, round))[1]);
      const loadServerMs = 1000 * Number((await nthLogMatch(serverLog, /DB loaded from .*: ([\d.]+) seconds/, round))[1]);
      const savePhases = (await nthLogMatch(serverLog, /generation \d+ \((connect [^)]*)\)/, round))[1];
      const loadPhases = (await nthLogMatch(serverLog, /Load from .*: (connect .*)/, round))[1];
      console.log(`round ${round + 1}: server's save phases: ${savePhases}; load phases: ${loadPhases}`);
      results.push({ imageBytes: saved.bytes, bgsaveMs: saved.ms, loadMs, saveBlocksMs, loadPagesMs, loadServerMs });
      console.log(`round ${round + 1}: image ${(saved.bytes / 2 ** 20).toFixed(1)} MiB, BGSAVE ${saved.ms.toFixed(0)} ms ` +
        `(blocks ${saveBlocksMs} ms), load ${loadMs.toFixed(0)} ms (from connecting ${loadServerMs.toFixed(0)} ms, pages ${loadPagesMs} ms)`);
      port = loadPort; // the next round saves from the server that just loaded
    }
    await stop(server);
    const mode = /; (O_DIRECT|buffered) writes to /.exec(fs.readFileSync(receiverLog, 'utf8'));
    storage = `the receiver's DIR on ${filesystemType(receiverDir)}, ${mode?.[1] ?? 'unknown'} writes`;
  } finally {
    await stop(receiver);
    for (const child of [...children]) await stop(child);
    fs.rmSync(work, { recursive: true, force: true });
  }
  report(transport, host, mb, results, storage);
}

/** The filesystem `dir` is on, as df -T names it. */
function filesystemType(dir: string): string {
  try {
    return execFileSync('df', ['--output=fstype', dir], { encoding: 'utf8' }).trim().split('\n').pop()!.trim();
  } catch {
    return 'an unknown filesystem';
  }
}

function median(values: number[]): number {
  const s = [...values].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

function report(transport: Transport, host: string, mb: number, results: Round[], storage: string): void {
  const bytes = median(results.map((r) => r.imageBytes));
  const save = median(results.map((r) => r.bgsaveMs));
  const load = median(results.map((r) => r.loadMs));
  const mibs = (ms: number): number => bytes / 2 ** 20 / (ms / 1000);
  const saveBlocks = median(results.map((r) => r.saveBlocksMs));
  const loadServer = median(results.map((r) => r.loadServerMs));
  const loadPages = median(results.map((r) => r.loadPagesMs));
  const rows = [
    `| transport | image | BGSAVE to receiver | save MiB/s | load-from-peer (spawn to data) | load MiB/s |`,
    `|---|---|---|---|---|---|`,
    `| ${transport} (${host}) | ${(bytes / 2 ** 20).toFixed(1)} MiB | ${save.toFixed(0)} ms | ${mibs(save).toFixed(1)} | ${load.toFixed(0)} ms | ${mibs(load).toFixed(1)} |`,
    '',
    'The transfer alone, from the logs:',
    '',
    `| phase | time | MiB/s |`,
    `|---|---|---|`,
    `| save: the receiver's blocks phase (first to last block) | ${saveBlocks} ms | ${mibs(saveBlocks).toFixed(1)} |`,
    `| load: the server's load, from connecting (process start excluded; includes mapping and registering the pool) | ${loadServer.toFixed(0)} ms | ${mibs(loadServer).toFixed(1)} |`,
    `| load: the pages, READY to LOADED (receiver's log) | ${loadPages} ms | ${mibs(loadPages).toFixed(1)} |`,
  ];
  let limits = '';
  const workDir = (process.argv.includes('--work-dir') ? ` --work-dir ${stringArg('work-dir', '')}` : '') +
    (process.argv.includes('--rounds') ? ` --rounds ${results.length}` : '');
  if (transport === 'rdma') {
    const device = process.env.RXE_DEV ?? 'rxe0';
    const write = perftestBest('ib_write_bw', host, device);
    const read = perftestBest('ib_read_bw', host, device);
    const pct = (ms: number): string => `${(100 * mibs(ms) / write.best).toFixed(0)}%`;
    limits = `\nSame VM, same run, 5 s each: ${write.text}; ${read.text}.\n` +
      `Against the better ib_write_bw: BGSAVE ${pct(save)} (its blocks phase ${pct(saveBlocks)}); ` +
      `load-from-peer ${pct(load)} with process start, ${pct(loadServer)} from connecting, ${pct(loadPages)} for the pages alone.\n`;
  }
  const table = rows.join('\n');
  console.log(`${storage}\n\n${table}\n${limits}`);
  if (process.argv.includes('--write')) {
    const heading = `## Snapshot transfer over ${transport}`;
    const command = transport === 'rdma'
      ? `scripts/rxe-vm/run${process.env.POOLKV_VM_DISK !== undefined ? ' --disk 2G' : ''} -- node dist/scripts/bench-transfer.js --transport rdma --mb ${mb}${workDir} --write`
      : `node dist/scripts/bench-transfer.js --transport tcp --mb ${mb}${workDir} --write`;
    // The notes on where the time goes (written by hand, after the figures) are kept.
    writeSection(`${heading}\n\n\`${command}\` (${results.length} round(s), medians; ${os.cpus().length} CPUs; ${storage})\n\n${table}\n${limits}\n`, heading,
      'Where the RDMA time goes');
  }
}

main().catch((err) => {
  console.error(err);
  for (const child of children) child.kill('SIGKILL');
  process.exit(1);
});
