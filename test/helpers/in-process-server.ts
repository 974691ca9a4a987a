// Test plumbing for the protocol/server layer: a real Server in this process
// on an ephemeral port (with the real Config and a Logger whose lines are
// recorded), a raw-socket client that sees exact bytes, and a real
// redis-server to compare replies with.
import { spawn, type ChildProcess } from 'child_process';
import { existsSync } from 'fs';
import * as net from 'net';
import type { CommandTable } from '../../src/commands/table';
import { Config } from '../../src/config/config';
import { Pool } from '../../src/pool/pool';
import { Logger } from '../../src/server/log';
import { Server } from '../../src/server/server';
import { Keyspace } from '../../src/store/keyspace';

const MiB = 1024 * 1024;

/** Log lines the server wrote, split back into level and message. */
export class LogRecorder {
  readonly lines: Array<{ level: string; message: string }> = [];
  readonly logger = new Logger({
    level: 'debug',
    sink: (line) => {
      // "PID:M 21 Nov 2026 01:02:03.456 * message"
      const m = /^\d+:\w \d+ \w+ \d+ [\d:.]+ (.) (.*)$/s.exec(line.replace(/\n$/, ''));
      const level = m ? ({ '.': 'debug', '-': 'verbose', '*': 'notice', '#': 'warning' } as Record<string, string>)[m[1]!] ?? '?' : '?';
      this.lines.push({ level, message: m ? m[2]! : line });
    },
  });

  has(fragment: string): boolean {
    return this.lines.some((line) => line.message.includes(fragment));
  }
}

export interface TestServer {
  server: Server;
  pool: Pool;
  config: Config;
  log: LogRecorder;
  port: number;
  close(): Promise<void>;
}

export async function startServer(options: { config?: Record<string, string>; commands?: CommandTable } = {}): Promise<TestServer> {
  const argv = ['--port', '0', '--bind', '127.0.0.1'];
  for (const [name, value] of Object.entries(options.config ?? {})) argv.push(`--${name}`, value);
  const { config } = Config.load(argv);
  const log = new LogRecorder();
  const pool = Pool.open({ size: 32 * MiB, databases: config.getNumber('databases') });
  const keyspace = new Keyspace(pool);
  const server = new Server({
    pool, keyspace, config, log: log.logger,
    configFile: '', executable: process.execPath,
    commands: options.commands,
  });
  try {
    await server.listen();
  } catch (err) {
    pool.close();
    throw err;
  }
  return {
    server, pool, config, log, port: server.tcpPort,
    async close() {
      await server.close();
      pool.close();
    },
  };
}

/** A client on a raw socket: writes bytes, reads exact bytes, notices the server closing. */
export class RawClient {
  private received = Buffer.alloc(0);
  private cursor = 0;
  closed = false;
  private waiters: Array<() => void> = [];

  private constructor(readonly socket: net.Socket) {
    socket.on('data', (chunk: Buffer) => {
      this.received = Buffer.concat([this.received, chunk]);
      this.wake();
    });
    socket.on('close', () => {
      this.closed = true;
      this.wake();
    });
    socket.on('error', () => {});
  }

  static connect(port: number, host = '127.0.0.1'): Promise<RawClient> {
    return new Promise((resolve, reject) => {
      const socket = net.connect({ port, host }, () => {
        socket.off('error', reject);
        resolve(new RawClient(socket));
      });
      socket.once('error', reject);
    });
  }

  private wake(): void {
    const waiters = this.waiters;
    this.waiters = [];
    for (const w of waiters) w();
  }

  private changed(timeoutMs: number): Promise<boolean> {
    return new Promise((resolve) => {
      const timer = setTimeout(() => resolve(false), timeoutMs);
      this.waiters.push(() => {
        clearTimeout(timer);
        resolve(true);
      });
    });
  }

  write(data: string | Buffer): void {
    this.socket.write(typeof data === 'string' ? Buffer.from(data, 'latin1') : data);
  }

  /** Everything received and not yet consumed. */
  get pending(): Buffer {
    return this.received.subarray(this.cursor);
  }

