// INFO: the sections and field formats of Redis 7.0's genRedisInfoString,
// filled with what poolkv actually knows. Fields that would only be
// placeholders (no RDB child, no replication backlog, no Lua) are left out
// rather than invented; a few that are true by construction stay, because
// clients read them (ioredis waits for `loading:0`).
//
// The memory section speaks about the pool (used_memory is what the slab
// allocator has handed out plus the pool's own metadata) and adds pool_*
// fields; an extra `slabs` section lists the allocator's classes like
// memcached's `stats slabs`.
import { persistenceInfoFields } from '../snapshot/service';
import { readFileSync } from 'fs';
import * as os from 'os';
import * as path from 'path';
import { performance } from 'perf_hooks';
import type { CommandEntry } from '../commands/table';
import { REDIS_COMPAT_VERSION } from '../config/conf-file';
import { PAGE_BYTES } from '../pool/memory';
import type { ServerContext } from './server-context';


/** Sections in output order. `slabs` is poolkv's own and, like a module section, comes last. */
const SECTION_ORDER = [
  'server', 'clients', 'memory', 'persistence', 'stats', 'replication', 'cpu', 'modules',
  'commandstats', 'errorstats', 'latencystats', 'cluster', 'keyspace', 'slabs',
] as const;
type Section = (typeof SECTION_ORDER)[number];

/** INFO / INFO default (genInfoSectionDict's default_sections; module_list renders "# Modules"). */
const DEFAULT_SECTIONS: readonly Section[] = [
  'server', 'clients', 'memory', 'persistence', 'stats', 'replication', 'cpu', 'modules', 'errorstats',
  'cluster', 'keyspace',
];

/**
 * Which sections a list of INFO arguments selects, following genInfoSectionDict:
 * names are case-insensitive, "default" adds the defaults, "all" and
 * "everything" select every section, "module_list" is the modules section, and
 * unknown names select nothing.
 */
export function selectSections(args: readonly string[]): Set<Section> {
  const out = new Set<Section>();
  if (args.length === 0) {
    for (const s of DEFAULT_SECTIONS) out.add(s);
    return out;
  }
  for (const raw of args) {
    const name = raw.toLowerCase();
    if (name === 'default') {
      for (const s of DEFAULT_SECTIONS) out.add(s);
    } else if (name === 'all' || name === 'everything') {
      for (const s of SECTION_ORDER) out.add(s);
    } else if (name === 'module_list') {
      out.add('modules');
    } else if ((SECTION_ORDER as readonly string[]).includes(name)) {
      out.add(name as Section);
    }
  }
  return out;
}

// ---- formatting helpers ----------------------------------------------------------------

/** Redis's bytesToHuman: B below 1K, then %.2f with K/M/G/T/P (powers of 1024). */
export function bytesToHuman(n: number): string {
  if (n < 1024) return `${n}B`;
  const units = ['K', 'M', 'G', 'T', 'P'];
  let scale = 1024;
  for (const unit of units) {
    if (n < scale * 1024) return `${(n / scale).toFixed(2)}${unit}`;
    scale *= 1024;
  }
  return `${n}B`;
}

/** printf("%.2f"). */
function f2(n: number): string {
  return Number.isFinite(n) ? n.toFixed(2) : n > 0 ? 'inf' : n < 0 ? '-inf' : 'nan';
}

/** "%ld.%06ld" of a duration given in microseconds. */
function secondsMicros(us: number): string {
  const whole = Math.floor(us / 1e6);
  return `${whole}.${String(Math.floor(us - whole * 1e6)).padStart(6, '0')}`;
}

