// The RDMA Link (src/transport/rdma-link.ts) against real verbs: run inside
// ../shared/rxe-vm/run (soft-RoCE rxe0 at $RXE_ADDR), e.g.
//   npx tsc -p . && ../shared/rxe-vm/run -- npx mocha --no-config --exit --timeout 60000 dist/test/rdma/rdma-link.test.js
// Elsewhere the RDMA suite is skipped (or fails with POOLKV_REQUIRE_RDMA=1) and
// only the host-side availability check runs.
//
// This file doubles as the child peer of the kill/memlock tests: run by node
// with POOLKV_RDMA_TEST_PEER set, it plays that peer instead of defining tests.
import * as assert from 'assert';
import { spawn, type ChildProcess } from 'child_process';
import * as crypto from 'crypto';
import * as fs from 'fs';
import * as path from 'path';
import { monitorEventLoopDelay } from 'perf_hooks';
import { Worker } from 'worker_threads';
import { SharedMapping } from '../../src/pool/mapping';
import { LINK_MAX_MESSAGE, type Link, type LinkListener } from '../../src/transport/link';
import {
  RDMA_STAGING_MAX_BYTES,
  connectRdma,
  listenRdma,
  rdmaStats,
  rdmaUnavailableReason,
  registerRdmaRegion,
} from '../../src/transport/rdma-link';
import { rng } from '../helpers/random';
import { describeRdma, rdmaTestEnv } from '../helpers/rdma-env';

const MiB = 1 << 20;

// ---- helpers --------------------------------------------------------------------

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

function withTimeout<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for ${what}`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

async function eventually(check: () => boolean, ms: number, what: string): Promise<void> {
  const deadline = Date.now() + ms;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await sleep(20);
  }
}

/** Collects a link's messages so a test can await them one by one. */
class Inbox {
  private readonly queue: Buffer[] = [];
  private readonly waiters: Array<(message: Buffer) => void> = [];

  constructor(link: Link) {
    link.onMessage((message) => {
      const waiter = this.waiters.shift();
      if (waiter) waiter(message);
      else this.queue.push(message);
    });
  }

  next(what = 'a message', ms = 30000): Promise<Buffer> {
    const ready = this.queue.shift();
    if (ready) return Promise.resolve(ready);
    return withTimeout(new Promise<Buffer>((resolve) => this.waiters.push(resolve)), ms, what);
  }

  async expectText(text: string): Promise<void> {
    assert.strictEqual((await this.next(`message "${text}"`)).toString(), text);
  }
}

/** Records onClose calls, to check a link reports its end exactly once. */
function closeLog(link: Link): string[] {
  const reasons: string[] = [];
  link.onClose((reason) => reasons.push(reason));
  return reasons;
}

function fdCount(): number {
  return fs.readdirSync('/proc/self/fd').length;
}

function threadCount(): number {
  return fs.readdirSync('/proc/self/task').length;
}

/** CPU time (ms) the JS main thread itself has used (utime + stime of /proc/self/task/<pid>). */
function mainThreadCpuMs(): number {
  const stat = fs.readFileSync(`/proc/self/task/${process.pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  const ticks = Number(fields[11]) + Number(fields[12]); // fields 14 and 15 of stat(5)
  return (ticks * 1000) / 100; // USER_HZ is 100 on Linux
}

function messageBody(index: number, size: number): Buffer {
  const body = Buffer.alloc(size);
  for (let j = 0; j < size; j++) body[j] = (index * 31 + j) & 0xff;
  if (size >= 4) body.writeUInt32LE(index, 0);
  return body;
}

