// Per-connection state that commands read and change (SELECT, HELLO, AUTH,
// CLIENT SETNAME...). The socket plumbing lives in connection.ts.
import type { RespVersion } from '../protocol/reply-writer';

export class ClientState {
  /** Database index selected by SELECT (0 by default). */
  db = 0;
  resp: RespVersion = 2;
  name = '';
  libName = '';
  libVer = '';
  /** False until AUTH succeeds when requirepass is set. */
  authenticated: boolean;
  readonly createdAt = Date.now();
  lastInteraction = Date.now();
  /** Lowercase full name of the last command ("client|setname"). */
  lastCommand = 'NULL';
  /** Set by QUIT (and protocol errors): flush pending replies, then close. */
  closeAfterReply = false;
  /** Bytes of the query buffer not yet parsed (INFO clients / CLIENT LIST qbuf). */
  queryBufferBytes = 0;
  /** Bytes of replies queued in the socket (CLIENT LIST omem / tot-mem). */
  outputBufferBytes = () => 0;
  /**
   * Channels + patterns (+ shard channels) subscribed to. A RESP2 client with
   * any is in pubsub mode, which changes what PING replies.
   */
  subscriptions = 0;

  constructor(
    readonly id: number,
    /** "ip:port" of the peer and of our end, as CLIENT LIST shows them. */
    readonly addr: string,
    readonly laddr: string,
    readonly fd: number,
    authenticated: boolean,
  ) {
    this.authenticated = authenticated;
  }
}