  /** Wait for `n` more bytes and consume them (rejects on timeout or close with fewer). */
  async read(n: number, timeoutMs = 5000): Promise<Buffer> {
    const deadline = Date.now() + timeoutMs;
    while (this.received.length - this.cursor < n) {
      if (this.closed) throw new Error(`connection closed after ${this.pending.length}/${n} bytes: ${JSON.stringify(this.pending.toString('latin1'))}`);
      const left = deadline - Date.now();
      if (left <= 0 || !(await this.changed(left))) {
        throw new Error(`timed out after ${this.pending.length}/${n} bytes: ${JSON.stringify(this.pending.toString('latin1'))}`);
      }
    }
    const out = this.received.subarray(this.cursor, this.cursor + n);
    this.cursor += n;
    return out;
  }

  /** Read exactly `expected`'s length and return it as a latin1 string. */
  async readString(length: number, timeoutMs?: number): Promise<string> {
    return (await this.read(length, timeoutMs)).toString('latin1');
  }

  /** Send a command and return the reply bytes of the expected length. */
  async expect(expected: string, timeoutMs?: number): Promise<string> {
    return this.readString(Buffer.byteLength(expected, 'latin1'), timeoutMs);
  }

  /** Read until the server closes the connection; returns what was left unread. */
  async untilClosed(timeoutMs = 5000): Promise<string> {
    const deadline = Date.now() + timeoutMs;
    while (!this.closed) {
      const left = deadline - Date.now();
      if (left <= 0 || !(await this.changed(left))) throw new Error(`connection still open; unread: ${JSON.stringify(this.pending.toString('latin1'))}`);
    }
    const rest = this.pending.toString('latin1');
    this.cursor = this.received.length;
    return rest;
  }

  /** Collect output until `quietMs` pass without data (or the connection closes). */
  async drain(quietMs = 150, timeoutMs = 5000): Promise<{ output: string; closed: boolean }> {
    const deadline = Date.now() + timeoutMs;
    while (!this.closed && Date.now() < deadline) {
      if (!(await this.changed(quietMs))) break;
    }
    const output = this.pending.toString('latin1');
    this.cursor = this.received.length;
    return { output, closed: this.closed };
  }

  close(): void {
    this.socket.destroy();
  }
}

/** Encode a command as a RESP multibulk request. */
export function resp(...args: Array<string | Buffer>): Buffer {
  const parts: Buffer[] = [Buffer.from(`*${args.length}\r\n`)];
  for (const arg of args) {
    const b = typeof arg === 'string' ? Buffer.from(arg, 'latin1') : arg;
    parts.push(Buffer.from(`$${b.length}\r\n`), b, Buffer.from('\r\n'));
  }
  return Buffer.concat(parts);
}

/** A port that was free a moment ago. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const probe = net.createServer();
    probe.once('error', reject);
    probe.listen(0, '127.0.0.1', () => {
      const port = (probe.address() as net.AddressInfo).port;
      probe.close(() => resolve(port));
    });
  });
}

export const REDIS_SERVER = '/usr/bin/redis-server';

export function haveRealRedis(): boolean {
  return existsSync(REDIS_SERVER);
}

export interface RealRedis {
  port: number;
  stop(): Promise<void>;
}

/** Spawn redis-server (no persistence) on a free port and wait until it accepts connections. */
export async function startRealRedis(extraArgs: string[] = []): Promise<RealRedis> {
  const port = await freePort();
  const child: ChildProcess = spawn(REDIS_SERVER,
    ['--port', String(port), '--save', '', '--appendonly', 'no', '--bind', '127.0.0.1', ...extraArgs],
    { stdio: 'ignore' });
  const deadline = Date.now() + 10000;
  for (;;) {
    try {
      const probe = await RawClient.connect(port);
      probe.close();
      break;
    } catch {
      if (Date.now() > deadline || child.exitCode !== null) {
        child.kill('SIGKILL');
        throw new Error('redis-server did not start');
      }
      await new Promise((r) => setTimeout(r, 50));
    }
  }
  return {
    port,
    stop: () => new Promise<void>((resolve) => {
      if (child.exitCode !== null) return resolve();
      child.once('exit', () => resolve());
      child.kill('SIGTERM');
    }),
  };
}

/** Send `payload` on a fresh connection to each port and return what each answered (and whether it closed). */
export async function exchange(port: number, payload: string | Buffer, quietMs = 150): Promise<{ output: string; closed: boolean }> {
  const client = await RawClient.connect(port);
  try {
    client.write(payload);
    return await client.drain(quietMs);
  } finally {
    client.close();
  }
}
