// poolkv-receiver on its own: the command line (usage and errors), and how it
// copes with peers that break the protocol (garbage frames, huge lengths,
// writes outside what it exposed, bad blocks, lies about checksums): it
// closes that connection, says why in its log, keeps no partial image and
// keeps serving everyone else. Also the TCP link itself (regions made of
// several views, frames larger than one write frame, local checks).
import { strict as assert } from 'assert';
import * as fs from 'fs';
import * as net from 'net';
import * as path from 'path';
import { Pool } from '../src/pool/pool';
import { ConsistentCut } from '../src/snapshot/cut';
import { encodeBlockHeader, encodeHeader, IMAGE_FORMAT_VERSION, type ImageHeader } from '../src/snapshot/image';
import { Keyspace } from '../src/store/keyspace';
import type { Link } from '../src/transport/link';
import { LINK_MAX_MESSAGE } from '../src/transport/link';
import { connectLink } from '../src/transport/links';
import { type Message, MessageChannel, PROTOCOL_VERSION, RING_REGION, RING_SLOTS } from '../src/transport/protocol';
import type { SnapshotBlock, SnapshotSink } from '../src/transport/sink';
import { connectTcp, listenTcp, TCP_MAX_WRITE_FRAME } from '../src/transport/tcp-link';
import { pattern } from './helpers/random';
import { type ReceiverProcess, runReceiverCli, scratchDir, startReceiver } from './helpers/receiver';

const TOKEN = 'receiver-test-token';
const MiB = 1024 * 1024;

