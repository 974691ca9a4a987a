// redis.conf syntax and redis-server's command line, turned into the one
// config text Redis itself parses: the file's contents, then stdin (`-`), then
// a newline and the `--name value` options rendered as config lines. Line
// numbers in error messages therefore count exactly as redis-server's do
// (`--port x` alone is reported "at line 2").
import * as fs from 'fs';
import * as path from 'path';
import { stringMatch, hasGlobMeta } from '../util/glob';
import { quoteRepr, splitArgs, trimConfigLine } from './units';
import { strerror } from './options';

/** The Redis version poolkv speaks for; Redis prints it in the fatal banner. */
export const REDIS_COMPAT_VERSION = '7.0.15';

/**
 * A configuration problem that stops start-up (or a refused CONFIG SET). The
 * message is the complete text to show: the FATAL CONFIG FILE ERROR block for
 * start-up errors, the `ERR ...` reply for CONFIG SET.
 */
export class ConfigError extends Error {
  constructor(
    message: string,
    /** Redis reports this one as a warning log line rather than the FATAL block (unreadable config file). */
    readonly asLogLine = false,
  ) {
    super(message);
    this.name = 'ConfigError';
  }
}

/** The FATAL CONFIG FILE ERROR block, without the blank line redis-server prints before it. */
export function fatalConfigText(reason: string, at?: { lineNumber: number; line: string }): string {
  const parts = [`*** FATAL CONFIG FILE ERROR (Redis ${REDIS_COMPAT_VERSION}) ***`];
  if (at) parts.push(`Reading the configuration file, at line ${at.lineNumber}`, `>>> '${at.line}'`);
  parts.push(reason);
  return parts.join('\n');
}

export interface CommandLine {
  /** Absolute path of the config file given as the first argument, or null. */
  configFile: string | null;
  /** `-` as the first or last argument: read config from stdin after the file. */
  readStdin: boolean;
  /** The `--name value` options as config lines (Redis's `options` sds), or null when there were no arguments. */
  optionsText: string | null;
}

/**
 * redis-server's main() argument handling: an optional config file first, then
 * `--name value...` options; a value is quoted with sdscatrepr so it survives
 * the config line splitter. `--name` followed by another `--x` takes `--x` as
 * its value unless it is `--save` (which then means save "").
 */
export function parseCommandLine(args: readonly string[]): CommandLine {
  if (args.length === 0) return { configFile: null, readStdin: false, optionsText: null };
  let configFile: string | null = null;
  let j = 0;
  if (!args[0].startsWith('-')) {
    configFile = path.resolve(args[0]);
    j = 1;
  }
  let readStdin = false;
  let options = '';
  let lastOptionHasValue = true;
  for (; j < args.length; j++) {
    const arg = args[j];
    if (arg === '-' && (j === 0 || j === args.length - 1)) {
      readStdin = true;
    } else if (lastOptionHasValue && arg.startsWith('--')) {
      if (options.length > 0) options += '\n';
      options += arg.slice(2) + ' ';
      const tokens = splitArgs(arg);
      if (tokens !== null && tokens.length === 1) {
        // A bare option name: the next argument is its value, even if it starts with "--".
        lastOptionHasValue = false;
        const next = args[j + 1];
        if (arg.toLowerCase() === '--save' && (next === undefined || next.startsWith('--'))) {
          options += '""';
          lastOptionHasValue = true;
        }
      } else {
        lastOptionHasValue = true; // "--port 6380" as one argument
      }
    } else {
      options += quoteRepr(arg) + ' ';
      lastOptionHasValue = true;
    }
  }
  return { configFile, readStdin, optionsText: options };
}

/** Read a whole config file; Redis exits with a log line when it cannot. */
export function readConfigFile(file: string): string {
  try {
    return fs.readFileSync(file, 'utf8');
  } catch (err) {
    throw new ConfigError(`Fatal error, can't open config file '${file}': ${strerror(err)}`, true);
  }
}

/** Read the config text from standard input (`poolkv-server -`). */
export function readConfigFromStdin(): string {
  try {
    return fs.readFileSync(0, 'utf8');
  } catch (err) {
    throw new ConfigError(`Fatal error, can't read config from stdin: ${strerror(err)}`, true);
  }
}

/**
 * The files an `include` line names. Without wildcards that is the file
 * itself; with wildcards (as Redis 7 allows) the matching files in sorted order,
 * possibly none, hidden files excluded as glob(3) does. Wildcards are supported
 * in the file name part only.
 */
export function expandInclude(pattern: string, baseDir: string): string[] {
  const resolved = path.resolve(baseDir, pattern);
  if (!hasGlobMeta(pattern)) return [resolved];
  const dir = path.dirname(resolved);
  const namePattern = path.basename(resolved);
  if (hasGlobMeta(dir)) {
    throw new ConfigError(fatalConfigText(`include: wildcards are only supported in the file name, not in directories ('${pattern}')`));
  }
  let names: string[];
  try {
    names = fs.readdirSync(dir);
  } catch {
    return []; // glob(3) finding nothing: Redis silently goes on
  }
  return names
    .filter((name) => (!name.startsWith('.') || namePattern.startsWith('.')) && stringMatch(namePattern, name))
    .sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b)))
    .map((name) => path.join(dir, name))
    .filter((file) => {
      try {
        return fs.statSync(file).isFile();
      } catch {
        return false;
      }
    });
}

/** One directive of a config text, ready to apply. */
export interface ConfigLine {
  /** 1-based line number within its text. */
  lineNumber: number;
  /** The line as Redis shows it in errors (trimmed). */
  line: string;
  /** Split arguments; the directive name is lowercased like Redis's sdstolower(argv[0]). */
  argv: string[];
}

/**
 * Split a config text into directives as loadServerConfigFromString does:
 * lines on "\n", trimmed, `#` comments and blank lines skipped, arguments split
 * like sdssplitargs. Unbalanced quotes throw the FATAL block.
 */
export function* configLines(text: string): Generator<ConfigLine> {
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const line = trimConfigLine(lines[i]);
    if (line === '' || line.startsWith('#')) continue;
    const argv = splitArgs(line);
    if (argv === null) {
      throw new ConfigError(fatalConfigText('Unbalanced quotes in configuration line', { lineNumber: i + 1, line }));
    }
    if (argv.length === 0) continue;
    argv[0] = argv[0].toLowerCase();
    yield { lineNumber: i + 1, line, argv };
  }
}
