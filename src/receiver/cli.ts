#!/usr/bin/env node
// poolkv-receiver: stores the pool images poolkv servers ship to it (SAVE,
// BGSAVE) and serves them back (load-from-peer), over TCP or RDMA.
//
//   poolkv-receiver --listen ADDR:PORT --dir DIR (--auth-token TOKEN | --auth-token-file FILE)
//                   [--transport rdma|tcp|rdma,tcp] [--keep N] [--loglevel LEVEL]
import * as fs from 'fs';
import * as path from 'path';
import { LOG_LEVELS } from '../config/options';
import { Logger, isLogLevel } from '../server/log';
import { parseHostPort, type LinkKind, type LinkListener } from '../transport/link';
import { isLinkKind } from '../transport/links';
import { MAX_TOKEN_BYTES } from '../transport/protocol';
import { DirectoryLockedError, ReceiverService } from './service';

const USAGE =
  'Usage: poolkv-receiver --listen ADDR:PORT --dir DIR (--auth-token TOKEN | --auth-token-file FILE) [options]\n' +
  '\n' +
  '  --listen ADDR:PORT     address to listen on (e.g. 0.0.0.0:7070, [::1]:7070)\n' +
  '  --dir DIR              directory holding the images (DIR/<snapshot-name>/gen-N.pool); must exist\n' +
  '  --auth-token TOKEN     servers must present this token (their snapshot-auth-token)\n' +
  '  --auth-token-file FILE the token from a file instead (one trailing newline ignored), so it does\n' +
  '                         not show in ps or /proc/<pid>/cmdline\n' +
  '  --transport rdma|tcp   transport(s) to listen on, e.g. rdma,tcp for both (default tcp)\n' +
  '  --keep N               image generations kept per snapshot name (default 2)\n' +
  `  --loglevel LEVEL       ${LOG_LEVELS.join(', ')} (default notice)\n` +
  '  -h, --help             show this help\n' +
  '\n' +
  'Example:\n' +
  '  poolkv-receiver --listen 0.0.0.0:7070 --dir /var/lib/poolkv-receiver --auth-token s3cret --keep 3\n';

export interface ReceiverArgs {
  host: string;
  port: number;
  dir: string;
  token: string;
  transports: LinkKind[];
  keep: number;
  loglevel: string;
}

export class UsageError extends Error {}

/** Parse the command line; throws UsageError with the message to print. */
export function parseReceiverArgs(argv: readonly string[]): ReceiverArgs | 'help' {
  const values = new Map<string, string>();
  const known = new Set(['--listen', '--dir', '--auth-token', '--auth-token-file', '--transport', '--keep', '--loglevel']);
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg === '-h' || arg === '--help') return 'help';
    const eq = arg.indexOf('=');
    const name = eq > 0 && arg.startsWith('--') ? arg.slice(0, eq) : arg;
    if (!known.has(name)) throw new UsageError(`unknown option ${JSON.stringify(arg)}`);
    let value: string;
    if (eq > 0 && arg.startsWith('--')) value = arg.slice(eq + 1);
    else {
      if (i + 1 >= argv.length) throw new UsageError(`${name} needs a value`);
      value = argv[++i]!;
    }
    if (values.has(name)) throw new UsageError(`${name} given twice`);
    values.set(name, value);
  }
  for (const required of ['--listen', '--dir']) {
    if (!values.has(required)) throw new UsageError(`${required} is required`);
  }
  if (values.has('--auth-token') && values.has('--auth-token-file')) {
    throw new UsageError('give --auth-token or --auth-token-file, not both');
  }
  if (!values.has('--auth-token') && !values.has('--auth-token-file')) {
    throw new UsageError('--auth-token is required (or --auth-token-file)');
  }
  let address: { host: string; port: number };
  try {
    address = parseHostPort(values.get('--listen')!, '--listen');
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
  const dir = path.resolve(values.get('--dir')!);
  let stat: fs.Stats;
  try {
    stat = fs.statSync(dir);
  } catch {
    throw new UsageError(`--dir ${dir}: no such directory`);
  }
  if (!stat.isDirectory()) throw new UsageError(`--dir ${dir}: not a directory`);
  try {
    fs.accessSync(dir, fs.constants.W_OK | fs.constants.X_OK);
  } catch {
    throw new UsageError(`--dir ${dir}: not writable`);
  }
  const tokenFile = values.get('--auth-token-file');
  const tokenOption = tokenFile === undefined ? '--auth-token' : `the token in --auth-token-file ${tokenFile}`;
  const token = tokenFile === undefined ? values.get('--auth-token')! : readTokenFile(tokenFile);
  if (token === '') throw new UsageError(`${tokenOption} must not be empty`);
  if (Buffer.byteLength(token, 'utf8') > MAX_TOKEN_BYTES) throw new UsageError(`${tokenOption} is longer than ${MAX_TOKEN_BYTES} bytes`);
  const transportText = values.get('--transport') ?? 'tcp';
  const transports = transportText.split(',');
  if (!transports.every(isLinkKind) || new Set(transports).size !== transports.length) {
    throw new UsageError(`--transport must be rdma, tcp or rdma,tcp, got ${JSON.stringify(transportText)}`);
  }
  const keepText = values.get('--keep') ?? '2';
  const keep = Number(keepText);
  if (!/^\d+$/.test(keepText) || keep < 1 || keep > 1000) throw new UsageError(`--keep must be an integer from 1 to 1000, got ${JSON.stringify(keepText)}`);
  const loglevel = values.get('--loglevel') ?? 'notice';
  if (!isLogLevel(loglevel)) throw new UsageError(`--loglevel must be one of ${LOG_LEVELS.join(', ')}`);
  return { host: address.host, port: address.port, dir: fs.realpathSync(dir), token, transports: transports as LinkKind[], keep, loglevel };
}