describe('poolkv-receiver command line', function () {
  this.timeout(30000);

  it('prints its usage with --help and exits 0', async () => {
    const r = await runReceiverCli(['--help']);
    assert.equal(r.code, 0);
    assert.match(r.stdout, /^Usage: poolkv-receiver --listen ADDR:PORT --dir DIR \(--auth-token TOKEN \| --auth-token-file FILE\) \[options\]/);
    assert.match(r.stdout, /--auth-token-file FILE/);
    assert.match(r.stdout, /--transport rdma\|tcp/);
    assert.match(r.stdout, /--keep N/);
  });

  it('refuses bad arguments with exit 1, the reason and the usage', async () => {
    const dir = scratchDir('poolkv-cli-');
    const file = path.join(dir, 'a-file');
    fs.writeFileSync(file, '');
    const base = ['--listen', '127.0.0.1:0', '--dir', dir, '--auth-token', 't'];
    const cases: Array<[string[], string]> = [
      [[], '--listen is required'],
      [['--listen', '127.0.0.1:7070', '--dir', dir], '--auth-token is required (or --auth-token-file)'],
      [['--listen', 'nowhere', '--dir', dir, '--auth-token', 't'], '--listen must be HOST:PORT, got "nowhere"'],
      [['--listen', '127.0.0.1:99999', '--dir', dir, '--auth-token', 't'], '--listen: port 99999 is out of range'],
      [['--listen', '127.0.0.1:7070', '--dir', path.join(dir, 'missing'), '--auth-token', 't'], `--dir ${path.join(dir, 'missing')}: no such directory`],
      [['--listen', '127.0.0.1:7070', '--dir', file, '--auth-token', 't'], `--dir ${file}: not a directory`],
      [['--listen', '127.0.0.1:7070', '--dir', dir, '--auth-token', ''], '--auth-token must not be empty'],
      [[...base, '--keep', '0'], '--keep must be an integer from 1 to 1000, got "0"'],
      [[...base, '--keep', 'many'], '--keep must be an integer from 1 to 1000, got "many"'],
      [[...base, '--transport', 'udp'], '--transport must be rdma, tcp or rdma,tcp, got "udp"'],
      [[...base, '--transport', 'tcp,tcp'], '--transport must be rdma, tcp or rdma,tcp, got "tcp,tcp"'],
      [[...base, '--loglevel', 'loud'], '--loglevel must be one of debug, verbose, notice, warning'],
      [[...base, '--bogus'], 'unknown option "--bogus"'],
      [[...base, '--keep'], '--keep needs a value'],
      [[...base, '--dir', dir], '--dir given twice'],
    ];
    for (const [args, message] of cases) {
      const r = await runReceiverCli(args);
      assert.equal(r.code, 1, `${args.join(' ')}: exit code`);
      assert.ok(r.stderr.startsWith(`poolkv-receiver: ${message}\n\nUsage: poolkv-receiver`), `${args.join(' ')}:\n${r.stderr}`);
    }
  });

  it('exits 1 with the reason when it cannot listen', async () => {
    const dir = scratchDir('poolkv-cli-');
    const blocker = net.createServer();
    await new Promise<void>((resolve) => blocker.listen(0, '127.0.0.1', resolve));
    try {
      const port = (blocker.address() as net.AddressInfo).port;
      const r = await runReceiverCli(['--listen', `127.0.0.1:${port}`, '--dir', dir, '--auth-token', 't']);
      assert.equal(r.code, 1);
      assert.match(r.stdout, new RegExp(`Could not listen on tcp 127\\.0\\.0\\.1:${port}: .*EADDRINUSE`));
    } finally {
      blocker.close();
    }
  });

  it('refuses a DIR another live receiver uses, and takes over the lock of one that is gone', async () => {
    const dir = scratchDir('poolkv-cli-');
    const first = await startReceiver({ token: 't', dir });
    try {
      assert.equal(fs.readFileSync(path.join(dir, 'poolkv-receiver.pid'), 'utf8'), `${first.process.pid}\n`);
      const second = await runReceiverCli(['--listen', '127.0.0.1:0', '--dir', dir, '--auth-token', 't']);
      assert.equal(second.code, 1);
      assert.match(second.stdout, new RegExp(`Cannot start: ${dir} is in use by another poolkv-receiver \\(pid ${first.process.pid}, `));
    } finally {
      await first.kill();
    }
    // Killed: its lock is stale and the next receiver takes DIR over; a clean stop removes the lock.
    const third = await startReceiver({ token: 't', dir });
    assert.equal(fs.readFileSync(path.join(dir, 'poolkv-receiver.pid'), 'utf8'), `${third.process.pid}\n`);
    assert.equal(await third.stop(), 0);
    assert.ok(!fs.existsSync(path.join(dir, 'poolkv-receiver.pid')));
  });

  it('with --transport rdma on a host without RDMA, exits 1 saying why', async function () {
    const dir = scratchDir('poolkv-cli-');
    const r = await runReceiverCli(['--listen', '127.0.0.1:0', '--dir', dir, '--auth-token', 't', '--transport', 'rdma']);
    if (r.code === 0 || r.stdout.includes('Ready to accept connections')) this.skip(); // this host has RDMA
    assert.equal(r.code, 1);
    assert.match(r.stdout, /Could not listen on rdma 127\.0\.0\.1:0: .*RDMA/);
  });
});

/**
 * Send raw bytes to the receiver (and `afterReply` once it has answered
 * something); resolves when it closes the connection (or after `timeoutMs`).
 */
function rawSession(r: ReceiverProcess, bytes: Buffer, timeoutMs = 5000, afterReply?: Buffer): Promise<{ closed: boolean; received: Buffer }> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    let followUp = afterReply;
    const socket = net.connect(r.port, r.host, () => socket.write(bytes));
    socket.on('data', () => {
      if (followUp !== undefined) socket.write(followUp);
      followUp = undefined;
    });
    const timer = setTimeout(() => {
      socket.destroy();
      resolve({ closed: false, received: Buffer.concat(chunks) });
    }, timeoutMs);
    socket.on('data', (c) => chunks.push(c));
    socket.on('error', () => {});
    socket.on('close', () => {
      clearTimeout(timer);
      resolve({ closed: true, received: Buffer.concat(chunks) });
    });
  });
}

function frame(type: number, body: Buffer): Buffer {
  return Buffer.concat([Buffer.from([type]), body]);
}

function u32(n: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32LE(n >>> 0);
  return b;
}

function f64(n: number): Buffer {
  const b = Buffer.alloc(8);
  b.writeDoubleLE(n);
  return b;
}

function messageFrame(payload: Buffer): Buffer {
  return frame(1, Buffer.concat([u32(payload.length), payload]));
}

