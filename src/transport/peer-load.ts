// Loading the pool from a poolkv-receiver at start-up (the LOAD conversation
// of docs/snapshot-protocol.md):
//
//   HELLO{load, name, token}  →  IMAGE{generation, header, page extent} | NO_IMAGE | REFUSE | FAILED
//   map a pool of the image's geometry, expose the part of it below the page
//   extent as POOL_REGION (over RDMA registered, so faulted in: the rest of
//   a large pool is never touched), READY{window}
//   the receiver write()s each page straight to page * PAGE_BYTES in the pool
//   and announces it with LOAD_BLOCK{index, block header}; the page's CRC is
//   computed in place off the event loop (several pages at once), blocks are
//   accepted in order, and LOAD_CREDIT{n} (one per burst) lets the receiver
//   send n more
//   END{trailer}: the whole-image checksum; LOADED
//
// Nothing is deserialized: the pool's meta pages bring back the database
// roots and allocator metadata, exactly as a file load does. Any problem
// (unreachable, refused, bad block, lost connection) rejects with the peer
// and the reason; the caller must then not serve the pool.
import { PoolFormatError } from '../pool/errors';
import type { SharedMapping } from '../pool/mapping';
import type { Pool } from '../pool/pool';
import { blockCrc, blockFieldsCrc, IMAGE_FORMAT_VERSION, ImageError, type ImageHeader, imageSize, ImageVerifier } from '../snapshot/image';
import { attachLoadedPool, checkImageFits, type LoadedImage, type LoadHooks, type LoadOptions, mapPoolFor, pageView } from '../snapshot/load';
import { connectLink, registerPoolRegion } from './links';
import { describePeer, type PeerOptions } from './peer-sink';
import { pageIo } from './native';
import { LOAD_WINDOW, type Message, MessageChannel, POOL_REGION, printable, PROTOCOL_VERSION } from './protocol';

const DEFAULT_CONNECT_TIMEOUT_MS = 5000;
const DEFAULT_REPLY_TIMEOUT_MS = 30000;

export type PeerLoadResult =
  /** phases: where the time went, for the log ("connect 410 ms, image 25 ms, pool 900 ms (320 of 384 pages exposed), pages 6100 ms"). */
  | { found: true; image: LoadedImage; generation: number; phases: string }
  | { found: false };