/** getSafeInfoString: '#', ':', CR and LF would break the format; Redis maps them to '_'. */
function safeInfoString(s: string): string {
  return s.replace(/[#:\r\n]/g, '_');
}

let cachedVersion: string | null = null;
/** poolkv's own version, from package.json (dist/src/server → repository root). */
export function poolkvVersion(): string {
  if (cachedVersion !== null) return cachedVersion;
  cachedVersion = 'unknown';
  for (const candidate of [path.join(__dirname, '../../../package.json'), path.join(__dirname, '../../package.json')]) {
    try {
      const pkg = JSON.parse(readFileSync(candidate, 'utf8')) as { name?: string; version?: string };
      if (pkg.name === 'poolkv' && typeof pkg.version === 'string') {
        cachedVersion = pkg.version;
        break;
      }
    } catch {
      // try the next location
    }
  }
  return cachedVersion;
}

let systemPageSize = 0;
/**
 * Resident set size, from /proc/self/statm's resident page count (what Redis's
 * zmalloc_get_rss reads). The page size is the ratio to libuv's own RSS figure
 * (same kernel counter, multiplied by sysconf(_SC_PAGESIZE)), rounded to a power of two.
 */
export function residentSetSize(): number {
  try {
    const fields = readFileSync('/proc/self/statm', 'latin1').trim().split(/\s+/);
    const pages = Number(fields[1]);
    if (!Number.isFinite(pages) || pages <= 0) return process.memoryUsage.rss();
    if (systemPageSize === 0) {
      const ratio = process.memoryUsage.rss() / pages;
      systemPageSize = ratio > 0 ? 2 ** Math.round(Math.log2(ratio)) : 4096;
    }
    return pages * systemPageSize;
  } catch {
    return process.memoryUsage.rss();
  }
}

type Lines = string[];

// ---- sections --------------------------------------------------------------------------

function serverSection(server: ServerContext, out: Lines): void {
  const now = performance.timeOrigin + performance.now();
  const uptime = Math.floor(Date.now() / 1000) - Math.floor(server.startedAt / 1000);
  const configuredHz = server.config.getNumber('hz');
  out.push(
    '# Server',
    `redis_version:${REDIS_COMPAT_VERSION}`,
    `poolkv_version:${poolkvVersion()}`,
    'redis_mode:standalone',
    `os:${os.type()} ${os.release()} ${os.machine()}`,
    `arch_bits:${/64/.test(process.arch) ? 64 : 32}`,
    `process_id:${process.pid}`,
    `run_id:${server.runId}`,
    `tcp_port:${server.tcpPort}`,
    `server_time_usec:${Math.floor(now * 1000)}`,
    `uptime_in_seconds:${uptime}`,
    `uptime_in_days:${Math.floor(uptime / 86400)}`,
    `hz:${configuredHz}`,
    `configured_hz:${configuredHz}`,
    `lru_clock:${server.keyspace.lruClock()}`,
    `executable:${server.executable}`,
    `config_file:${server.configFile}`,
    'io_threads_active:0',
  );
}

function clientsSection(server: ServerContext, out: Lines): void {
  let maxIn = 0;
  let maxOut = 0;
  for (const client of server.clients.list()) {
    maxIn = Math.max(maxIn, client.queryBufferBytes);
    maxOut = Math.max(maxOut, client.outputBufferBytes());
  }
  out.push(
    '# Clients',
    `connected_clients:${server.clients.connectedClients}`,
    'cluster_connections:0',
    `maxclients:${server.clients.maxClients}`,
    `client_recent_max_input_buffer:${maxIn}`,
    `client_recent_max_output_buffer:${maxOut}`,
    'blocked_clients:0',
    'tracking_clients:0',
    'clients_in_timeout_table:0',
  );
}

function memorySection(server: ServerContext, out: Lines): void {
  const pool = server.pool;
  const used = pool.usedMemory();
  const peak = Math.max(pool.peakMemory(), used);
  const rss = residentSetSize();
  const total = os.totalmem();
  const maxmemory = pool.maxmemory;
  const alloc = pool.allocator;
  let slabPages = 0;
  for (const cls of alloc.classStats()) slabPages += cls.pages;
  const freePages = alloc.freePages();
  const largePages = Math.max(0, alloc.pageCount - alloc.metaPages - freePages - slabPages);
  out.push(
    '# Memory',
    `used_memory:${used}`,
    `used_memory_human:${bytesToHuman(used)}`,
    `used_memory_rss:${rss}`,
    `used_memory_rss_human:${bytesToHuman(rss)}`,
    `used_memory_peak:${peak}`,
    `used_memory_peak_human:${bytesToHuman(peak)}`,
    `used_memory_peak_perc:${f2(peak > 0 ? (used * 100) / peak : 0)}%`,
    `total_system_memory:${total}`,
    `total_system_memory_human:${bytesToHuman(total)}`,
    `maxmemory:${maxmemory}`,
    `maxmemory_human:${bytesToHuman(maxmemory)}`,
    `maxmemory_policy:${server.config.getString('maxmemory-policy')}`,
    `mem_fragmentation_ratio:${f2(used > 0 ? rss / used : 0)}`,
    `mem_fragmentation_bytes:${rss - used}`,
    'mem_allocator:poolkv-slab',
    'lazyfree_pending_objects:0',
    'lazyfreed_objects:0',
    `pool_size:${pool.size}`,
    `pool_size_human:${bytesToHuman(pool.size)}`,
    `pool_path:${pool.path ?? 'memfd'}`,
    `pool_attached:${pool.attached ? 1 : 0}`,
    `pool_page_size:${PAGE_BYTES}`,
    `pool_total_pages:${alloc.pageCount}`,
    `pool_metadata_pages:${alloc.metaPages}`,
    `pool_slab_pages:${slabPages}`,
    `pool_large_pages:${largePages}`,
    `pool_free_pages:${freePages}`,
    `pool_untouched_pages:${alloc.pageCount - alloc.touchedPages()}`,
    `pool_metadata_bytes:${pool.metadataBytes()}`,
  );
}

function persistenceSection(server: ServerContext, out: Lines): void {
  // The snapshot service owns these figures (Redis 7.0's names, plus snapshot progress).
  out.push('# Persistence');
  for (const [name, value] of persistenceInfoFields(server)) out.push(`${name}:${value}`);
}

function statsSection(server: ServerContext, out: Lines): void {
  const stats = server.stats;
  out.push(
    '# Stats',
    `total_connections_received:${stats.totalConnectionsReceived}`,
    `total_commands_processed:${stats.totalCommandsProcessed}`,
    `instantaneous_ops_per_sec:${stats.instantaneousOpsPerSec}`,
    `total_net_input_bytes:${stats.totalNetInputBytes}`,
    `total_net_output_bytes:${stats.totalNetOutputBytes}`,
    'total_net_repl_input_bytes:0',
    'total_net_repl_output_bytes:0',
    `instantaneous_input_kbps:${f2(stats.instantaneousInputKbps)}`,
    `instantaneous_output_kbps:${f2(stats.instantaneousOutputKbps)}`,
    'instantaneous_input_repl_kbps:0.00',
    'instantaneous_output_repl_kbps:0.00',
    `rejected_connections:${stats.rejectedConnections}`,
    'sync_full:0',
    'sync_partial_ok:0',
    'sync_partial_err:0',
    `expired_keys:${stats.expiredKeys}`,
    `expired_stale_perc:${f2(server.keyspace.stats.expiredStalePerc * 100)}`,
    `evicted_keys:${stats.evictedKeys}`,
    'evicted_clients:0',
    `keyspace_hits:${stats.keyspaceHits}`,
    `keyspace_misses:${stats.keyspaceMisses}`,
    // Snapshots are fork-less.
    'latest_fork_usec:0',
    'total_forks:0',
    `unexpected_error_replies:${stats.unexpectedErrorReplies}`,
    `total_error_replies:${stats.totalErrorReplies}`,
    `total_reads_processed:${stats.totalReadsProcessed}`,
    `total_writes_processed:${stats.totalWritesProcessed}`,
    'io_threaded_reads_processed:0',
    'io_threaded_writes_processed:0',
  );
}

function replicationSection(out: Lines): void {
  out.push('# Replication', 'role:master', 'connected_slaves:0');
}

function cpuSection(out: Lines): void {
  const usage = process.cpuUsage();
  out.push('# CPU', `used_cpu_sys:${secondsMicros(usage.system)}`, `used_cpu_user:${secondsMicros(usage.user)}`);
}

function commandStatsLines(entries: readonly CommandEntry[], out: Lines): void {
  for (const entry of entries) {
    if (entry.calls > 0 || entry.failedCalls > 0 || entry.rejectedCalls > 0) {
      out.push(`cmdstat_${safeInfoString(entry.fullName)}:calls=${entry.calls},usec=${entry.usec},` +
        `usec_per_call=${f2(entry.calls === 0 ? 0 : entry.usec / entry.calls)},` +
        `rejected_calls=${entry.rejectedCalls},failed_calls=${entry.failedCalls}`);
    }
    commandStatsLines(entry.subcommands, out);
  }
}

function errorStatsLines(server: ServerContext, out: Lines): void {
  // A rax in Redis: byte order of the error codes.
  const codes = [...server.stats.errorCounts.keys()].sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b)));
  for (const code of codes) out.push(`errorstat_${safeInfoString(code)}:count=${server.stats.errorCounts.get(code)}`);
}