/** The token in `file`, without one trailing newline (as `echo s3cret > file` writes it). */
function readTokenFile(file: string): string {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (err) {
    throw new UsageError(`--auth-token-file ${file}: ${(err as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : (err as Error).message}`);
  }
  return text.replace(/\r?\n$/, '');
}

async function main(argv: string[]): Promise<void> {
  let args: ReceiverArgs | 'help';
  try {
    args = parseReceiverArgs(argv);
  } catch (err) {
    if (!(err instanceof UsageError)) throw err;
    process.stderr.write(`poolkv-receiver: ${err.message}\n\n${USAGE}`);
    process.exit(1);
  }
  if (args === 'help') {
    process.stdout.write(USAGE);
    process.exit(0);
  }
  const log = new Logger({ role: 'R', level: isLogLevel(args.loglevel) ? args.loglevel : 'notice' });
  log.notice(`poolkv-receiver starting, pid=${process.pid}, node=${process.version}`);
  const service = new ReceiverService({ ...args, log });
  // A bug reached from the network must not take every name's images offline.
  process.on('uncaughtException', (err) => log.warning(`Internal error (the receiver keeps serving): ${err.stack ?? err.message}`));
  process.on('unhandledRejection', (err) => log.warning(`Internal error (the receiver keeps serving): ${err instanceof Error ? err.stack ?? err.message : String(err)}`));
  let listeners: LinkListener[];
  try {
    listeners = await service.start();
  } catch (err) {
    if (err instanceof DirectoryLockedError) log.warning(`Cannot start: ${err.message}`);
    else log.warning(`Could not listen on ${args.transports.join(' and ')} ${args.host}:${args.port}: ${(err as Error).message}`);
    process.exit(1);
  }
  const where = listeners.map((listener) => `${listener.kind} ${listener.address}`).join(' and ');
  log.notice(`Listening on ${where}, images in ${args.dir}, keeping ${args.keep} generation(s) per name`);
  log.notice('Ready to accept connections');
  let stopping = false;
  const stop = (signal: string): void => {
    if (stopping) process.exit(1);
    stopping = true;
    log.warning(`Received ${signal}, shutting down`);
    service.close().finally(() => {
      log.notice('poolkv-receiver is now ready to exit, bye bye...');
      process.exit(0);
    });
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
}

if (require.main === module) {
  main(process.argv.slice(2)).catch((err: unknown) => {
    process.stderr.write(`poolkv-receiver: ${err instanceof Error ? err.stack ?? err.message : String(err)}\n`);
    process.exit(1);
  });
}
