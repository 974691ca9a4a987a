// The option table: every directive poolkv accepts, with its type, default,
// bounds and whether CONFIG SET may change it. Parsing and error texts follow
// Redis 7.0's config.c (numericParseString, numericBoundaryCheck, the bool /
// enum / special setters) so messages match redis-server word for word.
import * as fs from 'fs';
import * as path from 'path';
import { parseHostPort } from '../transport/link';
import { MAX_TOKEN_BYTES, snapshotNameProblem } from '../transport/protocol';
import { memtoull, splitArgs, string2ll, toSigned64, yesnotoi } from './units';

/** A parsed option value as stored by Config. */
export type OptionValue = bigint | number | boolean | string | readonly string[];

/** What a setter sees besides the arguments. */
export interface ParseContext {
  /** True while reading the config file / command line, false for CONFIG SET. */
  readonly loading: boolean;
  /** The current value (e.g. relative `dir` lines resolve against the previous one). */
  readonly current: OptionValue;
}

export type ParseResult = { ok: true; value: OptionValue } | { ok: false; error: string };

export interface OptionSpec {
  readonly name: string;
  /** Textual default, read through the same parser as a config line. */
  readonly defaultText: string;
  /** CONFIG SET allowed (Redis's MODIFIABLE_CONFIG). */
  readonly mutable: boolean;
  /** Redis's PROTECTED_CONFIG: refused by CONFIG SET since enable-protected-configs is "no". */
  readonly protectedConfig?: boolean;
  /**
   * The change only takes effect when a running component applies it (re-listening
   * for `port`/`bind`). CONFIG SET is refused as immutable unless someone has
   * registered an onChange listener for it, so it never pretends to succeed.
   */
  readonly needsApplier?: boolean;
  /** Redis's MULTI_ARG_CONFIG: takes several arguments (bind, save). */
  readonly multiArg?: boolean;
  /** Parse the arguments of a config line / the pieces of a CONFIG SET value. */
  parse(args: readonly string[], ctx: ParseContext): ParseResult;
  /** CONFIG GET rendering. */
  render(value: OptionValue): string;
}

const ok = (value: OptionValue): ParseResult => ({ ok: true, value });
const fail = (error: string): ParseResult => ({ ok: false, error });

const INT_MAX = 2147483647n;
const UINT_MAX = 4294967295n;
const LONG_MAX = 9223372036854775807n;
const SIZE_MAX = 18446744073709551615n;

interface NumericOptions {
  min: bigint;
  max: bigint;
  /** C type is unsigned (uint, size_t, unsigned long long): bounds are checked as unsigned. */
  unsigned?: boolean;
  /** Accepts memtoull units (MEMORY_CONFIG). */
  memory?: boolean;
  mutable?: boolean;
  needsApplier?: boolean;
  /** Applied after a successful parse (hz is clamped to 1..500 like Redis). */
  normalize?: (value: bigint) => bigint;
}

function numericOption(name: string, defaultText: string, opts: NumericOptions): OptionSpec {
  return {
    name,
    defaultText,
    mutable: opts.mutable ?? true,
    needsApplier: opts.needsApplier,
    parse(args) {
      const text = args[0];
      let value: bigint | null;
      if (opts.memory) {
        const unsignedValue = memtoull(text);
        if (unsignedValue === null) return fail('argument must be a memory value');
        value = toSigned64(unsignedValue); // Redis keeps the result in a long long
      } else {
        value = string2ll(text);
        if (value === null) return fail("argument couldn't be parsed into an integer");
      }
      if (opts.unsigned) {
        const asUnsigned = BigInt.asUintN(64, value);
        if (asUnsigned < opts.min || asUnsigned > opts.max) {
          return fail(`argument must be between ${opts.min} and ${opts.max} inclusive`);
        }
        value = asUnsigned;
      } else if (value < opts.min || value > opts.max) {
        return fail(`argument must be between ${opts.min} and ${opts.max} inclusive`);
      }
      return ok(opts.normalize ? opts.normalize(value) : value);
    },
    // Memory options print unsigned (ull2string); all stored values are already in range.
    render: (value) => String(value),
  };
}

