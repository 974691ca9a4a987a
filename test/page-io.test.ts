// The addon's page I/O (native/page_io.cc): its CRC32 must equal zlib.crc32
// bit for bit (images are checked with zlib on load), copies must be exact,
// pwritev must write every byte where asked, and a cancelled CopyGroup must
// not touch its buffers any more. Skipped when the addon is not built.
import { strict as assert } from 'assert';
import { execFileSync, spawn } from 'child_process';
import * as crypto from 'crypto';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { crc32 as zlibCrc32 } from 'zlib';
import { type PageIoNative, pageIo } from '../src/transport/native';
import { rng } from './helpers/random';

const MiB = 1024 * 1024;

describe('page I/O (native/page_io.cc)', function () {
  this.timeout(60000);
  let io: PageIoNative;

  before(function () {
    const n = pageIo();
    if (n === null) this.skip(); // addon not built: cut.ts and file.ts take their JS paths
    io = n!;
  });

  /** Random bytes at a random offset into a larger buffer (so data pointers are unaligned). */
  function randomSlice(r: () => number, len: number): Buffer {
    const offset = Math.floor(r() * 64);
    return crypto.randomBytes(len + offset + 7).subarray(offset, offset + len);
  }

  it(`crc32 equals zlib.crc32 for every length 0..300, random lengths, offsets and seeds (${pageIo()?.crc32Implementation ?? 'n/a'})`, () => {
    const r = rng(7);
    for (let len = 0; len <= 300; len++) {
      const b = randomSlice(r, len);
      assert.equal(io.crc32(b), zlibCrc32(b), `length ${len}`);
      const seed = Math.floor(r() * 2 ** 32);
      assert.equal(io.crc32(b, seed), zlibCrc32(b, seed), `length ${len}, seed ${seed}`);
    }
    for (let i = 0; i < 300; i++) {
      const len = Math.floor(r() * (i < 200 ? 70000 : 3 * MiB));
      const b = randomSlice(r, len);
      const seed = i % 4 === 0 ? 0 : Math.floor(r() * 2 ** 32);
      assert.equal(io.crc32(b, seed), zlibCrc32(b, seed), `length ${len}, seed ${seed}`);
    }
    // Known answers: zlib's check value and an all-zero page.
    assert.equal(io.crc32(Buffer.from('123456789')), 0xcbf43926);
    assert.equal(io.crc32(Buffer.alloc(MiB)), zlibCrc32(Buffer.alloc(MiB)));
    assert.equal(io.crc32(Buffer.alloc(MiB, 0xff)), zlibCrc32(Buffer.alloc(MiB, 0xff)));
  });

  it('crc32 chains like zlib: crc(a+b) = crc(b, crc(a)) at any split', () => {
    const r = rng(8);
    const whole = crypto.randomBytes(200000);
    const want = zlibCrc32(whole);
    for (let i = 0; i < 50; i++) {
      const split = Math.floor(r() * whole.length);
      assert.equal(io.crc32(whole.subarray(split), io.crc32(whole.subarray(0, split))), want, `split at ${split}`);
    }
  });

  it('copyPageCrcSync / copyPageCrc copy exactly and return the CRC of the copy', async () => {
    const r = rng(9);
    for (let i = 0; i < 60; i++) {
      const len = i === 0 ? MiB : i === 1 ? 0 : Math.floor(r() * 2 * MiB);
      const src = randomSlice(r, len);
      const seed = Math.floor(r() * 2 ** 32);
      const extra = Math.floor(r() * 100);
      const dstSync = Buffer.alloc(len + extra, 0xa5);
      assert.equal(io.copyPageCrcSync(src, dstSync, seed), zlibCrc32(src, seed));
      assert.ok(dstSync.subarray(0, len).equals(src), `sync copy of ${len} bytes`);
      assert.ok(dstSync.subarray(len).every((b) => b === 0xa5), 'nothing written past the source length');
      const dst = randomSlice(r, len + extra);
      dst.fill(0x5a);
      assert.equal(await io.copyPageCrc(src, dst, seed), zlibCrc32(src, seed));
      assert.ok(dst.subarray(0, len).equals(src), `async copy of ${len} bytes`);
      assert.ok(dst.subarray(len).every((b) => b === 0x5a));
      assert.equal(await io.crc32Async(src, seed), zlibCrc32(src, seed));
    }
    // Many at once complete, each with its own result (the rescuing worker may finish some out of order).
    const srcs = Array.from({ length: 40 }, (_, i) => crypto.randomBytes(MiB - i * 1000));
    const dsts = srcs.map((s) => Buffer.alloc(s.length));
    const crcs = await Promise.all(srcs.map((s, i) => io.copyPageCrc(s, dsts[i]!, i)));
    crcs.forEach((c, i) => assert.equal(c, zlibCrc32(srcs[i]!, i)));
    dsts.forEach((d, i) => assert.ok(d.equals(srcs[i]!)));
  });

  it('jobs still complete when every CPU is busy: the nice +5 worker rescues what the SCHED_IDLE worker cannot run', async function () {
    if (process.env.POOLKV_PAGEIO_NICE !== undefined && process.env.POOLKV_PAGEIO_NICE !== 'idle') this.skip();
    assert.equal(io.pageIoStats().mode, 'idle');
    // One busy loop per CPU at normal priority leaves the idle-class worker no CPU at all.
    const burners = os.cpus().map(() => spawn(process.execPath, ['-e', 'for (;;) {}'], { stdio: 'ignore' }));
    try {
      await new Promise((resolve) => setTimeout(resolve, 300));
      const before = io.pageIoStats().rescued;
      const srcs = Array.from({ length: 24 }, (_, i) => crypto.randomBytes(MiB - i * 777));
      const dsts = srcs.map((s) => Buffer.alloc(s.length));
      const t0 = Date.now();
      const crcs = await Promise.all(srcs.map((s, i) => io.copyPageCrc(s, dsts[i]!, i)));
      const elapsed = Date.now() - t0;
      crcs.forEach((c, i) => assert.equal(c, zlibCrc32(srcs[i]!, i)));
      dsts.forEach((d, i) => assert.ok(d.equals(srcs[i]!)));
      assert.ok(io.pageIoStats().rescued > before, 'the rescuer took jobs while the CPUs were busy');
      assert.ok(elapsed < 10000, `24 MiB of copies took ${elapsed} ms under full CPU load`);
    } finally {
      for (const b of burners) b.kill('SIGKILL');
    }
  });

  it('rejects bad arguments without queueing anything', () => {
    const b = Buffer.alloc(100);
    assert.throws(() => io.copyPageCrcSync(b, Buffer.alloc(99)), /shorter/);
    assert.throws(() => io.copyPageCrc(b, Buffer.alloc(99)), /shorter/);
    assert.throws(() => io.copyPageCrc(b.subarray(0, 50), b.subarray(40, 100)), /overlap/);
    assert.throws(() => io.crc32('abc' as unknown as Buffer), /Buffer/);
    assert.throws(() => io.crc32Async(new Uint16Array(4) as unknown as Buffer), /Buffer/);
    assert.throws(() => io.crc32(b, 'x' as unknown as number), /seed/);
    assert.throws(() => io.pwritev(-1, [b], 0), /non-negative/);
    assert.throws(() => io.pwritev(1, [b, 'x' as unknown as Buffer], 0), /every buffer/);
    assert.throws(() => io.pwritev(1, [b], 1.5), /non-negative integers/);
  });

  it('pwritev writes every buffer at the position; errors carry errno codes', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'poolkv-pageio-'));
    try {
      const file = path.join(dir, 'f');
      const fd = fs.openSync(file, 'w+');
      try {
        const parts = [Buffer.from('head'), crypto.randomBytes(3 * MiB + 5), Buffer.alloc(0), Buffer.from('tail')];
        const total = parts.reduce((n, p) => n + p.length, 0);
        assert.equal(await io.pwritev(fd, parts, 4096, 0, 4096 + total), total);
        assert.equal(await io.pwritev(fd, [Buffer.from('XY')], 1), 2);
        const got = fs.readFileSync(file);
        assert.equal(got.length, 4096 + total);
        assert.ok(got.subarray(4096).equals(Buffer.concat(parts)));
        assert.equal(got.toString('latin1', 0, 4), '\0XY\0');
      } finally {
        fs.closeSync(fd);
      }
      const ro = fs.openSync(path.join(dir, 'f'), 'r');
      try {
        await assert.rejects(io.pwritev(ro, [Buffer.from('x')], 0), (err: NodeJS.ErrnoException) => {
          assert.equal(err.code, 'EBADF');
          assert.equal(err.errno, 9);
          assert.match(err.message, /^pwritev: /);
          return true;
        });
      } finally {
        fs.closeSync(ro);
      }
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it('CopyGroup.cancel(): queued jobs reject with "cancelled" and leave their buffers alone; other groups go on', async () => {
    const group = new io.CopyGroup();
    const other = new io.CopyGroup();
    const src = crypto.randomBytes(MiB);
    const dsts = Array.from({ length: 64 }, () => Buffer.alloc(MiB));
    const results = dsts.map((d) => group.copyPageCrc(src, d, 0).then(() => 'ok', (e: Error) => e.message));
    const others = [other.copyPageCrc(src, Buffer.alloc(MiB), 0), other.crc32Async(src, 1)];
    group.cancel();
    assert.equal(group.cancelled, true);
    const ran = group.jobsRun;
    // After cancel() returns, nothing in the group runs any more: every buffer is either copied or untouched.
    const snapshot = dsts.map((d) => Buffer.from(d));
    const settled = await Promise.all(results);
    assert.equal(settled.filter((s) => s === 'ok').length, ran);
    assert.ok(settled.every((s) => s === 'ok' || s === 'cancelled'), settled.join(','));
    dsts.forEach((d, i) => {
      assert.ok(d.equals(snapshot[i]!), `buffer ${i} changed after cancel()`);
      assert.ok(d.equals(src) || d.every((b) => b === 0), `buffer ${i} is whole or untouched`);
    });
    assert.equal(group.jobsRun, ran);
    assert.equal(await others[0], zlibCrc32(src));
    assert.equal(await others[1], zlibCrc32(src, 1));
    await assert.rejects(group.crc32Async(src), /cancelled/);
  });
});

