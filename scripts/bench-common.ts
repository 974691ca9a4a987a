// Pieces shared by the benchmark scripts: command-line numbers, free loopback
// ports, waiting for a server's PONG, and rewriting one section of docs/benchmarks.md.
import * as fs from 'fs';
import * as net from 'net';
import * as path from 'path';

export const ROOT = path.resolve(__dirname, '..', '..');

/** `--name N` from the command line, or the fallback. */
export function numberArg(name: string, fallback: number): number {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? Number(process.argv[i + 1]) : fallback;
}

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const port = (srv.address() as net.AddressInfo).port;
      srv.close(() => resolve(port));
    });
  });
}

/** Resolve once the server on `port` answers an inline PING with +PONG. */
export async function waitForPing(port: number, timeoutMs = 30000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const ok = await new Promise<boolean>((resolve) => {
      const s = net.connect(port, '127.0.0.1');
      s.once('error', () => resolve(false));
      s.once('data', (d) => { s.destroy(); resolve(d.toString().startsWith('+PONG')); });
      s.write('PING\r\n');
    });
    if (ok) return;
    await new Promise((r) => setTimeout(r, 20));
  }
  throw new Error(`server on ${port} did not answer PING within ${timeoutMs} ms`);
}

/** Replace the section starting with `heading` in docs/benchmarks.md (or append it). */
export function writeSection(section: string, heading: string, keepFrom?: string): void {
  const file = path.join(ROOT, 'docs/benchmarks.md');
  let text = fs.existsSync(file) ? fs.readFileSync(file, 'utf8') : '# Benchmarks\n\nAll figures come from scripts under scripts/; each section names the command that produced it.\n\n';
  const start = text.indexOf(heading);
  if (start >= 0) {
    const next = text.indexOf('\n## ', start + heading.length);
    const end = next >= 0 ? next + 1 : text.length;
    // Hand-written notes that follow the generated part (from `keepFrom` on) stay.
    const kept = keepFrom !== undefined ? text.slice(start, end).indexOf(keepFrom) : -1;
    const notes = kept >= 0 ? text.slice(start + kept, end) : '';
    text = text.slice(0, start) + section + (notes !== '' ? notes : '') + text.slice(end);
  } else {
    text += '\n' + section;
  }
  fs.writeFileSync(file, text);
}