interface BoolOptions {
  mutable?: boolean;
  /** Extra check on the parsed value; returns an error text to refuse it. */
  refuse?: (value: boolean) => string | null;
}

function boolOption(name: string, defaultText: 'yes' | 'no', opts: BoolOptions = {}): OptionSpec {
  return {
    name,
    defaultText,
    mutable: opts.mutable ?? true,
    parse(args) {
      const value = yesnotoi(args[0]);
      if (value === null) return fail("argument must be 'yes' or 'no'");
      const refusal = opts.refuse?.(value);
      return refusal ? fail(refusal) : ok(value);
    },
    render: (value) => (value ? 'yes' : 'no'),
  };
}

function enumOption(name: string, defaultText: string, values: readonly string[]): OptionSpec {
  return {
    name,
    defaultText,
    mutable: true,
    parse(args) {
      const lower = args[0].toLowerCase();
      const found = values.find((v) => v === lower);
      if (found === undefined) return fail(`argument(s) must be one of the following: ${values.join(', ')}`);
      return ok(found);
    },
    render: (value) => String(value),
  };
}

interface StringOptions {
  mutable?: boolean;
  protectedConfig?: boolean;
  validate?: (value: string) => string | null;
}

function stringOption(name: string, defaultText: string, opts: StringOptions = {}): OptionSpec {
  return {
    name,
    defaultText,
    mutable: opts.mutable ?? true,
    protectedConfig: opts.protectedConfig,
    parse(args) {
      const refusal = opts.validate?.(args[0]);
      return refusal ? fail(refusal) : ok(args[0]);
    },
    render: (value) => String(value),
  };
}

/** Redis's CONFIG_BINDADDR_MAX. */
const MAX_BIND_ADDRESSES = 16;

const bindOption: OptionSpec = {
  name: 'bind',
  defaultText: '127.0.0.1 -::1',
  mutable: true,
  needsApplier: true,
  multiArg: true,
  parse(args) {
    if (args.length > MAX_BIND_ADDRESSES) return fail('Too many bind addresses specified.');
    // A single empty argument means "no addresses" (bind "").
    if (args.length === 1 && args[0] === '') return ok([]);
    return ok([...args]);
  },
  render: (value) => (value as readonly string[]).join(' '),
};

/**
 * save <seconds> <changes> [...]: validated exactly like Redis's setConfigSaveOption.
 * CONFIG SET replaces the rules; while loading (config file, command line) the
 * first `save` line replaces the defaults and later ones append, and `save ""`
 * clears them. Stored as the normalized numbers, rendered "900 1 300 10".
 */
const saveOption: OptionSpec = {
  name: 'save',
  defaultText: '""',
  mutable: true,
  multiArg: true,
  parse(args, ctx) {
    let params = args;
    let reset = false;
    if (params.length === 1 && params[0] === '') {
      params = [];
      reset = true;
    }
    if (params.length % 2 === 1) return fail('Invalid save parameters');
    const values: string[] = [];
    for (let j = 0; j < params.length; j++) {
      // strtoll(..., &eptr, 10) with eptr[0] == '\0': optional blanks and sign, digits, nothing after.
      // No digits at all leaves eptr at the start, which is only '\0' for "".
      const text = params[j];
      const n = text === '' ? 0 : /^[ \t\n\v\f\r]*[+-]?\d+$/.test(text) ? Number(text.trim()) : NaN;
      if (Number.isNaN(n) || (j % 2 === 0 && n < 1) || (j % 2 === 1 && n < 0)) return fail('Invalid save parameters');
      values.push(String(n));
    }
    // poolkv's default is empty, so "the first line replaces the defaults" is the same as appending.
    if (!ctx.loading || reset) return ok(values);
    const current = Array.isArray(ctx.current) ? (ctx.current as readonly string[]) : [];
    return ok([...current, ...values]);
  },
  render: (value) => (value as readonly string[]).join(' '),
};