function spawnPeer(mode: string, env: Record<string, string> = {}, wrapper?: (node: string, script: string) => string[]): ChildProcess {
  const script = __filename;
  const args = wrapper ? wrapper(process.execPath, script) : [process.execPath, script];
  return spawn(args[0]!, args.slice(1), {
    env: { ...process.env, ...env, POOLKV_RDMA_TEST_PEER: mode },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
}

/** The first stdout line of `child` matching `pattern` (stderr is kept for the error). */
function childLine(child: ChildProcess, pattern: RegExp, ms: number): Promise<RegExpExecArray> {
  return withTimeout(
    new Promise<RegExpExecArray>((resolve, reject) => {
      let out = '';
      let err = '';
      child.stdout!.on('data', (chunk: Buffer) => {
        out += chunk.toString();
        const match = pattern.exec(out);
        if (match) resolve(match);
      });
      child.stderr!.on('data', (chunk: Buffer) => (err += chunk.toString()));
      child.on('exit', (code, signal) => reject(new Error(`peer exited (${code ?? signal}) before printing ${pattern}: ${out}${err}`)));
    }),
    ms,
    `the peer's ${pattern}`,
  );
}

// ---- host side: runs everywhere -----------------------------------------------------

function defineSuites(): void {
  describe('RDMA link availability', function () {
    it('explains why RDMA is unusable, and connect/listen/register reject with that reason', async function () {
      const reason = rdmaUnavailableReason();
      if (reason === null) {
        // A usable device (the VM): the reason must then be null and the env helper agree.
        assert.strictEqual(rdmaTestEnv().available, (process.env.RXE_ADDR ?? '') !== '');
        return;
      }
      assert.match(reason, /no RDMA device|not compiled|rdma_cm unavailable|addon/);
      assert.strictEqual(rdmaTestEnv().available, false);
      await assert.rejects(connectRdma({ host: '198.18.0.1', port: 7070, timeoutMs: 2000 }), (err: Error) => {
        assert.match(err.message, /^cannot connect over RDMA to 198\.18\.0\.1:7070: /);
        assert.ok(err.message.includes(reason), err.message);
        return true;
      });
      await assert.rejects(listenRdma({ host: '198.18.0.1', port: 0, onLink: () => {} }), (err: Error) => {
        assert.match(err.message, /^cannot listen for RDMA on 198\.18\.0\.1:0: /);
        assert.ok(err.message.includes(reason), err.message);
        return true;
      });
      await assert.rejects(registerRdmaRegion([Buffer.alloc(4096)], '198.18.0.1'), (err: Error) => {
        assert.ok(err.message.includes(reason), err.message);
        return true;
      });
    });
  });

  describeRdma('RDMA link over rxe', function () {
    const host = rdmaTestEnv().host;
    const cleanups: Array<() => unknown> = [];

    afterEach(async function () {
      while (cleanups.length > 0) {
        try {
          await cleanups.pop()!();
        } catch {
          // best effort
        }
      }
    });

    async function listen(onLink: (link: Link) => void): Promise<LinkListener> {
      const listener = await listenRdma({ host, port: 0, onLink });
      cleanups.push(() => listener.close());
      return listener;
    }

    /** A listener, a connected client link and the server's end of it. */
    async function openPair(): Promise<{ listener: LinkListener; client: Link; server: Link }> {
      let accepted!: (link: Link) => void;
      const serverLink = new Promise<Link>((resolve) => (accepted = resolve));
      const listener = await listen((link) => accepted(link));
      const client = await connectRdma({ host, port: listener.port, timeoutMs: 20000 });
      cleanups.push(() => client.close());
      const server = await withTimeout(serverLink, 20000, 'the accepted link');
      cleanups.push(() => server.close());
      return { listener, client, server };
    }

    it('connects, carries messages both ways in order at every size, and rejects oversize ones', async function () {
      const { client, server } = await openPair();
      assert.strictEqual(client.kind, 'rdma');
      assert.match(client.description, /^rdma 198\.18\.\d+\.\d+:\d+ \(rxe\d+\)$|^rdma .+ \(.+\)$/);
      assert.match(server.remoteAddress, /:\d+$/);
      const count = 400;
      const random = rng(7);
      const sizes = Array.from({ length: count }, (_, i) =>
        i === 0 ? 0 : i === 1 ? LINK_MAX_MESSAGE : 1 + Math.floor(random() * LINK_MAX_MESSAGE),
      );
      const clientInbox = new Inbox(client);
      const serverInbox = new Inbox(server);
      const sends: Array<Promise<void>> = [];
      for (let i = 0; i < count; i++) {
        sends.push(client.send(messageBody(i, sizes[i]!)));
        sends.push(server.send(messageBody(i + 100000, sizes[count - 1 - i]!)));
      }
      for (let i = 0; i < count; i++) {
        assert.deepStrictEqual(await serverInbox.next(`client message ${i}`), messageBody(i, sizes[i]!), `client message ${i}`);
        assert.deepStrictEqual(
          await clientInbox.next(`server message ${i}`),
          messageBody(i + 100000, sizes[count - 1 - i]!),
          `server message ${i}`,
        );
      }
      await Promise.all(sends);
      await assert.rejects(client.send(Buffer.alloc(LINK_MAX_MESSAGE + 1)), /4097 bytes exceeds LINK_MAX_MESSAGE \(4096 bytes\)/);
      // Still usable after the refusal.
      await client.send(Buffer.from('still here'));
      await serverInbox.expectText('still here');
    });

    it('write() places random data in the exposed region before a message sent after it arrives', async function () {
      this.timeout(180000);
      const { client, server } = await openPair();
      const clientInbox = new Inbox(client);
      const serverInbox = new Inbox(server);
      const region = Buffer.alloc(32 * MiB);
      await server.expose(1, [region]);
      await server.send(Buffer.from('exposed'));
      await clientInbox.expectText('exposed');
      const before = rdmaStats();

      // Tens of MiB from ordinary (unregistered) memory, announced without waiting for the write.
      const big = crypto.randomBytes(24 * MiB);
      const bigWrite = client.write(1, 0, [big]);
      const bigSent = client.send(Buffer.from('after big'));
      await serverInbox.expectText('after big');
      assert.ok(region.subarray(0, big.length).equals(big), 'the 24 MiB write was in place when its message arrived');
      await Promise.all([bigWrite, bigSent]);

      // Several parts (one a registered staging buffer) at an odd offset.
      assert.strictEqual(client.acquireStaging(RDMA_STAGING_MAX_BYTES + 1), null);
      const staging = client.acquireStaging(MiB);
      assert.ok(staging, 'a staging buffer is available');
      assert.strictEqual(staging.length, MiB);
      crypto.randomFillSync(staging);
      const parts = [crypto.randomBytes(1000), staging, crypto.randomBytes(3 * MiB + 7), Buffer.alloc(0), crypto.randomBytes(5)];
      const offset = 24 * MiB + 12345;
      const partsWrite = client.write(1, offset, parts);
      const partsSent = client.send(Buffer.from('after parts'));
      await serverInbox.expectText('after parts');
      const joined = Buffer.concat(parts);
      assert.ok(region.subarray(offset, offset + joined.length).equals(joined), 'the multi-part write was in place');
      await Promise.all([partsWrite, partsSent]);
      client.releaseStaging(staging);
      const after = rdmaStats();
      assert.ok(after.writeBytesZeroCopy - before.writeBytesZeroCopy >= MiB, 'the staging part went out without a copy');
      assert.ok(after.writeBytesCopied - before.writeBytesCopied >= 24 * MiB, 'plain memory went through the bounce buffers');

      // Many small writes, then one message: all of them are in place by then.
      const small: Array<{ at: number; data: Buffer }> = [];
      const writes: Array<Promise<void>> = [];
      for (let k = 0; k < 200; k++) {
        const data = crypto.randomBytes(1 + (k % 700));
        const at = 28 * MiB + k * 1000;
        small.push({ at, data });
        writes.push(client.write(1, at, [data]));
      }
      const smallSent = client.send(Buffer.from('after small'));
      await serverInbox.expectText('after small');
      for (const { at, data } of small) assert.ok(region.subarray(at, at + data.length).equals(data), `small write at ${at}`);
      await Promise.all([...writes, smallSent]);
      // An empty write resolves and moves nothing.
      await client.write(1, 0, []);
    });

    it('writes into a region made of several views, and rejects writes that do not fit', async function () {
      const { client, server } = await openPair();
      const clientInbox = new Inbox(client);
      const serverInbox = new Inbox(server);
      const backing = Buffer.alloc(6 * MiB);
      const views = [backing.subarray(0, 2 * MiB), backing.subarray(2 * MiB, 3 * MiB + 4096), backing.subarray(3 * MiB + 4096)];
      await server.expose(2, views);
      await assert.rejects(server.expose(3, [Buffer.alloc(8192), Buffer.alloc(8192)]), /region is not contiguous/);
      await server.send(Buffer.from('exposed'));
      await clientInbox.expectText('exposed');

      const data = crypto.randomBytes(3 * MiB);
      const offset = 2 * MiB - 1000; // crosses both view boundaries
      const written = client.write(2, offset, [data]);
      await client.send(Buffer.from('written'));
      await serverInbox.expectText('written');
      await written;
      assert.ok(backing.subarray(offset, offset + data.length).equals(data));
      assert.ok(views[1]!.subarray(0, 100).equals(data.subarray(1000, 1100)), 'visible through the middle view');

      await assert.rejects(client.write(2, 6 * MiB - 10, [Buffer.alloc(20)]), /write of 20 bytes at offset 6291446 does not fit region 2 \(6291456 bytes\)/);
      await assert.rejects(client.write(2, 7 * MiB, [Buffer.alloc(1)]), /does not fit region 2/);
      await assert.rejects(client.write(99, 0, [Buffer.alloc(1)]), /the peer has not exposed region 99/);
      await assert.rejects(client.write(2, -1, [Buffer.alloc(1)]), /offset must be a non-negative safe integer/);
      // The refusals left the link working.
      const tail = crypto.randomBytes(10);
      await client.write(2, 6 * MiB - 10, [tail]);
      await client.send(Buffer.from('tail'));
      await serverInbox.expectText('tail');
      assert.ok(backing.subarray(6 * MiB - 10).equals(tail));
    });

    it('registerRdmaRegion registers a multi-view region once; expose() and writes from it reuse that', async function () {
      const backing = Buffer.alloc(5 * MiB);
      const views = [backing.subarray(0, 2 * MiB), backing.subarray(2 * MiB, 4 * MiB), backing.subarray(4 * MiB)];
      const start = rdmaStats();
      const first = await registerRdmaRegion(views, host);
      assert.deepStrictEqual(first, { device: first.device, bytes: 5 * MiB, registered: true });
      assert.match(first.device, /^rxe\d+$/);
      const afterFirst = rdmaStats();
      assert.strictEqual(afterFirst.registrations, start.registrations + 1);
      assert.strictEqual(afterFirst.regionBytes, start.regionBytes + 5 * MiB);
      const second = await registerRdmaRegion(views, host);
      assert.strictEqual(second.registered, false);
      await assert.rejects(registerRdmaRegion([Buffer.alloc(4096), Buffer.alloc(4096)], host), /not contiguous/);

      const { client, server } = await openPair();
      const serverInbox = new Inbox(server);
      const clientInbox = new Inbox(client);
      const beforeExpose = rdmaStats();
      await server.expose(4, views);
      await server.expose(5, [views[1]!]);
      const afterExpose = rdmaStats();
      assert.strictEqual(afterExpose.registrations, beforeExpose.registrations, 'expose reused the registration');
      assert.strictEqual(afterExpose.reuseHits, beforeExpose.reuseHits + 2);
      await server.send(Buffer.from('exposed'));
      await clientInbox.expectText('exposed');

      // A write whose source is the registered region itself goes out without a copy.
      crypto.randomFillSync(views[0]!);
      const target = Buffer.alloc(2 * MiB);
      await client.expose(6, [target]);
      await client.send(Buffer.from('target'));
      await serverInbox.expectText('target');
      const beforeWrite = rdmaStats();
      await server.write(6, 0, [views[0]!]);
      const afterWrite = rdmaStats();
      assert.strictEqual(afterWrite.writeBytesZeroCopy - beforeWrite.writeBytesZeroCopy, 2 * MiB);
      assert.strictEqual(afterWrite.writeBytesCopied, beforeWrite.writeBytesCopied);
      await server.send(Buffer.from('done'));
      await clientInbox.expectText('done');
      assert.ok(target.equals(views[0]!));
    });

    it('registers a pool over 4 GiB once and writes across 4 GiB (set POOLKV_RDMA_TEST_POOL_GIB, e.g. 5, and run --mem 8G)', async function () {
      const gib = Number(process.env.POOLKV_RDMA_TEST_POOL_GIB ?? 0);
      if (!(gib > 4)) this.skip();
      this.timeout(900000);
      const size = gib * 2 ** 30;
      const pool = SharedMapping.open({ size });
      const t0 = Date.now();
      const registration = await registerRdmaRegion(pool.views, host);
      console.log(`      registered a ${gib} GiB pool (${pool.views.length} views) in ${Date.now() - t0} ms`);
      assert.deepStrictEqual(registration, { device: registration.device, bytes: size, registered: true });

      const { client, server } = await openPair();
      const clientInbox = new Inbox(client);
      const serverInbox = new Inbox(server);
      const before = rdmaStats();
      await server.expose(7, pool.views);
      assert.strictEqual(rdmaStats().registrations, before.registrations, 'expose reused the pool registration');
      await server.send(Buffer.from('exposed'));
      await clientInbox.expectText('exposed');
      const viewAt = (offset: number, length: number): Buffer => {
        const view = pool.views[Math.floor(offset / 2 ** 30)]!;
        return view.subarray(offset % 2 ** 30, (offset % 2 ** 30) + length);
      };
      const across4GiB = crypto.randomBytes(2 * MiB);
      const atEnd = crypto.randomBytes(3 * MiB);
      await client.write(7, 4 * 2 ** 30 - MiB, [across4GiB]);
      await client.write(7, size - atEnd.length, [atEnd]);
      await assert.rejects(client.write(7, size - 1, [Buffer.alloc(2)]), /does not fit region 7/);
      await client.send(Buffer.from('written'));
      await serverInbox.expectText('written');
      assert.ok(viewAt(4 * 2 ** 30 - MiB, MiB).equals(across4GiB.subarray(0, MiB)));
      assert.ok(viewAt(4 * 2 ** 30, MiB).equals(across4GiB.subarray(MiB)));
      assert.ok(viewAt(size - atEnd.length, atEnd.length).equals(atEnd));
      // The pool as a write source goes out without a copy, from beyond 4 GiB too.
      const target = Buffer.alloc(MiB);
      await client.expose(8, [target]);
      await client.send(Buffer.from('target'));
      await serverInbox.expectText('target');
      const copiedBefore = rdmaStats().writeBytesCopied;
      await server.write(8, 0, [viewAt(size - MiB, MiB)]);
      assert.strictEqual(rdmaStats().writeBytesCopied, copiedBefore);
      await server.send(Buffer.from('done'));
      await clientInbox.expectText('done');
      assert.ok(target.equals(atEnd.subarray(atEnd.length - MiB)));
    });

    it('measures write() throughput for a large region (logged), with the event loop kept free', async function () {
      this.timeout(300000);
      const loopDelay = monitorEventLoopDelay({ resolution: 10 });
      loopDelay.enable();
      const { client, server } = await openPair();
      const connectDelayMs = loopDelay.max / 1e6;
      const clientInbox = new Inbox(client);
      const size = 64 * MiB;
      const region = Buffer.alloc(size);
      await server.expose(1, [region]);
      await server.send(Buffer.from('exposed'));
      await clientInbox.expectText('exposed');
      const source = crypto.randomBytes(size);
      const plain = Buffer.from(source);
      await registerRdmaRegion([source], host);
      const rate = (ms: number): string => `${((size / MiB) / (ms / 1000)).toFixed(1)} MiB/s`;

      // Sampled only while a write is in progress (the checks in between block the loop).
      let maxDelayMs = 0;
      let jsCpuMs = 0;
      const timedWrite = async (from: Buffer): Promise<number> => {
        loopDelay.reset();
        const cpu0 = mainThreadCpuMs();
        const t0 = process.hrtime.bigint();
        await client.write(1, 0, [from]);
        const ms = Number(process.hrtime.bigint() - t0) / 1e6;
        jsCpuMs += mainThreadCpuMs() - cpu0;
        maxDelayMs = Math.max(maxDelayMs, loopDelay.max / 1e6);
        return ms;
      };
      const registeredMs = await timedWrite(source);
      assert.ok(region.equals(source));
      region.fill(0);
      const plainMs = await timedWrite(plain);
      loopDelay.disable();
      assert.ok(region.equals(plain));
      console.log(
        `      write() of ${size / MiB} MiB: registered source ${rate(registeredMs)} (${registeredMs.toFixed(0)} ms), ` +
          `plain source via bounce buffers ${rate(plainMs)} (${plainMs.toFixed(0)} ms); ` +
          `JS thread CPU ${jsCpuMs.toFixed(0)} ms over both writes; ` +
          `event-loop delay at most ${maxDelayMs.toFixed(0)} ms during the writes, ${connectDelayMs.toFixed(0)} ms during listen+connect`,
      );
      // The copies into bounce buffers and the polling run on the link's thread: the JS
      // thread only handles batched completion events. Both bounds are loose: under TCG,
      // rxe's softirq work is charged to whichever thread it interrupts, and busy vCPUs
      // leave the loop unscheduled; polling or copying on the JS thread would be ~100%.
      assert.ok(jsCpuMs < Math.max(200, 0.25 * (registeredMs + plainMs)), `the JS thread used ${jsCpuMs} ms of CPU`);
      assert.ok(maxDelayMs < 2000, `event loop blocked for ${maxDelayMs.toFixed(0)} ms`);
    });

    it('rejects a connect to a port nobody listens on, promptly and clearly', async function () {
      const listener = await listen(() => {});
      const port = listener.port;
      await listener.close();
      const t0 = Date.now();
      await assert.rejects(connectRdma({ host, port, timeoutMs: 15000 }), (err: Error) => {
        assert.match(err.message, new RegExp(`RDMA connection to ${host.replace(/\./g, '\\.')}:${port} refused \\(RDMA_CM_EVENT_REJECTED, `));
        return true;
      });
      assert.ok(Date.now() - t0 < 5000, `took ${Date.now() - t0} ms`);
    });

    it('rejects a connect to 127.0.0.1 with a hint, and honours timeoutMs', async function () {
      const t0 = Date.now();
      await assert.rejects(connectRdma({ host: '127.0.0.1', port: 7, timeoutMs: 3000 }), (err: Error) => {
        assert.match(err.message, /127\.0\.0\.1.*rdma_cm cannot use 127\.0\.0\.1/);
        return true;
      });
      assert.ok(Date.now() - t0 < 10000, `took ${Date.now() - t0} ms`);
    });

    it('close() lets what was asked before it go out, then tells the peer why (as the TCP link does)', async function () {
      const { client, server } = await openPair();
      const clientInbox = new Inbox(client);
      const region = Buffer.alloc(4 * MiB);
      await server.expose(1, [region]);
      await server.send(Buffer.from('exposed'));
      await clientInbox.expectText('exposed');
      const received: string[] = [];
      let regionAtClose: Buffer | null = null;
      const serverClosed = new Promise<string>((resolve) =>
        server.onClose((reason) => {
          regionAtClose = Buffer.from(region);
          resolve(reason);
        }),
      );
      server.onMessage((message) => received.push(message.toString()));
      const data = crypto.randomBytes(3 * MiB);
      // Nothing awaited: the close comes right behind the operations.
      const outcomes = [client.write(1, 0, [data])];
      for (let i = 0; i < 50; i++) outcomes.push(client.send(Buffer.from(`message ${i}`)));
      client.close('bye');
      const settled = await Promise.allSettled(outcomes);
      for (const outcome of settled) {
        if (outcome.status === 'rejected') assert.match((outcome.reason as Error).message, /closed: bye$/);
      }
      assert.strictEqual(await withTimeout(serverClosed, 20000, "the server's onClose"), 'peer closed the link: bye');
      assert.deepStrictEqual(received, Array.from({ length: 50 }, (_, i) => `message ${i}`));
      assert.ok(regionAtClose !== null && (regionAtClose as Buffer).subarray(0, data.length).equals(data), 'the write landed before the close');
    });

    it('a send answered by the peer closing resolves, and its continuation runs, before onClose fires', async function () {
      this.timeout(120000);
      let accepted: (link: Link) => void = () => {};
      const listener = await listen((link) => accepted(link));
      for (let round = 0; round < 20; round++) {
        const serverLink = new Promise<Link>((resolve) => (accepted = resolve));
        const client = await connectRdma({ host, port: listener.port, timeoutMs: 20000 });
        cleanups.push(() => client.close());
        const server = await withTimeout(serverLink, 20000, 'the accepted link');
        server.onMessage(() => server.close('got it'));
        let continued = false;
        const order: string[] = [];
        const closed = new Promise<void>((resolve) =>
          client.onClose((reason) => {
            order.push(`close (${reason}) after the continuation: ${continued}`);
            resolve();
          }),
        );
        // A continuation two promise hops away, like Promise.all([send, ...]).then(...).
        void Promise.all([client.send(Buffer.from('last word')), Promise.resolve()]).then(() => {
          continued = true;
        });
        await withTimeout(closed, 20000, `round ${round}: onClose`);
        assert.deepStrictEqual(order, ['close (peer closed the link: got it) after the continuation: true'], `round ${round}`);
      }
    });

    it('close() with writes in flight rejects them at once, fires onClose once on both ends, and disconnects within ~2 s', async function () {
      this.timeout(120000);
      const { client, server } = await openPair();
      const clientInbox = new Inbox(client);
      const clientCloses = closeLog(client);
      const serverCloses = closeLog(server);
      const region = Buffer.alloc(192 * MiB);
      await server.expose(1, [region]);
      await server.send(Buffer.from('exposed'));
      await clientInbox.expectText('exposed');
      const pending = client.write(1, 0, [Buffer.alloc(192 * MiB, 1)]).then(
        () => null,
        (err: Error) => err,
      );
      await sleep(50);
      const closedAt = Date.now();
      client.close('test closed it');
      client.close('again');
      const error = await pending;
      assert.ok(error, 'the write in flight was rejected');
      assert.match(error.message, /closed: test closed it$/);
      assert.ok(Date.now() - closedAt < 1500, 'rejected at once (not after the 2 s flush allowance)');
      await assert.rejects(client.send(Buffer.from('late')), /closed: test closed it/);
      await eventually(() => serverCloses.length > 0, 20000, "the server's onClose");
      // 192 MiB cannot drain within the 2 s close allowance on rxe: the close is forced.
      assert.match(serverCloses[0]!, /^peer disconnected \(RDMA_CM_EVENT_DISCONNECTED\)$|^peer closed the link: test closed it$/);
      assert.ok(Date.now() - closedAt < 6000, `the peer saw the close after ${Date.now() - closedAt} ms`);
      await sleep(200);
      assert.deepStrictEqual(clientCloses, ['test closed it']);
      assert.strictEqual(serverCloses.length, 1);
      // A handler set after the end hears about it too.
      const late = await new Promise<string>((resolve) => client.onClose(resolve));
      assert.strictEqual(late, 'test closed it');
    });

    it('a peer killed mid-transfer fails the pending writes and closes the link; new links still work', async function () {
      this.timeout(180000);
      const regionBytes = 192 * MiB;
      const child = spawnPeer('receiver', { PEER_REGION_BYTES: String(regionBytes) });
      cleanups.push(() => child.kill('SIGKILL'));
      const port = Number((await childLine(child, /PORT (\d+)/, 60000))[1]);
      const link = await connectRdma({ host, port, timeoutMs: 20000 });
      cleanups.push(() => link.close());
      const closes = closeLog(link);
      const inbox = new Inbox(link);
      await inbox.expectText('ready');
      const source = Buffer.alloc(regionBytes, 0x5a);
      const writes = [0, 1, 2].map((i) =>
        link.write(1, (i * regionBytes) / 3, [source.subarray((i * regionBytes) / 3, ((i + 1) * regionBytes) / 3)]).then(
          () => null,
          (err: Error) => err,
        ),
      );
      await sleep(300);
      child.kill('SIGKILL');
      const killedAt = Date.now();
      const results = await withTimeout(Promise.all(writes), 60000, 'the writes to fail');
      console.log(`      peer killed: writes failed ${Date.now() - killedAt} ms later: ${closes[0] ?? '(no onClose yet)'}`);
      const failures = results.filter((err): err is Error => err !== null);
      assert.ok(failures.length > 0, 'writes were still pending when the peer died');
      for (const err of failures) {
        assert.match(err.message, /closed: peer disconnected \(RDMA_CM_EVENT_DISCONNECTED\)|closed: RDMA WRITE failed/);
      }
      await eventually(() => closes.length > 0, 10000, 'onClose');
      await sleep(200);
      assert.strictEqual(closes.length, 1, `onClose fired ${closes.length} times`);
      assert.ok(failures[0]!.message.endsWith(closes[0]!), 'the writes name the same reason as onClose');
      await assert.rejects(link.write(1, 0, [Buffer.alloc(1)]), /closed/);

      // This process carries on: a fresh link moves data.
      const { client, server } = await openPair();
      const region = Buffer.alloc(MiB);
      await server.expose(1, [region]);
      await server.send(Buffer.from('exposed'));
      await new Inbox(client).expectText('exposed');
      const data = crypto.randomBytes(MiB);
      await client.write(1, 0, [data]);
      assert.ok(region.equals(data));
    });

    it('a worker thread terminated mid-transfer, with messages arriving, takes its link down and not the process', async function () {
      this.timeout(120000);
      let accepted!: (link: Link) => void;
      const serverLink = new Promise<Link>((resolve) => (accepted = resolve));
      const listener = await listen((link) => accepted(link));
      // The worker connects, takes staging memory, and writes 64 MiB once told the region is
      // exposed. Termination interrupting the JS of an event delivery used to abort the
      // whole process (node-addon-api cannot rethrow the termination).
      const worker = new Worker(
        `
        const { parentPort, workerData } = require('worker_threads');
        const { connectRdma } = require(workerData.module);
        (async () => {
          const link = await connectRdma({ host: workerData.host, port: workerData.port, timeoutMs: 20000 });
          const held = [0, 1, 2, 3].map(() => link.acquireStaging(1 << 20));
          const staging = held[0];
          parentPort.postMessage('staging ' + held.map((b) => b.byteOffset).join(','));
          link.onMessage((message) => {
            // Busy in the callback, so terminate() lands inside an event delivery.
            const until = Date.now() + 20;
            while (Date.now() < until);
            if (message.toString() !== 'exposed') return;
            link.write(1, 0, [Buffer.alloc(64 << 20, 7), staging]).catch(() => {});
            parentPort.postMessage('writing');
          });
          parentPort.postMessage('connected');
        })().catch((err) => parentPort.postMessage('failed: ' + err.message));
        `,
        {
          eval: true,
          workerData: { module: path.resolve(__dirname, '../../src/transport/rdma-link.js'), host, port: listener.port },
        },
      );
      cleanups.push(() => worker.terminate());
      const fromWorker: string[] = [];
      worker.on('message', (message: string) => fromWorker.push(message));
      const server = await withTimeout(serverLink, 30000, "the worker's link");
      const serverCloses = closeLog(server);
      await eventually(() => fromWorker.includes('connected'), 30000, 'the worker to connect');
      // The staging arena is one per device for the process: the worker's slices and ours never overlap.
      const workerOffsets = fromWorker.find((m) => m.startsWith('staging '))!.slice(8).split(',').map(Number);
      assert.strictEqual(workerOffsets.length, 4);
      const ours: Buffer[] = [];
      for (let buffer = server.acquireStaging(MiB); buffer !== null; buffer = server.acquireStaging(MiB)) ours.push(buffer);
      const freeWhileWorkerHolds = ours.length;
      for (const buffer of ours) {
        for (const offset of workerOffsets) {
          assert.ok(buffer.byteOffset + MiB <= offset || offset + MiB <= buffer.byteOffset, `our slice at ${buffer.byteOffset} overlaps the worker's at ${offset}`);
        }
      }
      for (const buffer of ours) server.releaseStaging(buffer);
      await server.expose(1, [Buffer.alloc(66 * MiB)]);
      await server.send(Buffer.from('exposed'));
      await eventually(() => fromWorker.includes('writing'), 30000, 'the worker to start writing');
      // Keep events flowing towards the worker while it is torn down.
      for (let i = 0; i < 300; i++) server.send(Buffer.alloc(4096, i)).catch(() => {});
      await sleep(100);
      await worker.terminate();
      await eventually(() => serverCloses.length > 0, 20000, "the server's onClose");
      assert.match(serverCloses[0]!, /peer disconnected|peer closed the link/);
      // The worker's staging slices went with it.
      const { client: fresh } = await openPair();
      const again: Buffer[] = [];
      for (let buffer = fresh.acquireStaging(MiB); buffer !== null; buffer = fresh.acquireStaging(MiB)) again.push(buffer);
      assert.strictEqual(again.length, freeWhileWorkerHolds + 4);
      for (const buffer of again) fresh.releaseStaging(buffer);
      // This process is fine and carries on.
      const { client, server: other } = await openPair();
      const inbox = new Inbox(other);
      await client.send(Buffer.from('after the worker'));
      await inbox.expectText('after the worker');
    });

    it('names ulimit -l when the memlock limit is too low for a registration', async function () {
      this.timeout(60000);
      // Root has CAP_IPC_LOCK, which lifts the limit; the peer drops it and lowers the limit.
      const child = spawnPeer('memlock', {}, (node, script) => [
        'sh',
        '-c',
        `ulimit -l 1024 && exec setpriv --inh-caps=-ipc_lock --bounding-set=-ipc_lock "${node}" "${script}"`,
      ]);
      cleanups.push(() => child.kill('SIGKILL'));
      const line = await childLine(child, /RESULT (.*)\n/, 60000);
      const result = JSON.parse(line[1]!) as { error?: string };
      assert.ok(result.error, 'registration failed');
      assert.match(
        result.error,
        /^cannot register 16777216 bytes of pool memory for RDMA: memlock limit \(ulimit -l\) is 1024 KiB; raise it to at least \d+ KiB \(e\.g\. LimitMEMLOCK=infinity in systemd, or ulimit -l unlimited\)/,
      );
    });

    it('survives 50 connect/close cycles without leaking descriptors, threads or pinned memory', async function () {
      this.timeout(300000);
      let accepted: (link: Link) => void = () => {};
      const listener = await listen((link) => accepted(link));
      const cycle = async (i: number): Promise<void> => {
        const serverLink = new Promise<Link>((resolve) => (accepted = resolve));
        const client = await connectRdma({ host, port: listener.port, timeoutMs: 20000 });
        const server = await withTimeout(serverLink, 20000, 'the accepted link');
        const serverClosed = new Promise<string>((resolve) => server.onClose(resolve));
        const inbox = new Inbox(server);
        await client.send(Buffer.from(`hello ${i}`));
        await inbox.expectText(`hello ${i}`);
        if (i % 2 === 0) client.close();
        else server.close();
        await withTimeout(serverClosed, 20000, "the server's onClose");
        client.close();
      };
      const settled = async (): Promise<{ fds: number; threads: number; pinned: number }> => {
        await sleep(300);
        return { fds: fdCount(), threads: threadCount(), pinned: rdmaStats().pinnedBytes };
      };
      await cycle(-1); // warm-up: lazily created libuv/verbs state
      const before = await settled();
      const t0 = Date.now();
      for (let i = 0; i < 50; i++) await cycle(i);
      const elapsed = Date.now() - t0;
      await eventually(() => fdCount() <= before.fds + 2 && rdmaStats().pinnedBytes === before.pinned, 20000, 'descriptors and pinned memory to settle');
      await eventually(() => threadCount() <= before.threads + 1, 20000, 'engine threads to be joined');
      const after = await settled();
      console.log(`      50 cycles in ${elapsed} ms; fds ${before.fds} -> ${after.fds}, threads ${before.threads} -> ${after.threads}, pinned ${before.pinned} -> ${after.pinned}`);
      // Listeners come and go as cleanly.
      for (let i = 0; i < 10; i++) {
        const extra = await listenRdma({ host, port: 0, onLink: () => {} });
        await extra.close();
      }
      await eventually(() => fdCount() <= before.fds + 2 && threadCount() <= before.threads + 1, 20000, 'listener resources to be released');
    });
  });
}

// ---- child peer -------------------------------------------------------------------

async function runPeer(mode: string): Promise<void> {
  const host = process.env.RXE_ADDR ?? '';
  if (mode === 'receiver') {
    // Exposes a region to whoever connects, then waits to be killed.
    const region = Buffer.alloc(Number(process.env.PEER_REGION_BYTES));
    const listener = await listenRdma({
      host,
      port: 0,
      onLink: (link) => {
        void link.expose(1, [region]).then(() => link.send(Buffer.from('ready')));
      },
    });
    process.stdout.write(`PORT ${listener.port}\n`);
    setInterval(() => {}, 60000);
    return;
  }
  if (mode === 'memlock') {
    let result: { error?: string; ok?: boolean };
    try {
      await registerRdmaRegion([Buffer.alloc(16 * MiB)], host);
      result = { ok: true };
    } catch (err) {
      result = { error: (err as Error).message };
    }
    process.stdout.write(`RESULT ${JSON.stringify(result)}\n`);
    process.exit(0);
  }
  throw new Error(`unknown peer mode ${mode}`);
}

const peerMode = process.env.POOLKV_RDMA_TEST_PEER;
if (peerMode) {
  runPeer(peerMode).catch((err: Error) => {
    process.stderr.write(`${err.stack ?? err.message}\n`);
    process.exit(1);
  });
} else {
  defineSuites();
}
