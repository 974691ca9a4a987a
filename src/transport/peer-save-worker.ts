// Worker thread behind SyncPeerSink (peer-sink.ts): runs a PeerSink on this
// thread's event loop while the server's main thread is blocked in SAVE.
// Requests arrive by postMessage (delivered even while the main thread
// blocks); progress goes back through shared memory and Atomics.notify,
// because the blocked main thread cannot receive messages.
import { parentPort, workerData } from 'worker_threads';
import { BLOCK_HEADER_BYTES, decodeHeader } from '../snapshot/image';
import {
  PeerSink, STATUS_COMMITTED, STATUS_FAILED, STATUS_READY, SYNC_ERROR_BYTES, SYNC_ERROR_LENGTH, SYNC_EXITED, SYNC_GENERATION,
  SYNC_SEQ, SYNC_SLOT_BYTES, SYNC_SLOTS_AT, SYNC_STATUS, type SyncWorkerData, type SyncWorkerRequest,
} from './peer-sink';

const data = workerData as SyncWorkerData;
const control = new Int32Array(data.control);
const errorBytes = Buffer.from(data.error);
const ring = Buffer.from(data.ring);
const sink = new PeerSink(data.options);
let failed = false;

function report(): void {
  Atomics.add(control, SYNC_SEQ, 1);
  Atomics.notify(control, SYNC_SEQ);
}

/** The conversation is over: stop listening, so the thread exits once the link has closed. */
function end(): void {
  parentPort?.close();
}

function fail(err: unknown): void {
  if (failed) return;
  failed = true;
  const text = Buffer.from(err instanceof Error ? err.message : String(err), 'utf8').subarray(0, SYNC_ERROR_BYTES);
  text.copy(errorBytes, 0);
  Atomics.store(control, SYNC_ERROR_LENGTH, text.length);
  sink.abort(err instanceof Error ? err.message : String(err));
  Atomics.store(control, SYNC_STATUS, STATUS_FAILED);
  report();
  end();
}

// The main thread waits for this before it goes on (e.g. to exit after SHUTDOWN).
process.on('exit', () => {
  Atomics.store(control, SYNC_EXITED, 1);
  report();
});

async function handle(request: SyncWorkerRequest): Promise<void> {
  switch (request.op) {
    case 'begin': {
      const header = Buffer.from(request.header);
      await sink.begin(decodeHeader(header), header);
      Atomics.store(control, SYNC_STATUS, STATUS_READY);
      report();
      return;
    }
    case 'block': {
      const at = request.slot * SYNC_SLOT_BYTES;
      await sink.write({
        index: request.index,
        page: request.page,
        header: ring.subarray(at, at + BLOCK_HEADER_BYTES),
        payload: ring.subarray(at + BLOCK_HEADER_BYTES, at + SYNC_SLOT_BYTES),
        crc: request.crc,
      });
      Atomics.store(control, SYNC_SLOTS_AT + request.slot, 0);
      report();
      return;
    }
    case 'commit':
      await sink.commit(Buffer.from(request.trailer));
      Atomics.store(control, SYNC_GENERATION, sink.generation);
      Atomics.store(control, SYNC_STATUS, STATUS_COMMITTED);
      report();
      end();
      return;
    case 'abort':
      fail(new Error(request.reason));
      return;
  }
}

// Anything unexpected ends the save with the reason rather than leaving SAVE waiting for a timeout.
process.on('uncaughtException', fail);
process.on('unhandledRejection', fail);

// Requests run strictly in order; the first failure ends the conversation.
let chain: Promise<void> = Promise.resolve();
parentPort?.on('message', (request: SyncWorkerRequest) => {
  chain = chain.then(() => (failed ? undefined : handle(request))).catch(fail);
});