/** Node's fs error codes → the strerror() texts Redis prints. */
export function strerror(err: unknown): string {
  const code = (err as NodeJS.ErrnoException).code;
  switch (code) {
    case 'ENOENT': return 'No such file or directory';
    case 'ENOTDIR': return 'Not a directory';
    case 'EACCES': return 'Permission denied';
    case 'ELOOP': return 'Too many levels of symbolic links';
    case 'ENAMETOOLONG': return 'File name too long';
    case 'EISDIR': return 'Is a directory';
    case 'EROFS': return 'Read-only file system';
    default: return (err as Error).message;
  }
}

/**
 * dir: Redis chdir()s to it while reading the config and reports getcwd(). poolkv
 * resolves it to a real absolute path (relative to the previous `dir`, as
 * successive chdir()s would) and start-up (main.ts) chdir()s there. Protected,
 * as in Redis 7.0, so CONFIG SET refuses it.
 */
const dirOption: OptionSpec = {
  name: 'dir',
  defaultText: './',
  mutable: true,
  protectedConfig: true,
  parse(args, ctx) {
    const base = typeof ctx.current === 'string' && ctx.current !== '' ? ctx.current : process.cwd();
    const target = path.resolve(base, args[0]);
    try {
      const stat = fs.statSync(target);
      if (!stat.isDirectory()) return fail('Not a directory');
      fs.accessSync(target, fs.constants.X_OK);
      return ok(fs.realpathSync(target));
    } catch (err) {
      return fail(strerror(err));
    }
  },
  render: (value) => String(value),
};

/** The pool file must live in a tmpfs so the dataset stays in RAM (and in /dev/shm for attach). */
function validatePoolPath(value: string): string | null {
  if (value === '') return null;
  const normalized = path.normalize(value);
  if (!path.isAbsolute(normalized) || !normalized.startsWith('/dev/shm/') || normalized === '/dev/shm/') {
    return 'pool-path must be empty (memfd) or a file under /dev/shm';
  }
  return null;
}

/** snapshot-peer: empty (none) or HOST:PORT ([v6]:PORT). */
function validateSnapshotPeer(value: string): string | null {
  if (value === '') return null;
  try {
    const { port } = parseHostPort(value, 'snapshot-peer');
    return port === 0 ? 'snapshot-peer: port 0 is not a valid peer port' : null;
  } catch (err) {
    return (err as Error).message;
  }
}

// The pool addresses memory in 8-byte units through 32-bit references and
// hands out 1 MiB pages (src/pool/memory.ts), hence these bounds.
const MIN_POOL_BYTES = 1024n * 1024n;
const MAX_POOL_BYTES = 2n ** 35n - 1024n * 1024n;

const slabGrowthFactorOption: OptionSpec = {
  name: 'slab-growth-factor',
  defaultText: '1.25',
  // Chunk sizes are laid out in the pool when it is formatted.
  mutable: false,
  parse(args) {
    const text = args[0];
    if (!/^\d+(\.\d+)?$/.test(text)) return fail('argument must be a decimal number');
    const value = Number(text);
    if (!(value > 1 && value <= 10)) return fail('argument must be greater than 1 and at most 10');
    return ok(value);
  },
  render: (value) => String(value),
};

const MAXMEMORY_POLICIES = [
  'volatile-lru', 'volatile-lfu', 'volatile-random', 'volatile-ttl',
  'allkeys-lru', 'allkeys-lfu', 'allkeys-random', 'noeviction',
] as const;

export const LOG_LEVELS = ['debug', 'verbose', 'notice', 'warning'] as const;
export type LogLevelName = (typeof LOG_LEVELS)[number];

/** Redis's CONFIG_MIN_HZ / CONFIG_MAX_HZ. */
const clampHz = (hz: bigint): bigint => (hz < 1n ? 1n : hz > 500n ? 500n : hz);

