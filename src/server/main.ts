#!/usr/bin/env node
// poolkv-server: redis-server's command line and start-up sequence. Read the
// config (file, then --options), map the shared-memory pool, build the
// keyspace over it, listen, and shut down cleanly on SIGTERM / SIGINT so the
// pool is marked clean for a warm restart.
import * as fs from 'fs';
import * as path from 'path';
import { Config, ConfigError } from '../config/config';
import { REDIS_COMPAT_VERSION } from '../config/conf-file';
import { Pool } from '../pool/pool';
import type { SharedMapping } from '../pool/mapping';
import { isCleanPoolFile, loadImage } from '../snapshot/load';
import { SnapshotService } from '../snapshot/service';
import { Keyspace } from '../store/keyspace';
import { Logger } from './log';
import { Server } from './server';

function packageVersion(): string {
  // dist/src/server/main.js and src/server/main.ts are both three levels below the package root.
  for (const candidate of [path.join(__dirname, '../../../package.json'), path.join(__dirname, '../../package.json')]) {
    try {
      const parsed = JSON.parse(fs.readFileSync(candidate, 'utf8')) as { name?: string; version?: string };
      if (parsed.name === 'poolkv' && parsed.version) return parsed.version;
    } catch {
      // try the next location
    }
  }
  return 'unknown';
}

const VERSION = packageVersion();

function usage(): never {
  process.stderr.write(
    'Usage: poolkv-server [/path/to/poolkv.conf] [options] [-]\n' +
    '       poolkv-server - (read config from stdin)\n' +
    '       poolkv-server -v or --version\n' +
    '       poolkv-server -h or --help\n\n' +
    'Examples:\n' +
    '       poolkv-server (run the server with default conf)\n' +
    '       poolkv-server /etc/poolkv/6379.conf\n' +
    '       poolkv-server --port 7777\n' +
    '       poolkv-server --port 7777 --pool-size 4gb --pool-path /dev/shm/poolkv-7777\n' +
    '       poolkv-server /etc/mypoolkv.conf --loglevel verbose -\n' +
    '       poolkv-server /etc/mypoolkv.conf --loglevel verbose\n\n' +
    'The config file uses redis.conf syntax; every option can also be given as --name value.\n',
  );
  process.exit(1);
}

/** "1.00G"-style sizes as Redis's bytesToHuman prints them. */
function bytesToHuman(n: number): string {
  const units: Array<[number, string]> = [[1024 ** 4, 'T'], [1024 ** 3, 'G'], [1024 ** 2, 'M'], [1024, 'K']];
  for (const [size, suffix] of units) if (n >= size) return `${(n / size).toFixed(2)}${suffix}`;
  return `${n}B`;
}

function startupBanner(port: number, poolSize: number, poolWhere: string): string {
  const lines = [
    '',
    `    ┌─┐┌─┐┌─┐┬  ┬┌─┬  ┬   poolkv ${VERSION} (Redis ${REDIS_COMPAT_VERSION} compatible) 64 bit`,
    `    ├─┘│ ││ ││  ├┴┐└┐┌┘`,
    `    ┴  └─┘└─┘┴─┘┴ ┴ └┘    Running in standalone mode`,
    `                           Port: ${port}`,
    `                           PID: ${process.pid}`,
    `                           Pool: ${bytesToHuman(poolSize)} in ${poolWhere}`,
    '',
    '',
  ];
  return lines.join('\n');
}

function fail(log: Logger, message: string): never {
  log.warning(message);
  process.exit(1);
}

