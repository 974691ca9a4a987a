// End-to-end scenarios of shipping snapshots to a poolkv-receiver and
// loading them back (issue 4, sections 2 and 3), written once for any
// transport: test/peer-snapshot-tcp.test.ts runs them over TCP on loopback,
// test/rdma/peer-snapshot-rdma.test.ts over soft-RoCE in the RDMA VM (with
// smaller images: rxe moves ~0.6 Gb/s and the VM is slower).
//
// Everything is real: the receiver and the servers are child processes,
// data goes through redis clients, failures are real kills.
import { strict as assert } from 'assert';
import * as fs from 'fs';
import * as path from 'path';
import { IMAGE_FORMAT_VERSION, IMAGE_HEADER_BYTES } from '../../src/snapshot/image';
import type { Link } from '../../src/transport/link';
import { connectLink } from '../../src/transport/links';
import { type Message, MessageChannel, PROTOCOL_VERSION } from '../../src/transport/protocol';
import { connect, type DatasetModel, type DatasetSpec, keyCount, readDataset, sortedModel, writeDataset } from './datasets';
import { encodeCommand, freePort, rawCommand, type RedisProcess } from './processes';
import { startPoolkvWithin } from './poolkv-start';
import { type ReceiverProcess, startReceiver } from './receiver';

const TOKEN = 'peer-test-token-0123456789';
const MiB = 1024 * 1024;
/** A "big" value: just under a page with its entry, so each takes one 1 MiB pool page. */
const BIG = 1000 * 1024;

export interface PeerScenarioOptions {
  /** Size of the "big" dataset used to catch a transfer in the middle (MiB). */
  bigMiB?: number;
  /** Size of the dataset for the -LOADING check (MiB). */
  loadingMiB?: number;
  /** Factor on the other datasets' key counts (slow transports, slow VMs). */
  scale?: number;
  /** How long a server may take to answer PONG (a load over soft-RoCE in a TCG VM is slow). */
  startTimeoutMs?: number;
}

async function cmd(port: number, ...args: string[]): Promise<string> {
  return (await rawCommand(port, args, { timeoutMs: 60000 })).toString('latin1');
}

async function info(port: number, section = 'persistence'): Promise<Map<string, string>> {
  const text = await cmd(port, 'INFO', section);
  const fields = new Map<string, string>();
  for (const line of text.split('\r\n')) {
    const at = line.indexOf(':');
    if (at > 0 && !line.startsWith('#') && !line.startsWith('$')) fields.set(line.slice(0, at), line.slice(at + 1));
  }
  return fields;
}