/** Load the current image of `options.name` from the receiver into a new pool. */
export async function loadFromPeer(options: PeerOptions & LoadOptions, hooks: LoadHooks = {}): Promise<PeerLoadResult> {
  const started = process.hrtime.bigint();
  const where = describePeer(options);
  const replyTimeout = options.replyTimeoutMs ?? DEFAULT_REPLY_TIMEOUT_MS;
  let link;
  try {
    link = await connectLink(options.kind, { host: options.host, port: options.port, timeoutMs: options.connectTimeoutMs ?? DEFAULT_CONNECT_TIMEOUT_MS });
  } catch (err) {
    throw new Error(`${where} is unreachable: ${(err as Error).message}`);
  }
  const connectedAt = process.hrtime.bigint();
  const channel = new MessageChannel(link);
  let mapping: SharedMapping | null = null;
  let handedOut = false;
  /** The receiver said its last word (REFUSE / FAILED): close without answering. */
  let peerEnded = false;
  try {
    await channel.send({
      type: 'hello', protocolVersion: PROTOCOL_VERSION, role: 'load', name: options.name,
      token: Buffer.from(options.token, 'utf8'), formatVersion: IMAGE_FORMAT_VERSION, header: null,
    });
    const reply = await channel.next('IMAGE', replyTimeout);
    if (reply.type === 'no-image') {
      link.close('no image');
      return { found: false };
    }
    if (reply.type === 'refuse' || reply.type === 'failed') {
      peerEnded = true;
      throw new Error(`${where} refused the load: ${printable(reply.reason)}`);
    }
    if (reply.type !== 'image') throw new Error(`protocol error: expected IMAGE, got ${reply.type.toUpperCase()}`);
    const imageAt = process.hrtime.bigint();
    const verifier = new ImageVerifier(reply.header);
    const h = verifier.header;
    checkImageFits(h, options);
    // Version 1 receivers send no extent: then the whole pool is exposed.
    const pageExtent = reply.pageExtent ?? h.pageCount;
    if (pageExtent < h.metaPages || pageExtent > h.pageCount) {
      throw new Error(`protocol error: IMAGE gives a page extent of ${pageExtent} (the image has ${h.metaPages} meta pages of ${h.pageCount})`);
    }
    mapping = mapPoolFor(h, options);
    // RDMA registration faults in every page it covers (the kernel zeroes each): only what the image fills.
    const region = prefixOf(mapping.views, pageExtent * h.pageSize);
    await registerPoolRegion(options.kind, region, options.host);
    await link.expose(POOL_REGION, region);
    hooks.onStart?.(h, imageSize(h));
    const readyAt = process.hrtime.bigint();
    await channel.send({ type: 'ready', region: POOL_REGION, window: LOAD_WINDOW });
    const m = mapping;
    const pool = await receiveBlocks(channel, verifier, m, pageExtent, replyTimeout, hooks, () => { handedOut = true; }, () => { peerEnded = true; });
    // LOADED is out; the receiver closes once it has read it.
    await channel.closeAfterPeer('loaded');
    const now = process.hrtime.bigint();
    const seconds = Number(now - started) / 1e9;
    const ms = (from: bigint, to: bigint): number => Math.round(Number(to - from) / 1e6);
    const phases = `connect ${ms(started, connectedAt)} ms, image ${ms(connectedAt, imageAt)} ms, ` +
      `pool ${ms(imageAt, readyAt)} ms (${pageExtent} of ${h.pageCount} pages exposed), pages ${ms(readyAt, now)} ms`;
    return { found: true, image: { pool, mapping: m, header: h, seconds }, generation: reply.generation, phases };
  } catch (err) {
    const reason = (err as Error).message;
    if (channel.closedReason === null) {
      if (peerEnded) {
        link.close(reason);
      } else {
        await channel.send({ type: 'failed', reason }).catch(() => {});
        await channel.closeAfterPeer(reason, 1000);
      }
    }
    // A pool already handed out stays mapped: its owner exits without serving it.
    if (!handedOut) (mapping as SharedMapping | null)?.close();
    if (err instanceof ImageError || err instanceof PoolFormatError) throw new Error(`${where} sent an image that cannot be loaded: ${reason}`);
    throw new Error(reason.startsWith(where) ? reason : `${where}: ${reason}`);
  }
}

/** The first `bytes` of the pool's views (each view holds whole pages). */
function prefixOf(views: readonly Buffer[], bytes: number): Buffer[] {
  const region: Buffer[] = [];
  let left = bytes;
  for (const view of views) {
    if (left <= 0) break;
    region.push(left >= view.length ? view : view.subarray(0, left));
    left -= view.length;
  }
  return region;
}

