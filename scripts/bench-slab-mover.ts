// What one page move costs (src/store/slab-mover.ts), in process: a 64 MiB pool filled with values of
// one size in db 0, every third key deleted (chunks freed all over the pages, none drained), then 30
// pages emptied one after another: at first by moving entries to free chunks of their class, then,
// once those run out, by evicting. A write that needs a page pays one such move.
//
//   node dist/scripts/bench-slab-mover.js [--sizes 100,1000] [--pages 30]
import { Pool } from '../src/pool/pool';
import { Keyspace } from '../src/store/keyspace';
import { SlabMover } from '../src/store/slab-mover';

const MiB = 1024 * 1024;

function arg(name: string, fallback: string): string {
  const at = process.argv.indexOf(`--${name}`);
  return at >= 0 && process.argv[at + 1] !== undefined ? process.argv[at + 1]! : fallback;
}

function main(): void {
  const sizes = arg('sizes', '100,1000').split(',').map(Number);
  const pages = Number(arg('pages', '30'));
  console.log(`| value size | keys | pages emptied | median ms | max ms | entries moved | entries evicted |`);
  console.log(`|---|---|---|---|---|---|---|`);
  for (const size of sizes) {
    const pool = Pool.open({ size: 64 * MiB, databases: 16 });
    try {
      const ks = new Keyspace(pool);
      const mover = new SlabMover(ks, pool);
      const value = Buffer.alloc(size, 1);
      let keys = 0;
      try {
        for (;;) {
          ks.db(0).setString(Buffer.from(`key:${keys}`), value, 0);
          keys++;
        }
      } catch {
        // the pool is full
      }
      for (let i = 0; i < keys; i += 3) ks.db(0).deleteKey(Buffer.from(`key:${i}`));
      const times: number[] = [];
      let moved = 0;
      let evicted = 0;
      for (let p = 0; p < pages; p++) {
        const started = process.hrtime.bigint();
        const result = mover.reclaimPage(false);
        times.push(Number(process.hrtime.bigint() - started) / 1e6);
        if (result === null) break;
        moved += result.rescued;
        evicted += result.evicted;
      }
      times.sort((a, b) => a - b);
      console.log(`| ${size} B | ${keys} | ${times.length} | ${times[times.length >> 1]!.toFixed(2)} | ${times[times.length - 1]!.toFixed(2)} | ${moved} | ${evicted} |`);
    } finally {
      pool.close();
    }
  }
}

main();