export const OPTION_SPECS: readonly OptionSpec[] = [
  numericOption('port', '6379', { min: 0n, max: 65535n, needsApplier: true }),
  bindOption,
  {
    name: 'requirepass',
    defaultText: '""',
    mutable: true,
    parse: (args) => ok(args[0]),
    render: (value) => String(value),
  },
  numericOption('databases', '16', { min: 1n, max: INT_MAX, mutable: false }),
  dirOption,
  stringOption('dbfilename', 'dump.pool', {
    protectedConfig: true,
    validate: (value) => (value.includes('/') ? "dbfilename can't be a path, just a filename" : null),
  }),
  numericOption('pool-size', '1gb', { min: MIN_POOL_BYTES, max: MAX_POOL_BYTES, unsigned: true, memory: true, mutable: false }),
  stringOption('pool-path', '""', { mutable: false, validate: validatePoolPath }),
  numericOption('maxmemory', '0', { min: 0n, max: SIZE_MAX, unsigned: true, memory: true }),
  enumOption('maxmemory-policy', 'noeviction', MAXMEMORY_POLICIES),
  numericOption('maxmemory-samples', '5', { min: 1n, max: INT_MAX }),
  enumOption('loglevel', 'notice', LOG_LEVELS),
  stringOption('logfile', '""', { mutable: false }),
  numericOption('proto-max-bulk-len', '512mb', { min: 1024n * 1024n, max: LONG_MAX, memory: true }),
  numericOption('client-query-buffer-limit', '1gb', { min: 1024n * 1024n, max: LONG_MAX, unsigned: true, memory: true }),
  numericOption('maxclients', '10000', { min: 1n, max: UINT_MAX, unsigned: true }),
  numericOption('timeout', '0', { min: 0n, max: INT_MAX, unsigned: true }),
  numericOption('tcp-keepalive', '300', { min: 0n, max: INT_MAX }),
  numericOption('hz', '10', { min: 0n, max: INT_MAX, normalize: clampHz }),
  saveOption,
  boolOption('appendonly', 'no', {
    refuse: (yes) => (yes ? 'appendonly yes is not supported: poolkv has no append-only file (the dataset lives in its shared-memory pool)' : null),
  }),
  boolOption('daemonize', 'no', {
    mutable: false,
    refuse: (yes) => (yes ? 'daemonize yes is not supported: poolkv runs in the foreground (use a supervisor such as systemd)' : null),
  }),
  boolOption('protected-mode', 'yes'),
  boolOption('stop-writes-on-bgsave-error', 'yes'),
  boolOption('lazyfree-lazy-user-flush', 'no'),
  slabGrowthFactorOption,
  numericOption('slab-min-chunk', '48', { min: 16n, max: 524288n, mutable: false }),
  boolOption('activerehashing', 'yes'),
  numericOption('active-expire-effort', '1', { min: 1n, max: 10n }),
  numericOption('lfu-log-factor', '10', { min: 0n, max: INT_MAX }),
  numericOption('lfu-decay-time', '1', { min: 0n, max: INT_MAX }),
  // Where SAVE / BGSAVE ship the pool image (docs/snapshot-protocol.md): the file in `dir`, or a poolkv-receiver.
  enumOption('snapshot-transport', 'file', ['file', 'tcp', 'rdma']),
  stringOption('snapshot-peer', '""', { validate: validateSnapshotPeer }),
  stringOption('snapshot-auth-token', '""', {
    validate: (value) => (Buffer.byteLength(value, 'utf8') > MAX_TOKEN_BYTES ? `snapshot-auth-token is longer than ${MAX_TOKEN_BYTES} bytes` : null),
  }),
  stringOption('snapshot-name', 'default', { validate: snapshotNameProblem }),
  boolOption('load-from-peer', 'no'),
];

const SPECS_BY_NAME: ReadonlyMap<string, OptionSpec> = new Map(OPTION_SPECS.map((s) => [s.name, s]));

/** Case-insensitive lookup, as Redis's config dict is. */
export function lookupOption(name: string): OptionSpec | undefined {
  return SPECS_BY_NAME.get(name.toLowerCase());
}

/** The default value of an option, parsed from its textual default. */
export function defaultValue(spec: OptionSpec): OptionValue {
  const args = splitArgs(spec.defaultText);
  if (args === null) throw new Error(`bad default for ${spec.name}`);
  const result = spec.parse(spec.multiArg ? args : [args[0] ?? ''], { loading: true, current: '' });
  if (!result.ok) throw new Error(`default of ${spec.name} is invalid: ${result.error}`);
  return result.value;
}
