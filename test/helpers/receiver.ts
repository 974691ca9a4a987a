// A real poolkv-receiver (dist/src/receiver/cli.js) as a child process, for
// the peer snapshot tests: started on a given address with a scratch DIR,
// its log kept, killed when the test process exits.
import { spawn, type ChildProcess } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { freePort, REPO_ROOT } from './processes';

export const RECEIVER_MAIN = path.join(REPO_ROOT, 'dist/src/receiver/cli.js');
const START_TIMEOUT_MS = 15000;
const KEPT_OUTPUT_BYTES = 256 * 1024;

const live = new Set<ChildProcess>();
const dirs = new Set<string>();
process.on('exit', () => {
  for (const child of live) {
    try {
      child.kill('SIGKILL');
    } catch {
      // gone
    }
  }
  for (const dir of dirs) fs.rmSync(dir, { recursive: true, force: true });
});

export interface ReceiverProcess {
  host: string;
  port: number;
  dir: string;
  /** "host:port" for snapshot-peer. */
  address: string;
  process: ChildProcess;
  output(): string;
  /** A position in the log; waitForLog(..., from) then only looks at what came after it. */
  mark(): number;
  /** Resolves once `pattern` appears in the log (after position `from`), or rejects after `timeoutMs`. */
  waitForLog(pattern: RegExp | string, timeoutMs?: number, from?: number): Promise<void>;
  /** SIGTERM, then SIGKILL; resolves with the exit code. */
  stop(): Promise<number | null>;
  /** SIGKILL now; resolves once it is gone. */
  kill(): Promise<void>;
}

export interface ReceiverStartOptions {
  token: string;
  /** Pass the token through --auth-token-file (this file, which must hold `token`) instead of --auth-token. */
  tokenFile?: string;
  /** tcp, rdma or rdma,tcp. */
  transport?: string;
  host?: string;
  port?: number;
  /** Images directory (a fresh scratch one by default; reuse one to test restarts). */
  dir?: string;
  keep?: number;
  extraArgs?: string[];
  /** Added to the receiver's environment. */
  env?: NodeJS.ProcessEnv;
}

export function scratchDir(prefix: string): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  dirs.add(dir);
  return dir;
}

function formatAddress(host: string, port: number): string {
  return host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`;
}

/** Spawn the receiver CLI with raw arguments and collect what it prints until it exits. */
export function runReceiverCli(args: string[], timeoutMs = 10000): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [RECEIVER_MAIN, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    live.add(child);
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c: Buffer) => { stdout += c.toString('utf8'); });
    child.stderr.on('data', (c: Buffer) => { stderr += c.toString('utf8'); });
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`poolkv-receiver ${args.join(' ')} did not exit within ${timeoutMs} ms:\n${stdout}${stderr}`));
    }, timeoutMs);
    child.once('exit', (code) => {
      clearTimeout(timer);
      live.delete(child);
      // Let the pipes drain.
      setImmediate(() => resolve({ code, stdout, stderr }));
    });
  });
}

export async function startReceiver(options: ReceiverStartOptions): Promise<ReceiverProcess> {
  if (!fs.existsSync(RECEIVER_MAIN)) throw new Error(`${RECEIVER_MAIN} is missing: build first (npx tsc -p .)`);
  const host = options.host ?? '127.0.0.1';
  const port = options.port ?? await freePort();
  const dir = options.dir ?? scratchDir('poolkv-receiver-');
  const args = [
    RECEIVER_MAIN, '--listen', formatAddress(host, port), '--dir', dir,
    ...(options.tokenFile !== undefined ? ['--auth-token-file', options.tokenFile] : ['--auth-token', options.token]),
    '--transport', options.transport ?? 'tcp', '--keep', String(options.keep ?? 2), '--loglevel', 'verbose',
    ...(options.extraArgs ?? []),
  ];
  const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...options.env } });
  live.add(child);
  let output = '';
  let dropped = 0;
  const keep = (chunk: Buffer): void => {
    output += chunk.toString('utf8');
    if (output.length > KEPT_OUTPUT_BYTES) {
      dropped += output.length - KEPT_OUTPUT_BYTES;
      output = output.slice(-KEPT_OUTPUT_BYTES);
    }
  };
  child.stdout!.on('data', keep);
  child.stderr!.on('data', keep);
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => {
    live.delete(child);
    resolve(code);
  }));
  const gone = (): boolean => child.exitCode !== null || child.signalCode !== null;

  const handle: ReceiverProcess = {
    host, port, dir, address: formatAddress(host, port), process: child,
    output: () => output,
    mark: () => dropped + output.length,
    async waitForLog(pattern, timeoutMs = 20000, from = 0) {
      const deadline = Date.now() + timeoutMs;
      const matches = (): boolean => {
        const text = output.slice(Math.max(0, from - dropped));
        return typeof pattern === 'string' ? text.includes(pattern) : pattern.test(text);
      };
      while (!matches()) {
        if (Date.now() > deadline) throw new Error(`receiver log never showed ${String(pattern)}:\n${output}`);
        await new Promise((r) => setTimeout(r, 20));
      }
    },
    async stop() {
      if (gone()) return child.exitCode;
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
      const code = await exited;
      clearTimeout(timer);
      return code;
    },
    async kill() {
      if (gone()) return;
      child.kill('SIGKILL');
      await exited;
    },
  };
  const deadline = Date.now() + START_TIMEOUT_MS;
  while (!output.includes('Ready to accept connections')) {
    if (gone()) throw new Error(`poolkv-receiver exited during start-up (code ${child.exitCode}):\n${output}`);
    if (Date.now() > deadline) {
      await handle.kill();
      throw new Error(`poolkv-receiver did not become ready within ${START_TIMEOUT_MS} ms:\n${output}`);
    }
    await new Promise((r) => setTimeout(r, 20));
  }
  return handle;
}
