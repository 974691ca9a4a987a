// Child-process helpers for integration tests: a real redis-server and a
// poolkv-server (the built dist/src/server/main.js) on free loopback ports,
// plus a raw RESP client for byte-exact comparisons. Every child is killed
// when the test process exits, however it exits. Port 6379 is never used.
import { spawn, type ChildProcess } from 'child_process';
import * as fs from 'fs';
import * as net from 'net';
import * as os from 'os';
import * as path from 'path';

export const REDIS_SERVER_BIN = '/usr/bin/redis-server';
/** The package root (this file runs as dist/test/helpers/processes.js). */
export const REPO_ROOT = path.resolve(__dirname, '../../..');
export const POOLKV_MAIN = path.join(REPO_ROOT, 'dist/src/server/main.js');

const START_TIMEOUT_MS = 15000;
const STOP_TIMEOUT_MS = 5000;
const KEPT_OUTPUT_BYTES = 64 * 1024;

// ---- cleanup --------------------------------------------------------------

const liveChildren = new Set<ChildProcess>();
const scratchDirs = new Set<string>();

function killAllChildren(): void {
  for (const child of liveChildren) {
    try {
      child.kill('SIGKILL');
    } catch {
      // already gone
    }
  }
  liveChildren.clear();
  for (const dir of scratchDirs) fs.rmSync(dir, { recursive: true, force: true });
  scratchDirs.clear();
}

process.on('exit', killAllChildren);
for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
  process.once(signal, () => {
    killAllChildren();
    process.exit(128 + (os.constants.signals[signal] ?? 0));
  });
}

// ---- ports ----------------------------------------------------------------

/** A loopback port that was free a moment ago (never 6379). */
export async function freePort(): Promise<number> {
  for (;;) {
    const port = await new Promise<number>((resolve, reject) => {
      const probe = net.createServer();
      probe.once('error', reject);
      probe.listen(0, '127.0.0.1', () => {
        const { port: chosen } = probe.address() as net.AddressInfo;
        probe.close(() => resolve(chosen));
      });
    });
    if (port !== 6379) return port;
  }
}

// ---- RESP -----------------------------------------------------------------

/** Encode a command as a RESP multibulk request (strings as UTF-8). */
export function encodeCommand(args: ReadonlyArray<string | Buffer>): Buffer {
  const parts: Buffer[] = [Buffer.from(`*${args.length}\r\n`)];
  for (const arg of args) {
    const bytes = typeof arg === 'string' ? Buffer.from(arg, 'utf8') : arg;
    parts.push(Buffer.from(`$${bytes.length}\r\n`), bytes, Buffer.from('\r\n'));
  }
  return Buffer.concat(parts);
}

/**
 * Length of the first complete RESP2/RESP3 reply in `buf` starting at `offset`,
 * or -1 if more bytes are needed. Used to know when a raw reply is complete.
 */
export function replyLength(buf: Buffer, offset = 0): number {
  const end = scanReply(buf, offset);
  return end < 0 ? -1 : end - offset;
}

function lineEnd(buf: Buffer, from: number): number {
  const cr = buf.indexOf('\r\n', from);
  return cr < 0 ? -1 : cr;
}

function scanReply(buf: Buffer, pos: number): number {
  if (pos >= buf.length) return -1;
  const type = String.fromCharCode(buf[pos]);
  const cr = lineEnd(buf, pos + 1);
  if (cr < 0) return -1;
  const header = buf.toString('latin1', pos + 1, cr);
  const afterLine = cr + 2;
  switch (type) {
    case '+': case '-': case ':': case '_': case ',': case '#': case '(':
      return afterLine;
    case '$': case '!': case '=': {
      const len = Number(header);
      if (len < 0) return afterLine; // null bulk
      return buf.length >= afterLine + len + 2 ? afterLine + len + 2 : -1;
    }
    case '*': case '~': case '>': case '%': case '|': {
      const count = Number(header);
      if (count < 0) return afterLine; // null array
      const elements = type === '%' || type === '|' ? count * 2 : count;
      let p = afterLine;
      for (let i = 0; i < elements; i++) {
        p = scanReply(buf, p);
        if (p < 0) return -1;
      }
      // An attribute annotates the reply that follows it.
      return type === '|' ? scanReply(buf, p) : p;
    }
    default:
      // Inline error text or garbage: treat the line as the whole reply.
      return afterLine;
  }
}

export interface RawCommandOptions {
  /** Complete replies to wait for (default 1). */
  replies?: number;
  timeoutMs?: number;
  host?: string;
}

/**
 * Send raw bytes (or a command's arguments, RESP-encoded) on a fresh connection
 * and return exactly the bytes of the first `replies` replies. Rejects on
 * timeout or if the server closes first, showing what did arrive.
 */
