// The server's configuration: loaded once from redis.conf-style text and the
// command line (Config.load), then read by every layer and changed by CONFIG
// SET (set / setMany), whose all-or-nothing semantics and error replies follow
// Redis 7.0's configSetCommand. Components that must react to a change (the
// logger, maxmemory, the listener) subscribe with onChange.
import * as fs from 'fs';
import * as path from 'path';
import { compileGlob, hasGlobMeta } from '../util/glob';
import {
  ConfigError, configLines, expandInclude, fatalConfigText, parseCommandLine, readConfigFile,
  readConfigFromStdin,
} from './conf-file';
import { defaultValue, lookupOption, OPTION_SPECS, OptionSpec, OptionValue, strerror } from './options';
import { splitArgs, splitOnSpaces } from './units';

export { ConfigError } from './conf-file';

/** Called after a successful change with the new CONFIG GET rendering. Throwing rejects the change. */
export type ConfigListener = (value: string, name: string) => void;

/** Redis has no include depth limit (it recurses until it crashes); poolkv stops loops early. */
const MAX_INCLUDE_DEPTH = 16;

export class Config {
  private readonly values = new Map<string, OptionValue>();
  private readonly listeners = new Map<string, ConfigListener[]>();

  /** A configuration holding every default. */
  constructor() {
    for (const spec of OPTION_SPECS) this.values.set(spec.name, defaultValue(spec));
  }

  /**
   * redis-server's start-up: `[config-file] [--name value ...]` (process.argv
   * without node and the script). Throws ConfigError with the text to print.
   */
  static load(argv: string[]): { config: Config; configFile: string } {
    const commandLine = parseCommandLine(argv);
    const config = new Config();
    if (commandLine.optionsText === null) return { config, configFile: '' };
    let text = '';
    if (commandLine.configFile !== null) text += readConfigFile(commandLine.configFile);
    if (commandLine.readStdin) text += readConfigFromStdin();
    text += '\n' + commandLine.optionsText;
    config.applyText(text, 0);
    config.checkAfterLoad();
    return { config, configFile: commandLine.configFile ?? '' };
  }

  /** Parse a config text (a file's contents) on top of the current values. */
  static fromText(text: string): Config {
    const config = new Config();
    config.applyText(text, 0);
    config.checkAfterLoad();
    return config;
  }

  private applyText(text: string, includeDepth: number): void {
    for (const { lineNumber, line, argv } of configLines(text)) {
      const at = { lineNumber, line };
      const spec = lookupOption(argv[0]);
      if (spec) {
        let args = argv.slice(1);
        if (!spec.multiArg && args.length !== 1) throw new ConfigError(fatalConfigText('wrong number of arguments', at));
        // A multi-argument option given as one non-empty argument ("--bind '1.2.3.4 ::1'") is split again.
        if (spec.multiArg && args.length === 1 && args[0] !== '') {
          args = splitArgs(args[0]) ?? [];
        }
        const result = spec.parse(args, { loading: true, current: this.values.get(spec.name) as OptionValue });
        if (!result.ok) throw new ConfigError(fatalConfigText(result.error, at));
        this.values.set(spec.name, result.value);
      } else if (argv[0] === 'include' && argv.length === 2) {
        if (includeDepth >= MAX_INCLUDE_DEPTH) {
          throw new ConfigError(fatalConfigText(`include nesting deeper than ${MAX_INCLUDE_DEPTH} levels (an include loop?)`, at));
        }
        // Relative to `dir`: redis-server has chdir()ed there by the time it reads the include.
        for (const file of expandInclude(argv[1], this.getString('dir'))) this.applyText(readConfigFile(file), includeDepth + 1);
      } else {
        throw new ConfigError(fatalConfigText('Bad directive or wrong number of arguments', at));
      }
    }
  }

  /** Redis's checks once everything is read: the log file must be writable. */
  private checkAfterLoad(): void {
    const logfile = this.getString('logfile');
    if (logfile === '') return;
    try {
      fs.closeSync(fs.openSync(path.resolve(this.getString('dir'), logfile), 'a'));
    } catch (err) {
      throw new ConfigError(fatalConfigText(`Can't open the log file: ${strerror(err)}`));
    }
  }

  private spec(name: string): OptionSpec {
    const spec = lookupOption(name);
    if (!spec) throw new Error(`unknown config option '${name}'`);
    return spec;
  }

  /** CONFIG GET rendering of an option (sizes as byte counts, booleans yes/no), or undefined if unknown. */
  get(name: string): string | undefined {
    const spec = lookupOption(name);
    return spec ? spec.render(this.values.get(spec.name) as OptionValue) : undefined;
  }

  /** The value of a string or enum option (for others, its CONFIG GET rendering). */
  getString(name: string): string {
    const spec = this.spec(name);
    return spec.render(this.values.get(spec.name) as OptionValue);
  }

  /** A numeric option as a JS number (maxmemory beyond 2^53 loses precision but stays "huge"). */
  getNumber(name: string): number {
    const value = this.values.get(this.spec(name).name);
    if (typeof value === 'bigint' || typeof value === 'number') return Number(value);
    throw new Error(`config option '${name}' is not numeric`);
  }

  getBool(name: string): boolean {
    const value = this.values.get(this.spec(name).name);
    if (typeof value === 'boolean') return value;
    throw new Error(`config option '${name}' is not a yes/no option`);
  }

