// Where a snapshot goes. The cut (src/snapshot/cut.ts) produces an image as a
// header, then blocks (meta pages first, then data pages in ascending order),
// then a trailer; a sink ships them somewhere: a file now, TCP or RDMA later.
//
// Contract: begin() once, write() per block in order, then exactly one of
// commit() (the image is complete: make it durable / visible atomically) or
// abort() (drop everything; any previous image must stay intact). The
// buffers handed over belong to the sink until its returned promise settles
// (or, for a synchronous sink, until the call returns); they never alias live
// pool memory. A sink may return void (synchronous, as SAVE needs) or a
// Promise (BGSAVE awaits it before the next block, which bounds the memory in
// flight to one block).
import type { ImageHeader } from '../snapshot/image';

export interface SnapshotBlock {
  /** 0-based block number in the image (meta pages are blocks 0..metaPages-1). */
  index: number;
  /** Pool page the payload belongs to. */
  page: number;
  /** The encoded block header (tag, page, length, CRC32). */
  header: Buffer;
  /** The page's bytes at the cut (exactly one page). */
  payload: Buffer;
  crc: number;
}

export interface SnapshotSink {
  /** A short description for logs ("file /var/lib/poolkv/dump.pool"). */
  readonly description: string;
  begin(header: ImageHeader, encodedHeader: Buffer): void | Promise<void>;
  write(block: SnapshotBlock): void | Promise<void>;
  commit(trailer: Buffer): void | Promise<void>;
  abort(reason: string): void | Promise<void>;
  /**
   * Optional: a page-sized buffer for the cut to fill with a block's payload
   * (e.g. RDMA-registered staging memory, so write() ships it with no further
   * copy). Null when none is free (the cut then uses its own buffer). The cut
   * hands it back with releaseBuffer() once write() for that block settled.
   */
  acquireBuffer?(): Buffer | null;
  releaseBuffer?(buffer: Buffer): void;
}