/** A small real image (header, encoded blocks, trailer) from a pool with a few keys. */
function smallImage(): { header: ImageHeader; encodedHeader: Buffer; blocks: SnapshotBlock[]; trailer: Buffer } {
  const pool = Pool.open({ size: 16 * MiB, databases: 1 });
  try {
    const ks = new Keyspace(pool);
    for (let i = 0; i < 60; i++) ks.db(0).setString(Buffer.from(`k${i}`), pattern(i, 50000), 0);
    const blocks: SnapshotBlock[] = [];
    let header: ImageHeader | null = null;
    let encodedHeader = Buffer.alloc(0);
    let trailer = Buffer.alloc(0);
    const sink: SnapshotSink = {
      description: 'memory',
      begin(h, e) { header = h; encodedHeader = Buffer.from(e); },
      write(b) { blocks.push({ ...b, header: Buffer.from(b.header), payload: Buffer.from(b.payload) }); },
      commit(t) { trailer = Buffer.from(t); },
      abort() {},
    };
    ConsistentCut.open(pool, sink).runSync();
    return { header: header!, encodedHeader, blocks, trailer };
  } finally {
    pool.close();
  }
}

describe('poolkv-receiver against misbehaving peers (tcp)', function () {
  this.timeout(60000);
  let r: ReceiverProcess;
  let image: ReturnType<typeof smallImage>;

  before(async () => {
    r = await startReceiver({ token: TOKEN });
    image = smallImage();
  });
  after(async () => {
    await r.kill();
  });

  /** The receiver still answers a well-formed request. */
  async function stillServing(): Promise<void> {
    const link = await connectTcp({ host: r.host, port: r.port });
    const channel = new MessageChannel(link);
    try {
      await channel.send({ type: 'hello', protocolVersion: PROTOCOL_VERSION, role: 'load', name: 'nobody', token: Buffer.from(TOKEN), formatVersion: IMAGE_FORMAT_VERSION, header: null });
      assert.equal((await channel.next('an answer', 5000)).type, 'no-image');
    } finally {
      link.close('done');
    }
  }

  /** Start a save as a well-behaved server would, up to WELCOME. */
  async function startSave(name: string): Promise<{ link: Link; channel: MessageChannel; welcome: Extract<Message, { type: 'welcome' }> }> {
    const link = await connectLink('tcp', { host: r.host, port: r.port });
    const channel = new MessageChannel(link);
    await channel.send({ type: 'hello', protocolVersion: PROTOCOL_VERSION, role: 'save', name, token: Buffer.from(TOKEN), formatVersion: IMAGE_FORMAT_VERSION, header: image.encodedHeader });
    const welcome = await channel.next('WELCOME', 5000);
    assert.equal(welcome.type, 'welcome');
    return { link, channel, welcome: welcome as Extract<Message, { type: 'welcome' }> };
  }

  const cases: Array<[string, () => Buffer, RegExp]> = [
    ['an unknown frame type', () => Buffer.from([0x7f, 1, 2, 3]), /unknown frame type 127/],
    ['a message claiming 4 GiB', () => frame(1, u32(0xffffffff)), /message of 4294967295 bytes exceeds the 4096-byte limit/],
    ['a message one byte over the limit', () => frame(1, u32(LINK_MAX_MESSAGE + 1)), /message of 4097 bytes exceeds the 4096-byte limit/],
    ['a write before anything was exposed', () => frame(3, Buffer.concat([u32(RING_REGION), f64(0), u32(16)])), /write of 16 bytes to region 1, which is not exposed/],
    ['a huge write frame', () => frame(3, Buffer.concat([u32(RING_REGION), f64(0), u32(0xfffffff0)])), /which is not exposed|exceeds/],
    ['a region announcement with a NaN size', () => frame(2, Buffer.concat([u32(3), f64(NaN)])), /bad region announcement/],
    ['an empty message', () => messageFrame(Buffer.alloc(0)), /empty message/],
    ['an unknown message type', () => messageFrame(Buffer.from([99, 1, 2])), /unknown message type 99/],
    ['a truncated HELLO', () => messageFrame(Buffer.from([1, PROTOCOL_VERSION, 0])), /hello message is truncated/],
    ['a HELLO with a 60000-byte token length', () => messageFrame(Buffer.concat([Buffer.from([1]), Buffer.from([PROTOCOL_VERSION, 0, 2]), u32(1), Buffer.from([1, 0]), Buffer.from('x'), Buffer.from([0x60, 0xea])])), /token of 60000 bytes exceeds 1024/],
  ];
  for (const [what, bytes, reason] of cases) {
    it(`closes a connection that sends ${what}, logs why and keeps serving`, async () => {
      const mark = r.mark();
      const result = await rawSession(r, bytes());
      assert.ok(result.closed, 'the receiver closed the connection');
      await r.waitForLog(reason, 5000, mark);
      await stillServing();
    });
  }

  it('a write outside the landing ring after a good HELLO closes the link; no image is kept', async () => {
    const mark = r.mark();
    const { link, welcome } = await startSave('outside');
    const closed = new Promise<string>((resolve) => link.onClose(resolve));
    // Past the ring's end: the local check refuses it, so send the frame by hand through a second path
    // is not possible; instead write within bounds of a region id the receiver never exposed.
    await assert.rejects(link.write(welcome.region, welcome.slots * welcome.slotBytes, [Buffer.alloc(1)]), /does not fit the peer's region/);
    await assert.rejects(link.write(RING_REGION + 5, 0, [Buffer.alloc(1)]), /has not exposed region 6/);
    link.close('test over');
    await closed;
    await r.waitForLog(/Transfer of image 'outside' from .* failed: connection lost/, 5000, mark);
    assert.deepEqual(fs.readdirSync(path.join(r.dir, 'outside')), []);
    await stillServing();
  });

  it('a forged write outside the ring (raw frames after a good HELLO) is refused with the region and bounds', async () => {
    const mark = r.mark();
    const helloBytes = (await import('../src/transport/protocol')).encodeMessage({
      type: 'hello', protocolVersion: PROTOCOL_VERSION, role: 'save', name: 'forged', token: Buffer.from(TOKEN),
      formatVersion: IMAGE_FORMAT_VERSION, header: image.encodedHeader,
    });
    // After WELCOME (the ring is exposed by then), a write frame far outside it.
    const result = await rawSession(r, messageFrame(helloBytes), 5000,
      Buffer.concat([frame(3, Buffer.concat([u32(RING_REGION), f64(2 ** 40), u32(8)])), Buffer.alloc(8)]));
    assert.ok(result.closed);
    await r.waitForLog(/write of 8 bytes at offset 1099511627776 is outside region 1 \(\d+ bytes\)/, 5000, mark);
    await r.waitForLog(/Transfer of image 'forged' from .* failed/, 5000, mark);
    assert.deepEqual(fs.readdirSync(path.join(r.dir, 'forged')), []);
    await stillServing();
  });

  it('blocks that lie (bad CRC, wrong order, a slot out of range, early or wrong COMMIT) fail the transfer with the reason', async () => {
    const slot = async (link: Link, welcome: Extract<Message, { type: 'welcome' }>, s: number, b: SnapshotBlock): Promise<void> => {
      await link.write(welcome.region, s * welcome.slotBytes, [b.header, b.payload]);
    };
    const expectFailed = async (channel: MessageChannel, pattern: RegExp): Promise<void> => {
      const reply = await channel.next('FAILED', 5000);
      assert.equal(reply.type, 'failed');
      assert.match((reply as { reason: string }).reason, pattern);
    };
    // A payload that does not match its CRC.
    {
      const { link, channel, welcome } = await startSave('liar');
      const b = image.blocks[0]!;
      const bad = Buffer.from(b.payload);
      bad[100] ^= 1;
      await slot(link, welcome, 0, { ...b, payload: bad });
      await channel.send({ type: 'block', slot: 0, index: 0 });
      await expectFailed(channel, /^block 0 \(page 0\): checksum mismatch \(stored 0x[0-9a-f]{8}, computed 0x[0-9a-f]{8}\)$/);
      link.close('done');
    }
    // Block 1 announced first.
    {
      const { link, channel, welcome } = await startSave('liar');
      await slot(link, welcome, 0, image.blocks[1]!);
      await channel.send({ type: 'block', slot: 0, index: 1 });
      await expectFailed(channel, /block 1 arrived, expected block 0/);
      link.close('done');
    }
    // A slot outside the ring.
    {
      const { link, channel } = await startSave('liar');
      await channel.send({ type: 'block', slot: 99, index: 0 });
      await expectFailed(channel, new RegExp(`slot 99, but the ring has ${RING_SLOTS} slots`));
      link.close('done');
    }
    // COMMIT before all blocks.
    {
      const { link, channel, welcome } = await startSave('liar');
      await slot(link, welcome, 0, image.blocks[0]!);
      await channel.send({ type: 'block', slot: 0, index: 0 });
      assert.deepEqual(await channel.next('CREDIT', 5000), { type: 'credit', slot: 0 });
      await channel.send({ type: 'commit', trailer: image.trailer });
      await expectFailed(channel, /the image does not verify: trailer after 1 of \d+ blocks/);
      link.close('done');
    }
    // A wrong whole-image checksum in the trailer.
    {
      const { link, channel, welcome } = await startSave('liar');
      for (let i = 0; i < image.blocks.length; i++) {
        const s = i % welcome.slots;
        if (i >= welcome.slots) assert.equal((await channel.next('CREDIT', 5000)).type, 'credit');
        await slot(link, welcome, s, image.blocks[i]!);
        await channel.send({ type: 'block', slot: s, index: i });
      }
      const trailer = Buffer.from(image.trailer);
      trailer[20] ^= 0xff;
      await channel.send({ type: 'commit', trailer });
      let reply = await channel.next('FAILED', 5000);
      while (reply.type === 'credit') reply = await channel.next('FAILED', 5000);
      assert.equal(reply.type, 'failed');
      assert.match((reply as { reason: string }).reason, /image checksum mismatch/);
      link.close('done');
    }
    // A bad block in the middle of a full ring: the blocks around it are being checked and written
    // at the same time, and the transfer still fails on exactly that block.
    {
      const { link, channel, welcome } = await startSave('liar');
      assert.ok(image.blocks.length >= 3 && welcome.slots >= 3);
      const bad = 2;
      for (let i = 0; i < Math.min(welcome.slots, image.blocks.length); i++) {
        const b = image.blocks[i]!;
        const payload = Buffer.from(b.payload);
        if (i === bad) payload[payload.length - 1] ^= 0x40;
        void slot(link, welcome, i, { ...b, payload });
        void channel.send({ type: 'block', slot: i, index: i });
      }
      let reply = await channel.next('FAILED', 5000);
      while (reply.type === 'credit') reply = await channel.next('FAILED', 5000);
      assert.equal(reply.type, 'failed');
      assert.match((reply as { reason: string }).reason, new RegExp(`^block ${bad} \\(page \\d+\\): checksum mismatch`));
      link.close('done');
      // Logged once the temp file is gone.
      await r.waitForLog(new RegExp(`Transfer of image 'liar' from .* failed: block ${bad} \\(page \\d+\\): checksum mismatch`));
    }
    await r.waitForLog(/Transfer of image 'liar' .* failed: the image does not verify: image checksum mismatch \(stored 0x[0-9a-f]+, computed 0x[0-9a-f]+\); 'liar' still has no usable image/);
    assert.deepEqual(fs.readdirSync(path.join(r.dir, 'liar')), [], 'no temp file and no image');
    // The same blocks told honestly commit.
    const { link, channel, welcome } = await startSave('liar');
    for (let i = 0; i < image.blocks.length; i++) {
      const s = i % welcome.slots;
      if (i >= welcome.slots) assert.equal((await channel.next('CREDIT', 5000)).type, 'credit');
      await slot(link, welcome, s, image.blocks[i]!);
      await channel.send({ type: 'block', slot: s, index: i });
    }
    await channel.send({ type: 'commit', trailer: image.trailer });
    let reply = await channel.next('COMMITTED', 5000);
    while (reply.type === 'credit') reply = await channel.next('COMMITTED', 5000);
    assert.deepEqual(reply, { type: 'committed', generation: 1 });
    link.close('done');
    assert.deepEqual(fs.readdirSync(path.join(r.dir, 'liar')), ['gen-000000000001.pool']);
    assert.ok(fs.readFileSync(path.join(r.dir, 'liar', 'gen-000000000001.pool'))
      .equals(Buffer.concat([image.encodedHeader, ...image.blocks.flatMap((b) => [b.header, b.payload]), image.trailer])));
  });

  it('IMAGE gives a version 2 server the page extent (one past the last page) and a version 1 server the old IMAGE', async () => {
    const { link, channel, welcome } = await startSave('extent');
    for (let i = 0; i < image.blocks.length; i++) {
      const s = i % welcome.slots;
      if (i >= welcome.slots) assert.equal((await channel.next('CREDIT', 5000)).type, 'credit');
      await link.write(welcome.region, s * welcome.slotBytes, [image.blocks[i]!.header, image.blocks[i]!.payload]);
      await channel.send({ type: 'block', slot: s, index: i });
    }
    await channel.send({ type: 'commit', trailer: image.trailer });
    let reply = await channel.next('COMMITTED', 5000);
    while (reply.type === 'credit') reply = await channel.next('COMMITTED', 5000);
    assert.equal(reply.type, 'committed');
    link.close('done');
    const lastPage = image.blocks[image.blocks.length - 1]!.header.readUInt32LE(4);
    assert.ok(lastPage + 1 < image.header.pageCount, 'the test image leaves the top of its pool unused');
    for (const protocolVersion of [1, 2]) {
      const loader = await connectTcp({ host: r.host, port: r.port });
      const loadChannel = new MessageChannel(loader);
      await loadChannel.send({ type: 'hello', protocolVersion, role: 'load', name: 'extent', token: Buffer.from(TOKEN), formatVersion: IMAGE_FORMAT_VERSION, header: null });
      const answer = await loadChannel.next('IMAGE', 5000);
      assert.equal(answer.type, 'image');
      const { pageExtent, header } = answer as Extract<Message, { type: 'image' }>;
      assert.ok(header.equals(image.encodedHeader));
      assert.equal(pageExtent, protocolVersion === 1 ? null : lastPage + 1, `version ${protocolVersion}`);
      loader.close('done');
    }
  });

  it('an image whose header is fine but whose page size is not the pool page size is refused', async () => {
    const h = { ...image.header, pageSize: 4096, poolSize: image.header.pageCount * 4096 * 2 };
    const link = await connectTcp({ host: r.host, port: r.port });
    const channel = new MessageChannel(link);
    await channel.send({ type: 'hello', protocolVersion: PROTOCOL_VERSION, role: 'save', name: 'tiny-pages', token: Buffer.from(TOKEN), formatVersion: IMAGE_FORMAT_VERSION, header: encodeHeader(h) });
    const reply = await channel.next('REFUSE', 5000);
    assert.deepEqual(reply, { type: 'refuse', reason: 'incompatible image: page size 4096 (this receiver takes 1048576-byte pages)' });
    link.close('done');
    void encodeBlockHeader;
  });
});

describe('TCP link', function () {
  this.timeout(30000);

  async function pair(): Promise<{ server: Link; client: Link; close(): Promise<void> }> {
    let accepted: (link: Link) => void = () => {};
    const got = new Promise<Link>((resolve) => { accepted = resolve; });
    const listener = await listenTcp({ host: '127.0.0.1', port: 0, onLink: (link) => accepted(link) });
    const client = await connectTcp({ host: '127.0.0.1', port: listener.port });
    const server = await got;
    return {
      server, client,
      async close() {
        client.close('done');
        server.close('done');
        await listener.close();
      },
    };
  }

  it('writes land at their offsets across the views of a region, both ways, in order with messages', async () => {
    const { server, client, close } = await pair();
    try {
      for (const [from, to] of [[client, server], [server, client]] as Array<[Link, Link]>) {
        // A region of uneven views, like the pool's views but small.
        const views = [Buffer.alloc(1000), Buffer.alloc(7), Buffer.alloc(3 * MiB), Buffer.alloc(5000)];
        const got: string[] = [];
        const arrived = new Promise<void>((resolve) => to.onMessage((m) => { got.push(m.toString()); if (got.length === 2) resolve(); }));
        await to.expose(7, views);
        await to.send(Buffer.from('exposed'));
        // The peer learns about the region before the message that follows the EXPOSE frame.
        const ready = new Promise<void>((resolve) => from.onMessage(() => resolve()));
        await ready;
        const data = pattern(42, 3 * MiB + 10);
        await from.write(7, 995, [data.subarray(0, 10), data.subarray(10)]);
        await from.send(Buffer.from('written'));
        await from.write(7, 0, [Buffer.from('head')]);
        await from.send(Buffer.from('second'));
        await arrived;
        const flat = Buffer.concat(views);
        assert.ok(flat.subarray(995, 995 + data.length).equals(data), 'the bytes are where they were written');
        assert.equal(flat.subarray(0, 4).toString(), 'head');
        assert.deepEqual(got, ['written', 'second']);
      }
    } finally {
      await close();
    }
  });

  it('splits writes larger than one frame and refuses writes that do not fit or messages that are too long', async () => {
    const { server, client, close } = await pair();
    try {
      const region = [Buffer.alloc(TCP_MAX_WRITE_FRAME + 3 * MiB)];
      const seen = new Promise<void>((resolve) => server.onMessage(() => resolve()));
      await client.expose(1, region);
      await client.send(Buffer.from('go'));
      await seen;
      const data = pattern(7, region[0]!.length);
      const done = new Promise<void>((resolve) => client.onMessage(() => resolve()));
      await server.write(1, 0, [data]);
      await server.send(Buffer.from('done'));
      await done;
      assert.ok(region[0]!.equals(data));
      await assert.rejects(server.write(1, 1, [data]), /does not fit the peer's region 1/);
      await assert.rejects(server.write(2, 0, [Buffer.alloc(1)]), /has not exposed region 2/);
      await assert.rejects(server.send(Buffer.alloc(LINK_MAX_MESSAGE + 1)), /exceeds the 4096-byte limit/);
    } finally {
      await close();
    }
  });

  it('messages sent right after writes that were not waited for still arrive after those bytes', async () => {
    const { server, client, close } = await pair();
    try {
      // Much more than the socket takes at once, so later writes queue behind earlier ones.
      const region = [Buffer.alloc(48 * MiB)];
      const seen = new Promise<void>((resolve) => server.onMessage(() => resolve()));
      await client.expose(1, region);
      await client.send(Buffer.from('go'));
      await seen;
      const chunk = 4 * MiB;
      const data = pattern(11, region[0]!.length);
      const checks: boolean[] = [];
      let messages = 0;
      const all = new Promise<void>((resolve) => client.onMessage((m) => {
        // Chunk i is in place when message i arrives.
        const i = Number(m.toString());
        checks.push(region[0]!.subarray(i * chunk, (i + 1) * chunk).equals(data.subarray(i * chunk, (i + 1) * chunk)));
        if (++messages === region[0]!.length / chunk) resolve();
      }));
      const writes: Array<Promise<void>> = [];
      for (let i = 0; i < region[0]!.length / chunk; i++) {
        writes.push(server.write(1, i * chunk, [data.subarray(i * chunk, (i + 1) * chunk)]));
        void server.send(Buffer.from(String(i)));
      }
      await Promise.all(writes);
      await all;
      assert.deepEqual(checks, checks.map(() => true));
    } finally {
      await close();
    }
  });

  it('tells the peer why it closed; operations after that reject', async () => {
    const { server, client, close } = await pair();
    try {
      const reason = new Promise<string>((resolve) => client.onClose(resolve));
      server.close('going away for a test');
      assert.equal(await reason, 'peer closed the link: going away for a test');
      await assert.rejects(client.send(Buffer.from('x')), /link closed/);
    } finally {
      await close();
    }
  });

  it('a connection refused is reported with the address', async () => {
    const blocker = net.createServer();
    await new Promise<void>((resolve) => blocker.listen(0, '127.0.0.1', resolve));
    const port = (blocker.address() as net.AddressInfo).port;
    await new Promise<void>((resolve) => blocker.close(() => resolve()));
    await assert.rejects(connectTcp({ host: '127.0.0.1', port }), new RegExp(`could not connect to 127\\.0\\.0\\.1:${port}: connection refused`));
  });
});
