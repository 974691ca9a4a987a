// Throughput side by side: starts redis-server and poolkv on free loopback
// ports and drives each with redis-benchmark in the same run, same settings.
// Prints a table with the poolkv/redis ratio per row and, with --write,
// replaces the throughput section of docs/benchmarks.md.
//
//   node dist/scripts/bench-throughput.js [--requests N] [--clients N] [--keyspace N] [--rounds N] [--write]
import { execFileSync, spawn, type ChildProcess } from 'child_process';
import * as os from 'os';
import * as path from 'path';
import { freePort, numberArg as arg, ROOT, waitForPing, writeSection } from './bench-common';

const TESTS = ['PING_INLINE', 'SET', 'GET', 'INCR', 'MSET'];

function run(cmd: string, args: string[]): ChildProcess {
  return spawn(cmd, args, { stdio: ['ignore', 'ignore', 'inherit'] });
}

/** redis-benchmark --csv rows: "test","rps",... → Map test → requests per second. */
function benchmark(port: number, pipeline: number, requests: number, clients: number, keyspace: number): Map<string, number> {
  const out = execFileSync('redis-benchmark', [
    '-h', '127.0.0.1', '-p', String(port), '-t', TESTS.join(',').toLowerCase(), '-n', String(requests),
    '-c', String(clients), '-P', String(pipeline), '-r', String(keyspace), '-d', '16', '--csv', '-q',
  ], { encoding: 'utf8', maxBuffer: 16 << 20 });
  const result = new Map<string, number>();
  for (const line of out.split('\n')) {
    const cells = line.split(',').map((c) => c.replace(/"/g, ''));
    if (cells.length >= 2 && !Number.isNaN(Number(cells[1]))) {
      const name = cells[0]!.replace(/ \(.*\)$/, '');
      result.set(name, Number(cells[1]));
    }
  }
  return result;
}

async function main(): Promise<void> {
  const requests = arg('requests', 200000);
  const clients = arg('clients', 50);
  const keyspace = arg('keyspace', 100000);
  const rounds = arg('rounds', 3);
  const redisPort = await freePort();
  const poolkvPort = await freePort();
  const redis = run('redis-server', ['--port', String(redisPort), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no']);
  const poolkv = run(process.execPath, [path.join(ROOT, 'dist/src/server/main.js'), '--port', String(poolkvPort), '--pool-size', '1gb', '--loglevel', 'warning']);
  try {
    await Promise.all([waitForPing(redisPort), waitForPing(poolkvPort)]);
    // One untimed pass per server first: the same keys exist on both, and
    // poolkv's JIT has compiled its hot paths (Redis has nothing to warm up).
    benchmark(redisPort, 16, requests, clients, keyspace);
    benchmark(poolkvPort, 16, requests, clients, keyspace);
    // The host's speed drifts by tens of percent between seconds, so each row is measured in
    // several interleaved rounds (alternating which server goes first) and the median is reported.
    const samples = new Map<string, { redis: number[]; poolkv: number[] }>();
    for (let round = 0; round < rounds; round++) {
      for (const pipeline of [1, 16]) {
        const order = round % 2 === 0 ? (['redis', 'poolkv'] as const) : (['poolkv', 'redis'] as const);
        for (const which of order) {
          const result = benchmark(which === 'redis' ? redisPort : poolkvPort, pipeline, requests, clients, keyspace);
          for (const test of TESTS) {
            const name = test === 'MSET' ? 'MSET (10 keys)' : test;
            const key = `${test}|${pipeline}`;
            if (!samples.has(key)) samples.set(key, { redis: [], poolkv: [] });
            samples.get(key)![which].push(result.get(name) ?? result.get(test) ?? NaN);
          }
        }
      }
    }
    const rows: string[] = [];
    const header = '| test | pipeline | redis rps | poolkv rps | poolkv/redis |';
    rows.push(header, '|---|---|---|---|---|');
    for (const pipeline of [1, 16]) {
      for (const test of TESTS) {
        const { redis: r, poolkv: p } = samples.get(`${test}|${pipeline}`)!;
        const rr = median(r);
        const pr = median(p);
        rows.push(`| ${test} | ${pipeline} | ${rr.toFixed(0)} | ${pr.toFixed(0)} | ${(pr / rr).toFixed(2)}x |`);
      }
    }
    const command = `node dist/scripts/bench-throughput.js --requests ${requests} --clients ${clients} --keyspace ${keyspace} --rounds ${rounds}`;
    const redisVersion = execFileSync('redis-server', ['--version'], { encoding: 'utf8' }).trim();
    const machine = `${os.cpus().length} cores (${os.cpus()[0]?.model ?? 'unknown'}), Node ${process.version}, ${redisVersion.split(' ').slice(0, 3).join(' ')}`;
    const table = rows.join('\n');
    console.log(table);
    if (process.argv.includes('--write')) {
      const section = [
        '## Throughput (redis-benchmark, side by side)',
        '',
        `Command: \`${command}\` (run on ${new Date().toISOString().slice(0, 10)}; ${machine}).`,
        'An untimed warm-up pass (-P 16, same settings) runs against each server first.',
        `Each row is the median of ${rounds} interleaved rounds (alternating which server runs first) of`,
        `\`redis-benchmark -t <test> -n ${requests} -c ${clients} -P <pipeline> -r ${keyspace} -d 16\` against each server in turn;`,
        'both servers and the benchmark client share the same 2 cores.',
        '',
        table,
        '',
      ].join('\n');
      writeSection(section, '## Throughput');
    }
  } finally {
    redis.kill('SIGKILL');
    poolkv.kill('SIGKILL');
  }
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)]!;
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