describe('page I/O: the slicing-by-8 fallback (POOLKV_PAGEIO_NO_SIMD=1)', function () {
  this.timeout(60000);
  it('equals zlib.crc32 too (what CPUs without PCLMULQDQ run)', function () {
    if (pageIo() === null) this.skip();
    const script = `
      const { pageIo } = require(${JSON.stringify(path.join(__dirname, '../src/transport/native'))});
      const { crc32 } = require('zlib');
      const crypto = require('crypto');
      const io = pageIo();
      if (io.crc32Implementation !== 'slicing-by-8') throw new Error('still ' + io.crc32Implementation);
      for (let i = 0; i < 400; i++) {
        const len = i < 300 ? i : Math.floor(Math.random() * 3 * 1048576);
        const b = crypto.randomBytes(len + 9).subarray(i % 9, (i % 9) + len);
        const seed = (i * 2654435761) >>> 0;
        if (io.crc32(b, seed) !== crc32(b, seed)) throw new Error('mismatch at length ' + len);
        const d = Buffer.alloc(len + 5).subarray(i % 5, (i % 5) + len);
        if (io.copyPageCrcSync(b, d, seed) !== crc32(b, seed) || !d.equals(b)) throw new Error('copy mismatch at length ' + len);
      }
      console.log('ok');`;
    const out = execFileSync(process.execPath, ['-e', script], { env: { ...process.env, POOLKV_PAGEIO_NO_SIMD: '1' }, encoding: 'utf8' });
    assert.equal(out.trim(), 'ok');
  });
});
