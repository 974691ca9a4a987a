// Datasets for snapshot tests: write a reproducible dataset (small and big
// strings, TTLs as absolute PEXPIREAT times, several databases) through a
// real client, and read a whole server back as a comparable model
// (key → value digest + PEXPIRETIME), so "the restarted server has exactly
// what was written before BGSAVE" is one deepEqual.
import { createCipheriv, createHash } from 'crypto';
import type IORedisClient from 'ioredis';
import { rng } from './random';

// eslint-disable-next-line @typescript-eslint/no-require-imports
const IORedis = require('ioredis') as typeof import('ioredis').default;

export interface DatasetSpec {
  seed: number;
  /** Databases written (0..dbs-1). */
  dbs: number;
  /** Keys of 1..2000 bytes, spread over the databases. */
  smallKeys: number;
  /** Keys of `bigBytes` each (in db 0): these make the image large. */
  bigKeys: number;
  bigBytes: number;
  /** Share of keys with a TTL (far in the future, so nothing expires during a test). */
  ttlShare?: number;
  /** Key prefix (so two datasets can be told apart). */
  prefix?: string;
}

/** db index → key → "sha1-of-value pexpiretime". */
export type DatasetModel = Array<Record<string, string>>;

export function connect(port: number, db = 0, host = '127.0.0.1'): IORedisClient {
  return new IORedis({ port, host, db, lazyConnect: false, maxRetriesPerRequest: 0, enableOfflineQueue: true });
}

function digest(value: Buffer): string {
  return createHash('sha1').update(value).digest('hex');
}

/** `len` pseudo-random bytes determined by `seed` (AES-CTR keystream: fast for big values). */
export function valueBytes(seed: number, len: number): Buffer {
  const key = createHash('sha256').update(`dataset-value-${seed}`).digest().subarray(0, 16);
  return createCipheriv('aes-128-ctr', key, Buffer.alloc(16)).update(Buffer.alloc(len));
}

/** Pipelines are flushed at this many commands or this many payload bytes. */
const PIPELINE_COMMANDS = 200;
const PIPELINE_BYTES = 8 * 1024 * 1024;

/** Write the dataset; returns its model. */
export async function writeDataset(port: number, spec: DatasetSpec): Promise<DatasetModel> {
  const r = rng(spec.seed);
  const prefix = spec.prefix ?? 'k';
  const model: DatasetModel = Array.from({ length: spec.dbs }, () => ({}));
  const far = Date.now() + 30 * 24 * 3600 * 1000;
  const clients = Array.from({ length: spec.dbs }, (_, db) => connect(port, db));
  try {
    const pipelines = clients.map((c) => c.pipeline());
    const counts = new Array<number>(spec.dbs).fill(0);
    const bytes = new Array<number>(spec.dbs).fill(0);
    const flush = async (db: number): Promise<void> => {
      const results = await pipelines[db]!.exec();
      for (const [err] of results ?? []) if (err) throw err;
      pipelines[db] = clients[db]!.pipeline();
      counts[db] = 0;
      bytes[db] = 0;
    };
    const put = async (db: number, key: string, value: Buffer): Promise<void> => {
      const expireAt = r() < (spec.ttlShare ?? 0.2) ? far + Math.floor(r() * 1e6) : -1;
      pipelines[db]!.set(key, value);
      if (expireAt > 0) pipelines[db]!.pexpireat(key, expireAt);
      model[db]![key] = `${digest(value)} ${expireAt}`;
      bytes[db]! += value.length;
      if (++counts[db]! >= PIPELINE_COMMANDS || bytes[db]! >= PIPELINE_BYTES) await flush(db);
    };
    for (let i = 0; i < spec.smallKeys; i++) {
      const db = Math.floor(r() * spec.dbs);
      await put(db, `${prefix}:s:${i}`, valueBytes(spec.seed * 100000 + i, 1 + Math.floor(r() * 2000)));
    }
    for (let i = 0; i < spec.bigKeys; i++) {
      await put(0, `${prefix}:b:${i}`, valueBytes(spec.seed * 100000 + 50000 + i, spec.bigBytes));
    }
    for (let db = 0; db < spec.dbs; db++) await flush(db);
  } finally {
    for (const c of clients) c.disconnect();
  }
  return model;
}

/** Read every key of databases 0..dbs-1 into a model. */
export async function readDataset(port: number, dbs: number): Promise<DatasetModel> {
  const model: DatasetModel = [];
  for (let db = 0; db < dbs; db++) {
    const c = connect(port, db);
    try {
      const keys: string[] = [];
      let cursor = '0';
      do {
        const [next, batch] = await c.scan(cursor, 'COUNT', 1000);
        cursor = next;
        keys.push(...batch);
      } while (cursor !== '0');
      const out: Record<string, string> = {};
      for (let i = 0; i < keys.length; i += 20) {
        const p = c.pipeline();
        const slice = keys.slice(i, i + 20);
        for (const key of slice) {
          p.getBuffer(key);
          p.pexpiretime(key);
        }
        const results = (await p.exec()) ?? [];
        slice.forEach((key, j) => {
          const [e1, value] = results[2 * j]!;
          const [e2, expireAt] = results[2 * j + 1]!;
          if (e1 || e2) throw e1 ?? e2;
          out[key] = `${digest(value as Buffer)} ${expireAt as number}`;
        });
      }
      // Sorted, so deepEqual failures read well.
      model.push(Object.fromEntries(Object.entries(out).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))));
    } finally {
      c.disconnect();
    }
  }
  return model;
}

/** The model with keys sorted (for comparing with readDataset's). */
export function sortedModel(model: DatasetModel): DatasetModel {
  return model.map((db) => Object.fromEntries(Object.entries(db).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))));
}

/** Key counts per database (for quick messages). */
export function keyCount(model: DatasetModel): number {
  return model.reduce((n, db) => n + Object.keys(db).length, 0);
}