  /** The arguments of a multi-argument option (bind addresses). */
  getList(name: string): readonly string[] {
    const value = this.values.get(this.spec(name).name);
    if (Array.isArray(value)) return value as readonly string[];
    throw new Error(`config option '${name}' is not a list`);
  }

  /** CONFIG SET name value. */
  set(name: string, value: string): void {
    this.setMany([[name, value]]);
  }

  /**
   * CONFIG SET name value [name value ...], atomically: every name is checked
   * first (unknown, immutable, protected, duplicate), then all values are
   * parsed and stored, then listeners run; any failure restores every old value.
   * Throws ConfigError whose message is Redis's exact error reply.
   */
  setMany(pairs: ReadonlyArray<readonly [string, string]>): void {
    const specs: OptionSpec[] = [];
    let problem: { arg: string; reason: string } | null = null;
    for (const [name] of pairs) {
      const spec = lookupOption(name);
      // The first problem found wins, whatever it is (Redis keeps scanning only to redact secrets).
      if (problem) continue;
      if (!spec) throw new ConfigError(`ERR Unknown option or number of arguments for CONFIG SET - '${name}'`);
      const immutable = !spec.mutable || (spec.needsApplier === true && !this.listeners.get(spec.name)?.length);
      if (immutable || spec.protectedConfig) {
        problem = { arg: name, reason: immutable ? "can't set immutable config" : "can't set protected config" };
      } else if (specs.includes(spec)) {
        problem = { arg: name, reason: 'duplicate parameter' };
      }
      specs.push(spec);
    }
    if (problem) throw new ConfigError(setFailed(problem.arg, problem.reason));

    const oldValues = specs.map((spec) => this.values.get(spec.name) as OptionValue);
    const restore = (): void => specs.forEach((spec, i) => this.values.set(spec.name, oldValues[i]));
    const changed: OptionSpec[] = [];
    for (let i = 0; i < specs.length; i++) {
      const spec = specs[i];
      const args = spec.multiArg ? splitOnSpaces(pairs[i][1]) : [pairs[i][1]];
      const result = spec.parse(args, { loading: false, current: oldValues[i] });
      if (!result.ok) {
        restore();
        throw new ConfigError(setFailed(spec.name, result.error));
      }
      this.values.set(spec.name, result.value);
      if (spec.render(result.value) !== spec.render(oldValues[i])) changed.push(spec);
    }

    // Apply: listeners may refuse (e.g. the port cannot be bound); then everything is rolled back.
    const notified: OptionSpec[] = [];
    for (const spec of changed) {
      try {
        this.notify(spec);
        notified.push(spec);
      } catch (err) {
        restore();
        for (const done of notified) this.notifyQuietly(done);
        this.notifyQuietly(spec);
        const reason = err instanceof Error ? err.message : String(err);
        throw new ConfigError(setFailed(spec.name, reason));
      }
    }
  }

  private notify(spec: OptionSpec): void {
    const rendered = spec.render(this.values.get(spec.name) as OptionValue);
    for (const listener of this.listeners.get(spec.name) ?? []) listener(rendered, spec.name);
  }

  /** Re-announce a restored value; a listener failing again is not worth a second error. */
  private notifyQuietly(spec: OptionSpec): void {
    try {
      this.notify(spec);
    } catch {
      // The old value was in effect before; nothing better to do than keep it.
    }
  }

  /** Run `listener` after every change of `name` (CONFIG SET). Returns an unsubscribe function. */
  onChange(name: string, listener: ConfigListener): () => void {
    const spec = this.spec(name);
    const list = this.listeners.get(spec.name) ?? [];
    list.push(listener);
    this.listeners.set(spec.name, list);
    return () => {
      const index = list.indexOf(listener);
      if (index >= 0) list.splice(index, 1);
    };
  }

  /** Options whose name matches a CONFIG GET glob pattern (case-insensitive), in table order. */
  match(pattern: string): Array<[string, string]> {
    const matches = compileGlob(pattern, true);
    return OPTION_SPECS.filter((spec) => matches(spec.name)).map((spec) => [spec.name, this.getString(spec.name)]);
  }

  /**
   * CONFIG GET pattern [pattern ...] as Redis 7.0 answers it: a pattern without
   * glob characters is a direct lookup and is echoed as typed ("PORT"); each
   * option appears once.
   */
  getMany(patterns: readonly string[]): Array<[string, string]> {
    const seen = new Set<string>();
    const out: Array<[string, string]> = [];
    for (const pattern of patterns) {
      if (!hasGlobMeta(pattern)) {
        const spec = lookupOption(pattern);
        if (spec && !seen.has(spec.name)) {
          seen.add(spec.name);
          out.push([pattern, this.getString(spec.name)]);
        }
        continue;
      }
      for (const [name, value] of this.match(pattern)) {
        if (seen.has(name)) continue;
        seen.add(name);
        out.push([name, value]);
      }
    }
    return out;
  }

  /** Every option name, in table order. */
  names(): string[] {
    return OPTION_SPECS.map((spec) => spec.name);
  }
}

function setFailed(arg: string, reason: string): string {
  return `ERR CONFIG SET failed (possibly related to argument '${arg}') - ${reason}`;
}