export function rawCommand(
  port: number,
  request: Buffer | string | ReadonlyArray<string | Buffer>,
  options: RawCommandOptions = {},
): Promise<Buffer> {
  const bytes = Buffer.isBuffer(request) ? request : typeof request === 'string' ? Buffer.from(request, 'latin1') : encodeCommand(request);
  const wanted = options.replies ?? 1;
  const timeoutMs = options.timeoutMs ?? 5000;
  return new Promise((resolve, reject) => {
    let received = Buffer.alloc(0);
    let settled = false;
    const socket = net.connect({ port, host: options.host ?? '127.0.0.1' });
    const finish = (err: Error | null, value?: Buffer): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socket.destroy();
      if (err) reject(err);
      else resolve(value as Buffer);
    };
    const complete = (): number => {
      let p = 0;
      for (let i = 0; i < wanted; i++) {
        const end = scanReply(received, p);
        if (end < 0) return -1;
        p = end;
      }
      return p;
    };
    const timer = setTimeout(
      () => finish(new Error(`no complete reply within ${timeoutMs} ms; got ${JSON.stringify(received.toString('latin1'))}`)),
      timeoutMs,
    );
    socket.on('connect', () => socket.write(bytes));
    socket.on('data', (chunk: Buffer) => {
      received = Buffer.concat([received, chunk]);
      const end = complete();
      if (end >= 0) finish(null, received.subarray(0, end));
    });
    socket.on('error', (err) => finish(err));
    socket.on('close', () => {
      const end = complete();
      if (end >= 0) finish(null, received.subarray(0, end));
      else finish(new Error(`connection closed; got ${JSON.stringify(received.toString('latin1'))}`));
    });
  });
}

// ---- servers --------------------------------------------------------------

export interface RedisProcess {
  port: number;
  process: ChildProcess;
  /** stdout+stderr so far (the last 64 KiB). */
  output(): string;
  /** SIGTERM, then SIGKILL if it lingers; resolves with the exit code (null if killed by a signal). */
  stop(): Promise<number | null>;
}

interface SpawnOptions {
  command: string;
  args: string[];
  cwd: string;
  port: number;
  what: string;
}

async function spawnAndWait(options: SpawnOptions): Promise<RedisProcess> {
  const child = spawn(options.command, options.args, { cwd: options.cwd, stdio: ['ignore', 'pipe', 'pipe'] });
  liveChildren.add(child);
  let output = '';
  const keep = (chunk: Buffer): void => {
    output += chunk.toString('utf8');
    if (output.length > KEPT_OUTPUT_BYTES) output = output.slice(-KEPT_OUTPUT_BYTES);
  };
  child.stdout?.on('data', keep);
  child.stderr?.on('data', keep);
  const exited = new Promise<number | null>((resolve) => {
    child.once('exit', (code) => {
      liveChildren.delete(child);
      resolve(code);
    });
  });

  const handle: RedisProcess = {
    port: options.port,
    process: child,
    output: () => output,
    async stop() {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill('SIGTERM');
        const timer = setTimeout(() => child.kill('SIGKILL'), STOP_TIMEOUT_MS);
        const code = await exited;
        clearTimeout(timer);
        return code;
      }
      return child.exitCode;
    },
  };

  const deadline = Date.now() + START_TIMEOUT_MS;
  for (;;) {
    if (child.exitCode !== null || child.signalCode !== null) {
      throw new Error(`${options.what} exited during start-up (code ${child.exitCode}, signal ${child.signalCode}):\n${output}`);
    }
    try {
      const reply = await rawCommand(options.port, ['PING'], { timeoutMs: 1000 });
      if (reply.toString('latin1') === '+PONG\r\n') return handle;
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) {
      await handle.stop();
      throw new Error(`${options.what} did not answer PING on port ${options.port} within ${START_TIMEOUT_MS} ms:\n${output}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
}

function scratchDir(prefix: string): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  scratchDirs.add(dir);
  return dir;
}

/** A real redis-server without persistence on a free loopback port (extra args after the defaults). */
export async function startRedis(extraArgs: string[] = []): Promise<RedisProcess> {
  const port = await freePort();
  const dir = scratchDir('poolkv-redis-');
  return spawnAndWait({
    command: REDIS_SERVER_BIN,
    args: ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir, ...extraArgs],
    cwd: dir,
    port,
    what: 'redis-server',
  });
}

/**
 * poolkv-server from dist/ (run `npx tsc -p .` first) on a free loopback port
 * with a 64 MiB memfd pool, in a scratch working directory; `args` come last
 * and so override the defaults.
 */
export async function startPoolkv(args: string[] = []): Promise<RedisProcess> {
  if (!fs.existsSync(POOLKV_MAIN)) throw new Error(`${POOLKV_MAIN} is missing: build first (npx tsc -p .)`);
  const port = await freePort();
  const dir = scratchDir('poolkv-server-');
  const portOverride = args.lastIndexOf('--port');
  const effectivePort = portOverride >= 0 ? Number(args[portOverride + 1]) : port;
  return spawnAndWait({
    command: process.execPath,
    args: [POOLKV_MAIN, '--port', String(port), '--bind', '127.0.0.1', '--pool-size', '64mb', ...args],
    cwd: dir,
    port: effectivePort,
    what: 'poolkv-server',
  });
}
