// The server log, in redis-server's line format:
//   PID:ROLE DD Mon YYYY HH:MM:SS.mmm MARK message
// where ROLE is M (the server) or C (start-up, before the server exists, as
// Redis prints while reading its config), and MARK is the level: . debug,
// - verbose, * notice, # warning. Lines below `loglevel` are dropped. With a
// `logfile` every line is appended to it (opened per line like Redis, so a
// rotated file is simply recreated); otherwise lines go to stdout.
// Writes are synchronous so the last lines before an exit are never lost.
import * as fs from 'fs';
import * as path from 'path';
import type { Config } from '../config/config';
import { LOG_LEVELS, type LogLevelName } from '../config/options';

export type LogLevel = LogLevelName;

const LEVEL_RANK: Record<LogLevel, number> = { debug: 0, verbose: 1, notice: 2, warning: 3 };
const LEVEL_MARK: Record<LogLevel, string> = { debug: '.', verbose: '-', notice: '*', warning: '#' };
const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];

export interface LoggerOptions {
  level?: LogLevel;
  /** Append to this file; empty or absent = stdout. */
  file?: string;
  /** Receive finished lines instead of writing them anywhere (tests, embedding). */
  sink?: (line: string) => void;
  /** 'M' for the running server, 'C' for start-up lines. */
  role?: string;
}

const pad2 = (n: number): string => (n < 10 ? '0' : '') + n;

/** "21 Nov 2026 01:02:03.456" in local time, as strftime("%d %b %Y %H:%M:%S.") + "%03d" prints it. */
export function formatLogTimestamp(date: Date): string {
  const ms = date.getMilliseconds();
  return `${pad2(date.getDate())} ${MONTHS[date.getMonth()]} ${date.getFullYear()} ` +
    `${pad2(date.getHours())}:${pad2(date.getMinutes())}:${pad2(date.getSeconds())}.${ms < 10 ? '00' : ms < 100 ? '0' : ''}${ms}`;
}

export function isLogLevel(value: string): value is LogLevel {
  return (LOG_LEVELS as readonly string[]).includes(value);
}

export class Logger {
  private rank: number;
  private levelName: LogLevel;
  private file: string;
  private readonly sink: ((line: string) => void) | undefined;
  role: string;

  constructor(options: LoggerOptions = {}) {
    this.levelName = options.level ?? 'notice';
    this.rank = LEVEL_RANK[this.levelName];
    this.file = options.file ?? '';
    this.sink = options.sink;
    this.role = options.role ?? 'M';
  }

  /** A logger following `loglevel` and `logfile`, now and after CONFIG SET. Relative files resolve against the cwd (= `dir`). */
  static fromConfig(config: Config, options: Omit<LoggerOptions, 'level' | 'file'> = {}): Logger {
    const level = config.getString('loglevel');
    const logger = new Logger({
      ...options,
      level: isLogLevel(level) ? level : 'notice',
      file: config.getString('logfile'),
    });
    config.onChange('loglevel', (value) => {
      if (isLogLevel(value)) logger.setLevel(value);
    });
    config.onChange('logfile', (value) => logger.setFile(value));
    return logger;
  }

  get level(): LogLevel {
    return this.levelName;
  }

  setLevel(level: LogLevel): void {
    this.levelName = level;
    this.rank = LEVEL_RANK[level];
  }

  /** Switch to another log file ('' = stdout); it must be writable. */
  setFile(file: string): void {
    if (file !== '') fs.closeSync(fs.openSync(path.resolve(file), 'a'));
    this.file = file;
  }

  get logFile(): string {
    return this.file;
  }

  /** Whether a message at `level` would be written (skip building expensive messages otherwise). */
  enabled(level: LogLevel): boolean {
    return LEVEL_RANK[level] >= this.rank;
  }

  debug(message: string): void {
    if (this.rank <= 0) this.write('debug', message);
  }

  verbose(message: string): void {
    if (this.rank <= 1) this.write('verbose', message);
  }

  notice(message: string): void {
    if (this.rank <= 2) this.write('notice', message);
  }

  warning(message: string): void {
    this.write('warning', message);
  }

  log(level: LogLevel, message: string): void {
    if (this.enabled(level)) this.write(level, message);
  }

  /** A line from a signal handler, formatted as Redis's serverLogFromHandler: "PID:signal-handler (unix-seconds) message". */
  fromSignalHandler(message: string): void {
    this.emit(`${process.pid}:signal-handler (${Math.floor(Date.now() / 1000)}) ${message}\n`);
  }

  /** Text written as is, without the line prefix (Redis's LL_RAW, used for the start-up logo). */
  raw(level: LogLevel, text: string): void {
    if (this.enabled(level)) this.emit(text);
  }

  private write(level: LogLevel, message: string): void {
    this.emit(`${process.pid}:${this.role} ${formatLogTimestamp(new Date())} ${LEVEL_MARK[level]} ${message}\n`);
  }

  private emit(text: string): void {
    if (this.sink) {
      this.sink(text);
      return;
    }
    if (this.file !== '') {
      try {
        fs.appendFileSync(this.file, text);
      } catch {
        // Like Redis: a log file that cannot be opened just loses the line.
      }
      return;
    }
    writeToStdout(text);
  }
}

/** Synchronous write to fd 1; if stdout is a non-blocking pipe that is full, fall back to the stream. */
function writeToStdout(text: string): void {
  const bytes = Buffer.from(text, 'utf8');
  let offset = 0;
  try {
    while (offset < bytes.length) offset += fs.writeSync(1, bytes, offset);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'EAGAIN') process.stdout.write(bytes.subarray(offset));
    // EPIPE and the like: nobody is reading, nothing to do.
  }
}
