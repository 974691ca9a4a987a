#!/usr/bin/env node
// poolkv-server: redis-server's command line and start-up sequence. Read the
// config (file, then --options), get the shared-memory pool (a clean
// /dev/shm pool as it stands, else the image from the snapshot peer with
// load-from-peer yes, else the image in `dir`, else a fresh pool), build the
// keyspace over it, listen, and shut down cleanly on SIGTERM / SIGINT so the
// pool is marked clean for a warm restart. While an image loads the server
// already listens and answers -LOADING (src/server/loading.ts).
import * as fs from 'fs';
import * as path from 'path';
import { Config, ConfigError } from '../config/config';
import { REDIS_COMPAT_VERSION } from '../config/conf-file';
import { Pool } from '../pool/pool';
import { isCleanPoolFile, type LoadedImage, type LoadHooks, loadImageFile } from '../snapshot/load';
import { SnapshotService } from '../snapshot/service';
import { Keyspace } from '../store/keyspace';
import { removeStaleTempFiles } from '../transport/file';
import { type LinkKind, parseHostPort } from '../transport/link';
import { registerPoolRegion } from '../transport/links';
import { loadFromPeer, type PeerLoadResult } from '../transport/peer-load';
import { describePeer, type PeerOptions } from '../transport/peer-sink';
import { LoadingAwareCommandTable, LoadingState } from './loading';
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
  // A process killed mid-save leaves its temp-<pid>.pool behind; the image it was replacing is whole.
  removeStaleTempFiles(config.getString('dir'), (message) => log.notice(message));

  const poolSize = config.getNumber('pool-size');
  const poolPath = config.getString('pool-path');
  const databases = config.getNumber('databases');
  const port = config.getNumber('port');
  const transport = config.getString('snapshot-transport');
  const loadOptions = { poolSize, path: poolPath, databases };
  const snapshotsFor = (server: Server): SnapshotService => SnapshotService.of(server);

  // Where the dataset comes from: a clean /dev/shm pool wins (warm restart); then the peer's image with
  // load-from-peer yes; then the image in `dir`; else a fresh pool.
  const imageFile = path.join(config.getString('dir'), config.getString('dbfilename'));
  const attachable = poolPath !== '' && isCleanPoolFile(poolPath, poolSize, databases);
  let peer: PeerOptions | null = null;
  if (transport !== 'file' || config.getBool('load-from-peer')) {
    if (transport === 'file') fail(log, 'load-from-peer yes needs snapshot-transport tcp or rdma (and snapshot-peer). Exiting.');
    if (config.getString('snapshot-peer') === '') fail(log, `snapshot-transport ${transport} needs snapshot-peer HOST:PORT. Exiting.`);
    const { host, port: peerPort } = parseHostPort(config.getString('snapshot-peer'), 'snapshot-peer');
    peer = {
      kind: transport as LinkKind, host, port: peerPort,
      token: config.getString('snapshot-auth-token'), name: config.getString('snapshot-name'),
    };
  }
  const source: 'pool' | 'file' | 'peer' =
    attachable ? 'pool' : peer !== null && config.getBool('load-from-peer') ? 'peer' : fs.existsSync(imageFile) ? 'file' : 'pool';

  /** With snapshot-transport rdma the pool is registered once, before listening; failing that is fatal. */
  let registered = false;
  const registerPool = async (views: Buffer[]): Promise<void> => {
    if (peer === null || peer.kind !== 'rdma' || registered) return;
    try {
      await registerPoolRegion('rdma', views, peer.host);
      registered = true;
    } catch (err) {
      fail(log, `Could not register the pool for RDMA (snapshot-transport rdma): ${(err as Error).message}. ` +
        'Raise the memlock limit (ulimit -l / LimitMEMLOCK) or use snapshot-transport tcp. Exiting.');
    }
  };

  /** The server over `pool`, listening. While `loading` is active it answers -LOADING. */
  const startServing = async (pool: Pool, poolWhere: string, loading: LoadingState | null): Promise<Server> => {
    const showLogo = config.getString('logfile') === '' && process.stdout.isTTY === true;
    if (showLogo) log.raw('notice', startupBanner(port, poolSize, poolWhere));
    else log.notice(`Running mode=standalone, port=${port}.`);
    await registerPool(pool.mem.bytes);
    const keyspace = new Keyspace(pool);
    const executable = fs.realpathSync(process.argv[1] ?? __filename);
    const server = new Server({
      pool, keyspace, config, log, configFile, executable,
      ...(loading !== null ? { loading, commands: new LoadingAwareCommandTable(loading) } : {}),
    });
    snapshotsFor(server).loading = loading;
    try {
      await server.listen();
    } catch (err) {
      fail(log, (err as Error).message);
    }
    installSignalHandlers(server, log);
    return server;
  };

  const openPool = async (): Promise<Server> => {
    let pool: Pool;
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
    const poolWhere = pool.path ?? 'an anonymous memfd';
    if (!pool.attached && pool.mapping?.existed) {
      log.warning(`The pool in ${poolWhere} was not shut down cleanly (or was made with other settings); ` +
        'its contents are not trusted, so it was formatted afresh.');
    }
    log.notice(`Pool of ${poolSize} bytes (${bytesToHuman(poolSize)}) in ${poolWhere}: ` +
      (pool.attached ? 'attached the cleanly shut down pool found there' : 'formatted a fresh pool') + `, ${databases} databases`);
    return startServing(pool, poolWhere, null);
  };

  if (source === 'pool') {
    await openPool();
    return;
  }

  // Loading an image (file or peer): the server listens as soon as the meta pages are in and answers
  // -LOADING until the last page is verified; any failure exits without serving a byte of it.
  const loading = new LoadingState();
  const from = source === 'file' ? imageFile : describePeer(peer!);
  let server: Server | null = null;
  let lastProgressLog = Date.now();
  const hooks: LoadHooks = {
    onStart(header, totalBytes) {
      loading.start(totalBytes, header.usedBytes);
      if (header.poolSize !== poolSize) {
        log.warning(`The image holds a pool of ${header.poolSize} bytes; using that size instead of pool-size ${poolSize}`);
      }
    },
    async onPoolReady(pool) {
      const where = pool.path ?? (poolPath === '' ? 'an anonymous memfd' : poolPath);
      log.notice(`Pool of ${pool.size} bytes (${bytesToHuman(pool.size)}) in ${where}: loading the pool image, ${databases} databases`);
      server = await startServing(pool, where, loading);
    },
    onProgress(loadedBytes) {
      loading.loadedBytes = loadedBytes;
      const now = Date.now();
      // Progress lines once the server listens (the first ones would otherwise come before "Running mode=...").
      if (server !== null && now - lastProgressLog >= 1000 && loadedBytes < loading.totalBytes) {
        lastProgressLog = now;
        log.notice(`Loading the pool image: ${loading.percent.toFixed(1)}% (${bytesToHuman(loadedBytes)} of ${bytesToHuman(loading.totalBytes)})`);
      }
    },
  };
  let image: LoadedImage;
  let note = '';
  if (source === 'file') {
    log.notice(`Loading the pool image from ${imageFile}`);
    try {
      image = await loadImageFile(imageFile, loadOptions, hooks);
    } catch (err) {
      fail(log, `Bad pool image ${imageFile}: ${(err as Error).message}. Exiting.`);
    }
  } else {
    log.notice(`Loading the pool image '${peer!.name}' from ${from}`);
    let result: PeerLoadResult;
    registered = peer!.kind === 'rdma'; // loadFromPeer registers the part of the pool the image fills before exposing it
    try {
      result = await loadFromPeer({ ...peer!, ...loadOptions }, hooks);
    } catch (err) {
      fail(log, `Could not load the pool image '${peer!.name}' from ${from}: ${(err as Error).message}. Exiting.`);
    }
    if (!result.found) {
      log.warning(`${from} has no image named '${peer!.name}': starting with an empty dataset`);
      registered = false;
      await openPool();
      return;
    }
    image = result.image;
    note = ` (generation ${result.generation})`;
    log.notice(`Load from ${from}: ${result.phases}`);
  }
  loading.loadedBytes = loading.totalBytes;
  loading.finish();
  const running = server as Server | null;
  if (running === null) fail(log, 'internal error: the image loaded without its meta pages');
  const keyspace = running.keyspace;
  let keys = 0;
  for (let db = 0; db < keyspace.dbCount; db++) keys += keyspace.db(db).size();
  snapshotsFor(running).keysLoaded = keys;
  log.notice(`Done loading the pool image, keys loaded: ${keys}.`);
  const mbPerSecond = loading.totalBytes / 1e6 / Math.max(image.seconds, 0.001);
  if (source === 'file') log.notice(`DB loaded from disk: ${image.seconds.toFixed(3)} seconds`);
  else log.notice(`DB loaded from ${from}${note}: ${image.seconds.toFixed(3)} seconds, ${mbPerSecond.toFixed(1)} MB/s`);
}

/** SIGTERM / SIGINT: shut down like Redis (save first when save rules are set, unless still loading). */
function installSignalHandlers(server: Server, log: Logger): void {
  const snapshots = SnapshotService.of(server);
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