function keyspaceSection(server: ServerContext, out: Lines): void {
  out.push('# Keyspace');
  const ks = server.keyspace;
  for (let i = 0; i < ks.dbCount; i++) {
    const db = ks.db(i);
    const keys = db.size();
    const expires = db.expiresCount();
    if (keys > 0 || expires > 0) out.push(`db${i}:keys=${keys},expires=${expires},avg_ttl=${Math.trunc(db.avgTtl())}`);
  }
}

function slabsSection(server: ServerContext, out: Lines): void {
  const classes = server.pool.allocator.classStats();
  let pages = 0;
  for (const cls of classes) pages += cls.pages;
  const mover = server.evictor.slabMover;
  // slabs_moved as memcached's stats; rescued: entries moved to another page of their class instead of evicted.
  out.push('# Slabs', `active_slabs:${classes.length}`, `total_slab_pages:${pages}`,
    `slabs_moved:${mover.pagesMoved}`, `slab_entries_rescued:${mover.rescuedEntries}`);
  for (const cls of classes) {
    out.push(`slab${cls.id}:chunk_size=${cls.chunkSize},chunks_per_page=${cls.chunksPerPage},` +
      `total_pages=${cls.pages},used_chunks=${cls.usedChunks},free_chunks=${cls.freeChunks}`);
  }
}

