// poolkv-server as a child process, like processes.ts's startPoolkv (same
// defaults: free loopback port, 64 MiB memfd pool, scratch working directory,
// `args` last), but with a start-up deadline of the caller's choosing: a
// server loading a large image from a peer over soft-RoCE in a TCG virtual
// machine needs far longer than 15 s to answer PONG.
import { spawn, type ChildProcess } from 'child_process';
import * as fs from 'fs';
import { freePort, POOLKV_MAIN, rawCommand, type RedisProcess } from './processes';
import { scratchDir } from './receiver';

const KEPT_OUTPUT_BYTES = 64 * 1024;
const live = new Set<ChildProcess>();
process.on('exit', () => {
  for (const child of live) {
    try {
      child.kill('SIGKILL');
    } catch {
      // gone
    }
  }
});

export async function startPoolkvWithin(args: string[], timeoutMs: number): Promise<RedisProcess> {
  if (!fs.existsSync(POOLKV_MAIN)) throw new Error(`${POOLKV_MAIN} is missing: build first (npx tsc -p .)`);
  const defaultPort = await freePort();
  const portOverride = args.lastIndexOf('--port');
  const port = portOverride >= 0 ? Number(args[portOverride + 1]) : defaultPort;
  const dir = scratchDir('poolkv-server-');
  const child = spawn(process.execPath, [POOLKV_MAIN, '--port', String(defaultPort), '--bind', '127.0.0.1', '--pool-size', '64mb', ...args],
    { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] });
  live.add(child);
  let output = '';
  const keep = (chunk: Buffer): void => {
    output += chunk.toString('utf8');
    if (output.length > KEPT_OUTPUT_BYTES) output = output.slice(-KEPT_OUTPUT_BYTES);
  };
  child.stdout!.on('data', keep);
  child.stderr!.on('data', keep);
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => {
    live.delete(child);
    resolve(code);
  }));
  const gone = (): boolean => child.exitCode !== null || child.signalCode !== null;
  const handle: RedisProcess = {
    port,
    process: child,
    output: () => output,
    async stop() {
      if (gone()) return child.exitCode;
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
      const code = await exited;
      clearTimeout(timer);
      return code;
    },
  };
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (gone()) throw new Error(`poolkv-server exited during start-up (code ${child.exitCode}, signal ${child.signalCode}):\n${output}`);
    try {
      if ((await rawCommand(port, ['PING'], { timeoutMs: 1000 })).toString('latin1') === '+PONG\r\n') return handle;
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) {
      await handle.stop();
      throw new Error(`poolkv-server did not answer PING on port ${port} within ${timeoutMs} ms:\n${output}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
}