async function main(argv: string[]): Promise<void> {
  if (argv[0] === '-v' || argv[0] === '--version') {
    process.stdout.write(`poolkv server v=${VERSION} redis_version=${REDIS_COMPAT_VERSION} node=${process.version} bits=64\n`);
    process.exit(0);
  }
  if (argv[0] === '-h' || argv[0] === '--help') usage();

  // Lines logged before the server exists carry role C, as redis-server's do.
  const startupLog = new Logger({ role: 'C' });
  let config: Config;
  let configFile: string;
  try {
    ({ config, configFile } = Config.load(argv));
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    if (err.asLogLine) startupLog.warning(err.message);
    else process.stderr.write(`\n${err.message}\n`);
    process.exit(1);
  }

  // Redis chdir()s to `dir` while reading its config; relative log and data files live there.
  process.chdir(config.getString('dir'));
  const log = Logger.fromConfig(config, { role: 'C' });
  log.warning('oO0OoO0OoO0Oo poolkv is starting oO0OoO0OoO0Oo');
  log.warning(`poolkv version=${VERSION}, Redis ${REDIS_COMPAT_VERSION} compatible, bits=64, node=${process.version}, pid=${process.pid}, just started`);
  if (configFile === '') {
    log.warning('Warning: no config file specified, using the default config. In order to specify a config file use ' +
      `poolkv-server /path/to/poolkv.conf`);
  } else {
    log.warning('Configuration loaded');
  }
  log.role = 'M';

  const poolSize = config.getNumber('pool-size');
  const poolPath = config.getString('pool-path');
  const databases = config.getNumber('databases');
  let pool: Pool;
  // A clean /dev/shm pool is attached as it stands; otherwise an image in `dir` is loaded, if any.
  const imageFile = path.join(config.getString('dir'), config.getString('dbfilename'));
  const attachable = poolPath !== '' && isCleanPoolFile(poolPath, poolSize, databases);
  let loaded: { seconds: number; mapping: SharedMapping } | null = null;
  if (!attachable && fs.existsSync(imageFile)) {
    log.notice(`Loading the pool image from ${imageFile}`);
    try {
      const image = loadImage(imageFile, { poolSize, path: poolPath, databases });
      pool = image.pool;
      loaded = image;
      if (image.header.poolSize !== poolSize) {
        log.warning(`The image holds a pool of ${image.header.poolSize} bytes; using that size instead of pool-size ${poolSize}`);
      }
    } catch (err) {
      fail(log, `Bad pool image ${imageFile}: ${(err as Error).message}. Exiting.`);
    }
  } else {
    try {
      pool = Pool.open({
        size: poolSize,
        path: poolPath === '' ? undefined : poolPath,
        databases,
        growthFactor: config.getNumber('slab-growth-factor'),
        minChunk: config.getNumber('slab-min-chunk'),
      });
    } catch (err) {
      fail(log, `Failed opening the pool (${poolPath === '' ? 'memfd' : poolPath}, ${poolSize} bytes): ${(err as Error).message}`);
    }
  }
  const poolWhere = pool.path ?? loaded?.mapping.path ?? 'an anonymous memfd';
  const port = config.getNumber('port');
  const showLogo = config.getString('logfile') === '' && process.stdout.isTTY === true;
  if (showLogo) log.raw('notice', startupBanner(port, poolSize, poolWhere));
  else log.notice(`Running mode=standalone, port=${port}.`);
  if (loaded === null && !pool.attached && pool.mapping?.existed) {
    log.warning(`The pool in ${poolWhere} was not shut down cleanly (or was made with other settings); ` +
      'its contents are not trusted, so it was formatted afresh.');
  }
  log.notice(`Pool of ${poolSize} bytes (${bytesToHuman(poolSize)}) in ${poolWhere}: ` +
    (loaded !== null ? 'loaded from the pool image' : pool.attached ? 'attached the cleanly shut down pool found there' : 'formatted a fresh pool') +
    `, ${config.getNumber('databases')} databases`);

  const keyspace = new Keyspace(pool);
  const executable = fs.realpathSync(process.argv[1] ?? __filename);
  const server = new Server({ pool, keyspace, config, log, configFile, executable });
  const snapshots = SnapshotService.of(server);
  if (loaded !== null) {
    let keys = 0;
    for (let db = 0; db < keyspace.dbCount; db++) keys += keyspace.db(db).size();
    snapshots.keysLoaded = keys;
    log.notice(`Done loading the pool image, keys loaded: ${keys}.`);
    log.notice(`DB loaded from disk: ${loaded.seconds.toFixed(3)} seconds`);
  }
  try {
    await server.listen();
  } catch (err) {
    pool.close();
    fail(log, (err as Error).message);
  }

  let shuttingDown = false;
  const onSignal = (signal: NodeJS.Signals): void => {
    if (shuttingDown) {
      log.fromSignalHandler('You insist... exiting now.');
      process.exit(1);
    }
    shuttingDown = true;
    log.fromSignalHandler(`Received ${signal} scheduling shutdown...`);
    // Like Redis, let the current event-loop turn finish before shutting down; with save rules, save first.
    setImmediate(() => {
      if (!snapshots.prepareForShutdown(false, false)) {
        log.warning('Errors trying to shut down the server. Check the logs for more information.');
        shuttingDown = false;
        return;
      }
      server.shutdown('User requested shutdown...', 0);
    });
  };
  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);
}

main(process.argv.slice(2)).catch((err: unknown) => {
  process.stderr.write(`poolkv-server: ${err instanceof Error ? err.stack ?? err.message : String(err)}\n`);
  process.exit(1);
});