async function waitFor(what: string, check: () => boolean | Promise<boolean>, timeoutMs = 60000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** Wait until the server's log shows `pattern` (log lines can reach us after the reply that followed them). */
async function logged(server: RedisProcess, pattern: RegExp): Promise<void> {
  await waitFor(`the server log to show ${String(pattern)}:\n${server.output().slice(-3000)}`, () => pattern.test(server.output()), 10000)
    .catch(() => assert.match(server.output(), pattern));
}

/** BGSAVE, wait for it to end; INFO persistence afterwards. */
async function bgsave(server: RedisProcess): Promise<Map<string, string>> {
  assert.equal(await cmd(server.port, 'BGSAVE'), '+Background saving started\r\n');
  await waitFor('the background save to end', async () => (await info(server.port)).get('rdb_bgsave_in_progress') === '0');
  return info(server.port);
}

/** Whether files in `dir` can be opened with O_DIRECT (not on tmpfs, for one). */
function directSupported(dir: string): boolean {
  const probe = path.join(dir, `.direct-probe-${process.pid}`);
  try {
    fs.closeSync(fs.openSync(probe, fs.constants.O_WRONLY | fs.constants.O_CREAT | fs.constants.O_DIRECT, 0o600));
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EINVAL') return false;
    throw err;
  } finally {
    fs.rmSync(probe, { force: true });
  }
}

/** The snapshot names with a directory under the receiver's DIR (its lock file aside). */
function imageNames(dir: string): string[] {
  return fs.readdirSync(dir, { withFileTypes: true }).filter((e) => e.isDirectory()).map((e) => e.name).sort();
}

/** A HELLO the way a server sends it, with any field overridden. */
function hello(overrides: Partial<Extract<Message, { type: 'hello' }>>): Message {
  return {
    type: 'hello', protocolVersion: PROTOCOL_VERSION, role: 'load', name: 'probe', token: Buffer.from(TOKEN),
    formatVersion: IMAGE_FORMAT_VERSION, header: null, ...overrides,
  };
}

export function definePeerScenarios(transport: 'tcp' | 'rdma', host: string, options: PeerScenarioOptions = {}): void {
  const bigMiB = options.bigMiB ?? (transport === 'tcp' ? 300 : 16);
  const loadingMiB = options.loadingMiB ?? (transport === 'tcp' ? 160 : 16);
  const scale = options.scale ?? (transport === 'tcp' ? 1 : 0.25);
  const n = (count: number): number => Math.max(1, Math.round(count * scale));
  const startTimeoutMs = options.startTimeoutMs ?? (transport === 'tcp' ? 15000 : 150000);
  const startPoolkv = (args: string[]): Promise<RedisProcess> => startPoolkvWithin(args, startTimeoutMs);
  /** A pool for about `mib` MiB of data (RDMA registers the whole pool: keep it no bigger than needed). */
  const poolFor = (mib: number): string => `${Math.max(64, 2 ** Math.ceil(Math.log2(mib * 1.3 + 16)))}mb`;

  describe(`peer snapshots over ${transport} (${host})`, function () {
    this.timeout(240000);
    const servers: RedisProcess[] = [];
    const receivers: ReceiverProcess[] = [];

    afterEach(async () => {
      for (const s of servers.splice(0)) await s.stop().catch(() => null);
      for (const r of receivers.splice(0)) await r.kill().catch(() => {});
    });

    async function receiver(extra: { keep?: number; dir?: string; port?: number; env?: NodeJS.ProcessEnv } = {}): Promise<ReceiverProcess> {
      const r = await startReceiver({ token: TOKEN, transport, host, ...extra });
      receivers.push(r);
      return r;
    }

    function peerArgs(r: ReceiverProcess, name: string, token = TOKEN): string[] {
      return ['--snapshot-transport', transport, '--snapshot-peer', r.address, '--snapshot-auth-token', token, '--snapshot-name', name];
    }

    async function server(args: string[]): Promise<RedisProcess> {
      const s = await startPoolkv(args);
      servers.push(s);
      return s;
    }

    /** A server start that must fail: its output. */
    async function serverFails(args: string[]): Promise<string> {
      try {
        servers.push(await startPoolkv(args));
      } catch (err) {
        return (err as Error).message;
      }
      throw new Error('poolkv-server started although it should have refused');
    }

    async function loadInto(r: ReceiverProcess, name: string, pool = '64mb', token = TOKEN): Promise<RedisProcess> {
      return server(['--pool-size', pool, ...peerArgs(r, name, token), '--load-from-peer', 'yes']);
    }

    /** Talk to the receiver directly: send `message`, return its first answer (or the close reason). */
    async function probe(r: ReceiverProcess, message: Message): Promise<string> {
      const link: Link = await connectLink(transport, { host: r.host, port: r.port, timeoutMs: 5000 });
      const channel = new MessageChannel(link);
      try {
        await channel.send(message);
        const reply = await channel.next('an answer', 10000);
        return reply.type === 'refuse' || reply.type === 'failed' ? `${reply.type}: ${reply.reason}` : reply.type;
      } catch (err) {
        return `closed: ${(err as Error).message}`;
      } finally {
        link.close('probe done');
      }
    }

    it('BGSAVE ships a point-in-time image; a fresh server with load-from-peer yes has exactly that dataset', async () => {
      const r = await receiver();
      const spec: DatasetSpec = { seed: 1, dbs: 3, smallKeys: n(3000), bigKeys: n(24), bigBytes: 700 * 1024, ttlShare: 0.3 };
      const pool = poolFor(n(24) + n(3000) / 1000);
      const a = await server(['--pool-size', pool, ...peerArgs(r, 'app')]);
      const before = await writeDataset(a.port, spec);
      // BGSAVE, then in the same packet writes that must not be in the image.
      const later: Buffer[] = [];
      for (let i = 0; i < 300; i++) later.push(encodeCommand(['SET', `k:s:${i}`, `changed-${i}`]));
      for (let i = 0; i < 200; i++) later.push(encodeCommand(['SET', `after:${i}`, 'x'.repeat(i * 50)]));
      later.push(encodeCommand(['DEL', 'k:b:0', 'k:b:1']), encodeCommand(['PEXPIRE', 'k:b:2', '900000000']));
      const replies = (await rawCommand(a.port, Buffer.concat([encodeCommand(['BGSAVE']), ...later]), { replies: 1 + later.length, timeoutMs: 60000 }))
        .toString('latin1');
      assert.ok(replies.startsWith('+Background saving started\r\n'), replies.slice(0, 100));
      await waitFor('the background save to end', async () => (await info(a.port)).get('rdb_bgsave_in_progress') === '0');
      const persistence = await info(a.port);
      assert.equal(persistence.get('rdb_last_bgsave_status'), 'ok');
      assert.equal(persistence.get('snapshot_last_status'), 'ok');
      assert.equal(persistence.get('snapshot_transport'), transport);
      assert.equal(persistence.get('snapshot_peer'), r.address);
      assert.equal(persistence.get('snapshot_name'), 'app');
      assert.equal(persistence.get('snapshot_last_bytes_shipped'), persistence.get('snapshot_last_image_bytes'));
      assert.ok(Number(persistence.get('snapshot_last_throughput_mbps')) > 0, persistence.get('snapshot_last_throughput_mbps'));
      await logged(a, new RegExp(`Background saving terminated with success .*${transport} peer .*generation 1`));
      await r.waitForLog(/Image 'app' generation 1 committed from/);

      const b = await loadInto(r, 'app', pool);
      await logged(b, new RegExp(`Loading the pool image 'app' from ${transport} peer`));
      await logged(b, new RegExp(`DB loaded from ${transport} peer .* \\(generation 1\\): \\d+\\.\\d{3} seconds`));
      // Only the pool below the image's last page is exposed (over RDMA: registered, so faulted in).
      const exposed = /Load from .*: connect \d+ ms, image \d+ ms, pool \d+ ms \((\d+) of (\d+) pages exposed\)/.exec(b.output());
      assert.ok(exposed, b.output().slice(-2000));
      const [extent, pages] = [Number(exposed[1]), Number(exposed[2])];
      assert.ok(extent > 1 && extent < pages, `${extent} of ${pages} pages exposed`);
      const loaded = await readDataset(b.port, spec.dbs);
      assert.equal(keyCount(loaded), keyCount(before));
      assert.deepEqual(loaded, sortedModel(before), 'the loaded dataset is the one at BGSAVE');
      assert.equal(await cmd(b.port, 'EXISTS', 'after:1', 'after:199'), ':0\r\n');
      assert.equal((await info(b.port)).get('rdb_last_load_keys_loaded'), String(keyCount(before)));
      await r.waitForLog(/Image 'app' generation 1 loaded by/);
      // The loaded server is a normal one: writes, and its own BGSAVE to the same name.
      assert.equal(await cmd(b.port, 'SET', 'k:s:0', 'again'), '+OK\r\n');
      assert.equal((await bgsave(b)).get('rdb_last_bgsave_status'), 'ok');
      await r.waitForLog(/Image 'app' generation 2 committed/);
    });

    it('the receiver stores and serves images with O_DIRECT where its DIR allows it, through the page cache otherwise', async () => {
      const direct = await receiver();
      const buffered = await receiver({ env: { POOLKV_SNAPSHOT_DIRECT: '0' } });
      // Blocks of every length class and many alignments in the file; one page alone runs past a 4 MiB chunk.
      const spec: DatasetSpec = { seed: 5, dbs: 2, smallKeys: n(2000), bigKeys: n(12), bigBytes: BIG, ttlShare: 0.2 };
      const pool = poolFor(n(12) + 4);
      const models: DatasetModel[] = [];
      for (const r of [direct, buffered]) {
        const a = await server(['--pool-size', pool, ...peerArgs(r, 'modes')]);
        models.push(await writeDataset(a.port, spec));
        assert.equal((await bgsave(a)).get('rdb_last_bgsave_status'), 'ok');
        await r.waitForLog(/Image 'modes' generation 1 committed/);
      }
      const supported = directSupported(direct.dir);
      assert.match(direct.output(), new RegExp(`Receiving image 'modes' .*; ${supported ? 'O_DIRECT' : 'buffered'} writes to `));
      assert.match(buffered.output(), /Receiving image 'modes' .*; buffered writes to /);
      const files = [direct, buffered].map((r) => path.join(r.dir, 'modes', 'gen-000000000001.pool'));
      assert.equal(fs.statSync(files[0]!).size, fs.statSync(files[1]!).size, 'both images have the same length');
      for (const [i, r] of [direct, buffered].entries()) {
        // The second load has a larger pool-size than the image's pool: the image's own geometry is what is mapped.
        const b = await loadInto(r, 'modes', i === 0 ? pool : `${2 * parseInt(pool, 10)}mb`);
        assert.deepEqual(await readDataset(b.port, spec.dbs), sortedModel(models[i]!), `served by the ${i === 0 ? 'default' : 'buffered'} receiver`);
        await r.waitForLog(/Image 'modes' generation 1 loaded by/);
      }
      assert.match(direct.output(), new RegExp(`Serving image 'modes' .*; ${supported ? 'O_DIRECT' : 'buffered'} reads\\)`));
      assert.match(buffered.output(), /Serving image 'modes' .*; buffered reads\)/);
    });

    it('SAVE blocks the server until the receiver committed, then answers +OK', async () => {
      const r = await receiver();
      const spec: DatasetSpec = { seed: 2, dbs: 1, smallKeys: n(500), bigKeys: n(96), bigBytes: BIG };
      const pool = poolFor(n(96));
      const a = await server(['--pool-size', pool, ...peerArgs(r, 'blocking')]);
      const model = await writeDataset(a.port, spec);
      const lastsave = Number((await cmd(a.port, 'LASTSAVE')).slice(1, -2));
      const saver = connect(a.port);
      const other = connect(a.port);
      try {
        await Promise.all([saver.ping(), other.ping()]);
        let savedAt = 0;
        let pingedAt = 0;
        const save = saver.save().then((reply) => { savedAt = performance.now(); return reply; });
        await new Promise((res) => setTimeout(res, 5));
        const ping = other.ping().then(() => { pingedAt = performance.now(); });
        assert.equal(await save, 'OK');
        await ping;
        assert.ok(pingedAt >= savedAt, 'a client sent while SAVE ran was answered after it');
      } finally {
        saver.disconnect();
        other.disconnect();
      }
      // COMMITTED is logged before it is sent: the image was current on the receiver when SAVE answered.
      assert.match(r.output(), /Image 'blocking' generation 1 committed/);
      await logged(a, new RegExp(`DB saved on ${transport} peer .*generation 1: \\d+ bytes shipped`));
      assert.ok(Number((await cmd(a.port, 'LASTSAVE')).slice(1, -2)) >= lastsave);
      const persistence = await info(a.port);
      assert.equal(persistence.get('snapshot_last_status'), 'ok');
      assert.equal(persistence.get('rdb_changes_since_last_save'), '0');
      const b = await loadInto(r, 'blocking', pool);
      assert.deepEqual(await readDataset(b.port, 1), sortedModel(model));
    });

    it('several servers share one receiver, each under its own snapshot-name', async () => {
      const r = await receiver();
      const specs: DatasetSpec[] = [1, 2, 3].map((k) => ({ seed: 10 + k, dbs: 2, smallKeys: n(400 * k), bigKeys: k, bigBytes: 300 * 1024, prefix: `s${k}` }));
      const sources = await Promise.all(specs.map((_, i) => server(['--pool-size', '64mb', ...peerArgs(r, `tenant-${i}`)])));
      const models = await Promise.all(sources.map((s, i) => writeDataset(s.port, specs[i]!)));
      // All three at once.
      const results = await Promise.all(sources.map((s) => bgsave(s)));
      for (const result of results) assert.equal(result.get('rdb_last_bgsave_status'), 'ok');
      assert.deepEqual(imageNames(r.dir), ['tenant-0', 'tenant-1', 'tenant-2']);
      for (let i = 0; i < 3; i++) {
        const loaded = await loadInto(r, `tenant-${i}`, '64mb');
        assert.deepEqual(await readDataset(loaded.port, 2), sortedModel(models[i]!), `tenant-${i}`);
      }
    });

    it('the receiver reloads its DIR on restart and serves the image; --keep N prunes old generations', async () => {
      const r = await receiver({ keep: 2 });
      const a = await server(['--pool-size', '64mb', ...peerArgs(r, 'gens')]);
      await writeDataset(a.port, { seed: 5, dbs: 1, smallKeys: n(1000), bigKeys: 4, bigBytes: BIG });
      for (let generation = 1; generation <= 4; generation++) {
        assert.equal(await cmd(a.port, 'SET', 'generation', String(generation)), '+OK\r\n');
        assert.equal((await bgsave(a)).get('rdb_last_bgsave_status'), 'ok');
        await r.waitForLog(`Image 'gens' generation ${generation} committed`);
      }
      assert.deepEqual(fs.readdirSync(path.join(r.dir, 'gens')).sort(), ['gen-000000000003.pool', 'gen-000000000004.pool']);
      const model = await readDataset(a.port, 1);
      assert.equal(await r.stop(), 0);
      const again = await receiver({ dir: r.dir, keep: 1, port: r.port });
      assert.match(again.output(), /Image 'gens': generation 4 is current \(\d+ bytes, taken .*; 2 generation\(s\) on disk\)/);
      const b = await loadInto(again, 'gens', '64mb');
      assert.deepEqual(await readDataset(b.port, 1), model);
      assert.equal(await cmd(b.port, 'GET', 'generation'), '$1\r\n4\r\n');
      // --keep 1 now: the next commit leaves one generation.
      assert.equal(await cmd(b.port, 'SET', 'generation', '5'), '+OK\r\n');
      assert.equal((await bgsave(b)).get('rdb_last_bgsave_status'), 'ok');
      await again.waitForLog("Image 'gens' generation 5 committed");
      assert.deepEqual(fs.readdirSync(path.join(r.dir, 'gens')), ['gen-000000000005.pool']);
    });

    it('a wrong token is refused: both sides log why, nothing is stored, the server keeps serving', async () => {
      const r = await receiver();
      const a = await server(['--pool-size', '64mb', ...peerArgs(r, 'secret', 'not-the-token')]);
      await writeDataset(a.port, { seed: 6, dbs: 1, smallKeys: 200, bigKeys: 2, bigBytes: BIG });
      const after = await bgsave(a);
      assert.equal(after.get('rdb_last_bgsave_status'), 'err');
      assert.equal(after.get('snapshot_last_status'), 'err');
      await logged(a, new RegExp(`Background saving error: ${transport} peer .* refused the snapshot: wrong auth token`));
      await r.waitForLog(/Refused .* \(image 'secret'\): wrong auth token/);
      assert.deepEqual(imageNames(r.dir), [], 'nothing was stored');
      assert.doesNotMatch(r.output(), /Receiving image/);
      assert.equal(await cmd(a.port, 'SAVE'), '-ERR\r\n');
      await logged(a, /Failed saving the pool image to .*: .*refused the snapshot: wrong auth token/);
      assert.equal(await cmd(a.port, 'SET', 'still', 'serving'), '+OK\r\n');
      assert.equal(await cmd(a.port, 'GET', 'still'), '$7\r\nserving\r\n');
      // A load with the wrong token never gets a byte: start-up stops with the peer and the reason.
      const message = await serverFails(['--pool-size', '64mb', ...peerArgs(r, 'secret', 'wrong'), '--load-from-peer', 'yes']);
      assert.match(message, new RegExp(`Could not load the pool image 'secret' from ${transport} peer .*: .*refused the load: wrong auth token. Exiting.`));
      assert.match(message, /code 1/);
    });

    it('HELLOs with another protocol or image format version, a bad name or a damaged header are refused with the reason', async () => {
      const r = await receiver();
      assert.equal(await probe(r, hello({ protocolVersion: 99 })), 'refuse: protocol version 99 not supported (this receiver speaks versions 1 to 2)');
      assert.equal(await probe(r, hello({ formatVersion: 7 })), `refuse: image format version 7 not supported (this receiver stores version ${IMAGE_FORMAT_VERSION})`);
      assert.match(await probe(r, hello({ name: '../../etc' })), /^refuse: snapshot name "\.\.\/\.\.\/etc" is not valid/);
      assert.match(await probe(r, hello({ name: '' })), /^refuse: snapshot name "" is not valid/);
      const badHeader = Buffer.alloc(IMAGE_HEADER_BYTES);
      badHeader.write('PKVIMG01', 0, 'latin1');
      badHeader.writeUInt32LE(1, 8);
      assert.match(await probe(r, hello({ role: 'save', name: 'x', header: badHeader })), /^refuse: incompatible image: header: checksum mismatch/);
      const future = Buffer.from(badHeader);
      future.writeUInt32LE(2, 8);
      assert.match(await probe(r, hello({ role: 'save', name: 'x', header: future })), /^refuse: incompatible image: format version 2 not supported/);
      assert.equal(await probe(r, hello({ name: 'nothing-here' })), 'no-image');
      // Anything but HELLO first.
      assert.equal(await probe(r, { type: 'commit', trailer: Buffer.alloc(24) }), 'refuse: expected HELLO, got COMMIT');
      await r.waitForLog('protocol version 99 not supported');
      await r.waitForLog('image format version 7 not supported');
      assert.deepEqual(imageNames(r.dir), []);
    });

    it('the receiver killed mid-transfer: BGSAVE fails, the server keeps every acknowledged write, the previous image stays current', async () => {
      const r = await receiver();
      const pool = poolFor(bigMiB + 8);
      const a = await server(['--pool-size', pool, ...peerArgs(r, 'big')]);
      const first = await writeDataset(a.port, { seed: 7, dbs: 2, smallKeys: n(2000), bigKeys: 4, bigBytes: BIG });
      assert.equal((await bgsave(a)).get('rdb_last_bgsave_status'), 'ok');
      await r.waitForLog("Image 'big' generation 1 committed");
      // Grow and change the dataset, start the next BGSAVE and kill the receiver while that big image is in flight.
      await writeDataset(a.port, { seed: 17, dbs: 1, smallKeys: 0, bigKeys: bigMiB, bigBytes: BIG, prefix: 'extra' });
      assert.equal(await cmd(a.port, 'SET', 'k:s:1', 'second'), '+OK\r\n');
      const mark = r.mark();
      assert.equal(await cmd(a.port, 'BGSAVE'), '+Background saving started\r\n');
      const writer = connect(a.port);
      const acknowledged: number[] = [];
      let writing = true;
      const writes = (async () => {
        for (let i = 0; writing; i++) {
          await writer.set(`ack:${i}`, String(i));
          acknowledged.push(i);
        }
      })();
      try {
        await r.waitForLog("Receiving image 'big'", 30000, mark);
        await r.kill();
        await waitFor('the BGSAVE to fail', async () => (await info(a.port)).get('rdb_bgsave_in_progress') === '0');
      } finally {
        writing = false;
        await writes;
        writer.disconnect();
      }
      const persistence = await info(a.port);
      assert.equal(persistence.get('rdb_last_bgsave_status'), 'err');
      assert.equal(persistence.get('snapshot_last_status'), 'err');
      await logged(a, /Background saving error: .*(connection to .* lost|link closed)/);
      assert.ok(acknowledged.length > 0);
      const check = connect(a.port);
      try {
        const values = await check.mget(...acknowledged.map((i) => `ack:${i}`));
        assert.deepEqual(values, acknowledged.map(String), 'every acknowledged write is there');
        assert.equal(await check.get('k:s:1'), 'second');
      } finally {
        check.disconnect();
      }
      // The receiver comes back with generation 1 current, and serves it.
      const again = await receiver({ dir: r.dir, port: r.port });
      assert.match(again.output(), /Image 'big': generation 1 is current/);
      assert.deepEqual(fs.readdirSync(path.join(r.dir, 'big')), ['gen-000000000001.pool']);
      const b = await loadInto(again, 'big', pool);
      assert.deepEqual(await readDataset(b.port, 2), sortedModel(first));
    });

    it('the server killed mid-transfer: the receiver drops the transfer and serves the previous image', async () => {
      const r = await receiver();
      const pool = poolFor(bigMiB + 8);
      const a = await server(['--pool-size', pool, ...peerArgs(r, 'victim')]);
      const first = await writeDataset(a.port, { seed: 8, dbs: 1, smallKeys: n(1000), bigKeys: 4, bigBytes: BIG });
      assert.equal((await bgsave(a)).get('rdb_last_bgsave_status'), 'ok');
      await r.waitForLog("Image 'victim' generation 1 committed");
      assert.equal(await cmd(a.port, 'DEL', 'k:b:0'), ':1\r\n');
      await writeDataset(a.port, { seed: 9, dbs: 1, smallKeys: 0, bigKeys: bigMiB, bigBytes: BIG, prefix: 'extra' });
      const mark = r.mark();
      assert.equal(await cmd(a.port, 'BGSAVE'), '+Background saving started\r\n');
      await r.waitForLog("Receiving image 'victim'", 30000, mark);
      a.process.kill('SIGKILL');
      await r.waitForLog(/Transfer of image 'victim' from .* failed: connection lost: .*; generation 1 stays current/, 30000, mark);
      assert.deepEqual(fs.readdirSync(path.join(r.dir, 'victim')), ['gen-000000000001.pool'], 'the temp file is gone');
      const b = await loadInto(r, 'victim', pool);
      assert.deepEqual(await readDataset(b.port, 1), sortedModel(first));
    });

    it('a damaged image in the receiver\'s DIR stops a load-from-peer start with the peer and the reason', async () => {
      const r = await receiver();
      const a = await server(['--pool-size', '64mb', ...peerArgs(r, 'fragile')]);
      await writeDataset(a.port, { seed: 12, dbs: 1, smallKeys: 500, bigKeys: 6, bigBytes: MiB });
      assert.equal((await bgsave(a)).get('rdb_last_bgsave_status'), 'ok');
      await r.waitForLog("Image 'fragile' generation 1 committed");
      const file = path.join(r.dir, 'fragile', 'gen-000000000001.pool');
      const good = fs.readFileSync(file);
      // A flipped byte in a data page: the receiver serves it, the server's CRC check catches it.
      const flipped = Buffer.from(good);
      const at = IMAGE_HEADER_BYTES + 3 * (16 + MiB) + 16 + 4321;
      flipped[at] = flipped[at]! ^ 0x5a;
      fs.writeFileSync(file, flipped);
      let message = await serverFails(['--pool-size', '64mb', ...peerArgs(r, 'fragile'), '--load-from-peer', 'yes']);
      assert.match(message, new RegExp(`Could not load the pool image 'fragile' from ${transport} peer .* sent an image that cannot be loaded: ` +
        'block 3 \\(page \\d+\\): checksum mismatch \\(stored 0x[0-9a-f]{8}, computed 0x[0-9a-f]{8}\\)\\. Exiting\\.'));
      // Over TCP the server's FAILED{reason} arrives before the connection closes; over RDMA the
      // disconnect may be seen first.
      await r.waitForLog(transport === 'tcp' ? /Serving image 'fragile' to .* failed: .*checksum mismatch/ : /Serving image 'fragile' to .* failed: /);
      // Truncated: the receiver notices at start-up and refuses to serve it.
      fs.writeFileSync(file, good.subarray(0, good.length - 100));
      await r.stop();
      const again = await receiver({ dir: r.dir, port: r.port });
      assert.match(again.output(), /Image 'fragile': generation 1 \(.*\) is damaged: \d+ bytes, but its header describes an image of \d+ bytes/);
      message = await serverFails(['--pool-size', '64mb', ...peerArgs(again, 'fragile'), '--load-from-peer', 'yes']);
      assert.match(message, /refused the load: image 'fragile' generation 1 .* is damaged/);
      // A good image again: loads.
      fs.writeFileSync(file, good);
      await again.stop();
      const healed = await receiver({ dir: r.dir, port: r.port });
      const b = await loadInto(healed, 'fragile', '64mb');
      assert.equal(await cmd(b.port, 'DBSIZE'), ':506\r\n');
    });

    it('a peer that is down: BGSAVE and SAVE fail with the reason, SHUTDOWN with save rules refuses, the server keeps serving', async () => {
      const port = await freePort();
      const downAddress = host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`;
      const args = ['--pool-size', '64mb', '--snapshot-transport', transport, '--snapshot-peer', downAddress,
        '--snapshot-auth-token', TOKEN, '--snapshot-name', 'nobody', '--save', '3600 1'];
      const a = await server(args);
      assert.equal(await cmd(a.port, 'SET', 'x', '1'), '+OK\r\n');
      const after = await bgsave(a);
      assert.equal(after.get('rdb_last_bgsave_status'), 'err');
      assert.equal(after.get('snapshot_last_status'), 'err');
      await logged(a, new RegExp(`Background saving error: ${transport} peer .* is unreachable`));
      assert.equal(await cmd(a.port, 'SAVE'), '-ERR\r\n');
      assert.equal(await cmd(a.port, 'SHUTDOWN'), '-ERR Errors trying to SHUTDOWN. Check logs.\r\n');
      await logged(a, /Error trying to save the DB, can't exit/);
      assert.equal(await cmd(a.port, 'GET', 'x'), '$1\r\n1\r\n');
      assert.equal(a.process.exitCode, null, 'still running');
      // load-from-peer from a peer that is down: start-up fails naming it.
      const message = await serverFails([...args, '--load-from-peer', 'yes']);
      assert.match(message, new RegExp(`Could not load the pool image 'nobody' from ${transport} peer ${downAddress.replace(/[[\]]/g, '\\$&')}: .*unreachable`));
    });

    it('load-from-peer with no image under the name starts with an empty dataset', async () => {
      const r = await receiver();
      const b = await loadInto(r, 'fresh', '64mb');
      await logged(b, /has no image named 'fresh': starting with an empty dataset/);
      assert.equal(await cmd(b.port, 'DBSIZE'), ':0\r\n');
      assert.equal(await cmd(b.port, 'SET', 'a', 'b'), '+OK\r\n');
      assert.equal((await bgsave(b)).get('rdb_last_bgsave_status'), 'ok');
      await r.waitForLog("Image 'fresh' generation 1 committed");
    });

    if (transport === 'rdma') {
      it('one receiver on rdma,tcp: an image shipped over RDMA loads over TCP, and back', async () => {
        const both = await startReceiver({ token: TOKEN, transport: 'rdma,tcp', host });
        receivers.push(both);
        assert.match(both.output(), new RegExp(`Listening on rdma .* and tcp .*:${both.port}, images in`));
        const viaRdma = await server(['--pool-size', '64mb', ...peerArgs(both, 'mixed')]);
        const model = await writeDataset(viaRdma.port, { seed: 30, dbs: 1, smallKeys: n(400), bigKeys: 2, bigBytes: BIG });
        assert.equal((await bgsave(viaRdma)).get('rdb_last_bgsave_status'), 'ok');
        const tcpArgs = ['--snapshot-transport', 'tcp', '--snapshot-peer', both.address, '--snapshot-auth-token', TOKEN, '--snapshot-name', 'mixed'];
        const viaTcp = await server(['--pool-size', '64mb', ...tcpArgs, '--load-from-peer', 'yes']);
        assert.deepEqual(await readDataset(viaTcp.port, 1), sortedModel(model));
        assert.equal(await cmd(viaTcp.port, 'SET', 'from-tcp', '1'), '+OK\r\n');
        assert.equal((await bgsave(viaTcp)).get('rdb_last_bgsave_status'), 'ok');
        const back = await loadInto(both, 'mixed');
        assert.equal(await cmd(back.port, 'GET', 'from-tcp'), '$1\r\n1\r\n');
      });
    }

    it('while the image loads from the peer, the server answers -LOADING and INFO shows loading:1', async () => {
      const r = await receiver();
      const pool = poolFor(loadingMiB);
      const a = await server(['--pool-size', pool, ...peerArgs(r, 'slow')]);
      const model = await writeDataset(a.port, { seed: 13, dbs: 1, smallKeys: 100, bigKeys: loadingMiB, bigBytes: BIG });
      assert.equal((await bgsave(a)).get('rdb_last_bgsave_status'), 'ok');
      const port = await freePort();
      const starting = server(['--port', String(port), '--pool-size', pool, ...peerArgs(r, 'slow'), '--load-from-peer', 'yes']);
      const seen = { loading: false, info: '' };
      // Poll as fast as the server answers until it has loaded.
      const poll = (async () => {
        const deadline = Date.now() + 60000;
        while (Date.now() < deadline) {
          let reply: string;
          try {
            reply = (await rawCommand(port, Buffer.concat([encodeCommand(['GET', 'k:b:0']), encodeCommand(['INFO', 'persistence'])]), { replies: 2, timeoutMs: 2000 }))
              .toString('latin1');
          } catch {
            await new Promise((res) => setTimeout(res, 5));
            continue;
          }
          if (reply.startsWith('-LOADING Redis is loading the dataset in memory\r\n')) {
            seen.loading = true;
            if (reply.includes('loading:1\r\n')) seen.info = reply;
            continue;
          }
          return;
        }
      })();
      const b = await starting;
      await poll;
      assert.ok(seen.loading, 'a command was answered -LOADING during the load');
      assert.match(seen.info, /\r\nloading:1\r\n/);
      assert.match(seen.info, new RegExp('module_fork_last_cow_size:0\\r\\nloading_start_time:\\d+\\r\\nloading_total_bytes:\\d+\\r\\n' +
        'loading_rdb_used_mem:\\d+\\r\\nloading_loaded_bytes:\\d+\\r\\nloading_loaded_perc:\\d+\\.\\d\\d\\r\\nloading_eta_seconds:\\d+\\r\\n'));
      assert.equal((await info(b.port)).get('loading'), '0');
      assert.deepEqual(await readDataset(b.port, 1), sortedModel(model));
    });
  });
}