/** The INFO text for the given arguments (sections separated by a blank line, CRLF line ends). */
export function renderInfo(server: ServerContext, args: readonly string[]): string {
  const wanted = selectSections(args);
  const blocks: string[] = [];
  for (const section of SECTION_ORDER) {
    if (!wanted.has(section)) continue;
    const out: Lines = [];
    switch (section) {
      case 'server': serverSection(server, out); break;
      case 'clients': clientsSection(server, out); break;
      case 'memory': memorySection(server, out); break;
      case 'persistence': persistenceSection(server, out); break;
      case 'stats': statsSection(server, out); break;
      case 'replication': replicationSection(out); break;
      case 'cpu': cpuSection(out); break;
      case 'modules': out.push('# Modules'); break;
      case 'commandstats': out.push('# Commandstats'); commandStatsLines(server.commands.entries(), out); break;
      case 'errorstats': out.push('# Errorstats'); errorStatsLines(server, out); break;
      // No latency histograms are kept: the section is empty, as with latency-tracking off.
      case 'latencystats': out.push('# Latencystats'); break;
      case 'cluster': out.push('# Cluster', 'cluster_enabled:0'); break;
      case 'keyspace': keyspaceSection(server, out); break;
      case 'slabs': slabsSection(server, out); break;
    }
    blocks.push(out.map((line) => `${line}\r\n`).join(''));
  }
  return blocks.join('\r\n');
}