/** The block stream: verify each page in place, credit it, attach the pool after the meta pages. */
function receiveBlocks(
  channel: MessageChannel,
  verifier: ImageVerifier,
  mapping: SharedMapping,
  pageExtent: number,
  replyTimeout: number,
  hooks: LoadHooks,
  onHandedOut: () => void,
  onPeerEnded: () => void,
): Promise<Pool> {
  const h: ImageHeader = verifier.header;
  return new Promise<Pool>((resolve, reject) => {
    let pool: Pool | null = null;
    let poolReady: Promise<void> = Promise.resolve();
    let settled = false;
    let loadedBytes = 0;
    let idle: NodeJS.Timeout | null = null;
    /** Blocks announced so far (the index the next LOAD_BLOCK must carry). */
    let announced = 0;
    /** Acceptance in block order: each page's CRC runs off-thread, blocks are accepted after the previous one. */
    let verified: Promise<void> = Promise.resolve();
    /** Blocks accepted but not yet credited back; sent as one LOAD_CREDIT per event-loop turn. */
    let owed = 0;
    let creditScheduled = false;
    const native = pageIo();
    const flushCredit = (): void => {
      creditScheduled = false;
      if (settled || owed === 0) return;
      channel.send({ type: 'load-credit', count: owed }).catch(() => {});
      owed = 0;
    };
    const accept = (blockHeader: Buffer, computed: number): void => {
      verifier.checkBlockHeader(blockHeader);
      verifier.acceptBlock(blockHeader, computed);
      loadedBytes += blockHeader.length + h.pageSize;
      owed++;
      if (!creditScheduled) {
        creditScheduled = true;
        setImmediate(flushCredit);
      }
      hooks.onProgress?.(loadedBytes);
      if (verifier.nextBlock === h.metaPages) {
        pool = attachLoadedPool(mapping, h);
        if (hooks.onPoolReady !== undefined) {
          onHandedOut();
          poolReady = Promise.resolve(hooks.onPoolReady(pool, h));
          poolReady.catch((err: Error) => finish(err));
        }
      }
    };
    const finish = (err: Error | null): void => {
      if (settled) return;
      settled = true;
      if (idle !== null) clearTimeout(idle);
      if (err !== null) reject(err);
      else resolve(pool!);
    };
    const touch = (): void => {
      if (idle !== null) clearTimeout(idle);
      idle = setTimeout(() => finish(new Error(`no data for ${Math.round(replyTimeout / 1000)} s`)), replyTimeout);
    };
    const onMessage = (m: Message): void => {
      switch (m.type) {
        case 'load-block': {
          if (m.index !== announced) throw new Error(`protocol error: block ${m.index} announced, expected block ${announced}`);
          if (m.index >= h.blockCount) throw new Error(`protocol error: block ${m.index} announced, but the image has ${h.blockCount} blocks`);
          announced++;
          const blockHeader = m.blockHeader;
          const page = blockHeader.length >= 8 ? blockHeader.readUInt32LE(4) : h.pageCount;
          if (page >= pageExtent && page < h.pageCount) {
            throw new Error(`block ${m.index} names page ${page}, beyond the page extent ${pageExtent} the receiver gave (a damaged image or a broken receiver)`);
          }
          // An out-of-range page fails checkBlockHeader (in order, below) before any CRC is needed.
          let crc: Promise<number> = Promise.resolve(0);
          if (page < h.pageCount) {
            const view = pageView(mapping.views, page);
            crc = native !== null ? native.crc32Async(view, blockFieldsCrc(page, h.pageSize)) : Promise.resolve(blockCrc(page, view));
          }
          crc.catch(() => {});
          verified = verified.then(async () => {
            const computed = await crc;
            if (!settled) accept(blockHeader, computed);
          });
          verified.catch((err: Error) => finish(err));
          return;
        }
        case 'end': {
          const trailer = m.trailer;
          // Every block announced is accepted (or has failed the load) before the trailer is checked.
          verified.then(() => {
            if (settled) return;
            verifier.checkTrailer(trailer);
            // LOADED must have left before the link closes (RDMA tears the QP down at once).
            Promise.all([channel.send({ type: 'loaded' }).catch(() => {}), poolReady]).then(() => finish(null), (err: Error) => finish(err));
          }).catch((err: Error) => finish(err));
          return;
        }
        case 'failed':
        case 'refuse':
          onPeerEnded();
          throw new Error(`the receiver gave up: ${printable(m.reason)}`);
        default:
          throw new Error(`protocol error: unexpected ${m.type.toUpperCase()} during a load`);
      }
    };
    touch();
    channel.listen((m) => {
      if (settled) return;
      touch();
      try {
        onMessage(m);
      } catch (err) {
        finish(err as Error);
      }
    });
    channel.onClose((reason) => finish(new Error(`connection lost: ${reason}`)));
  });
}
