// One client connection: socket events in, one RequestParser, replies out.
// All replies produced while handling one 'data' event are encoded into the
// server's single shared ReplyWriter and leave in one socket.write(); the
// writer is drained at the end of every event, so it is always empty when
// the next event (for any connection) starts.
import type { Socket } from 'net';
import { authRequired } from '../commands/connection';
import type { CommandContext } from '../commands/types';
import { RequestParser, type RequestHandler } from '../protocol/request-parser';
import type { ReplyWriter } from '../protocol/reply-writer';
import type { ClientHandle } from './client-registry';
import { ClientState } from './client-state';
import type { ServerContext } from './server-context';

/** "ip:port" as Redis prints addresses (IPv6 in brackets). */
export function formatAddress(ip: string | undefined, port: number | undefined): string {
  const host = ip ?? '?';
  return host.includes(':') ? `[${host}]:${port ?? 0}` : `${host}:${port ?? 0}`;
}

function socketFd(socket: Socket): number {
  const handle = (socket as unknown as { _handle?: { fd?: number } })._handle;
  return typeof handle?.fd === 'number' ? handle.fd : -1;
}

export class Connection implements ClientHandle, RequestHandler {
  readonly client: ClientState;
  private readonly ctx: CommandContext;
  private readonly requests: RequestParser;
  /** True while this connection's input is being handled (its replies are in the shared writer). */
  private processing = false;
  /** No more input is processed (closing after a reply, killed, or gone). */
  private closing = false;
  /** The socket is destroyed or destroying: nothing may be written. */
  private destroyed = false;

  constructor(
    private readonly server: ServerContext,
    private readonly writer: ReplyWriter,
    private readonly socket: Socket,
    id: number,
    authenticated: boolean,
  ) {
    this.client = new ClientState(
      id,
      formatAddress(socket.remoteAddress, socket.remotePort),
      formatAddress(socket.localAddress, socket.localPort),
      socketFd(socket),
      authenticated,
    );
    this.client.outputBufferBytes = () => (this.destroyed ? 0 : socket.writableLength);
    this.ctx = { reply: writer, client: this.client, server };
    this.requests = new RequestParser(this);

    socket.setNoDelay(true);
    const keepAlive = server.config.getNumber('tcp-keepalive');
    if (keepAlive > 0) socket.setKeepAlive(true, keepAlive * 1000);
    socket.on('data', (chunk: Buffer) => this.onData(chunk));
    socket.on('error', (err: Error) => {
      this.server.log.verbose(`Error on client ${this.describe()}: ${err.message}`);
    });
    socket.on('close', () => this.onClose());
  }

  // ---- RequestHandler --------------------------------------------------------------

  command(argv: Buffer[]): void {
    this.server.commands.dispatch(this.ctx, argv);
  }

  shouldStop(): boolean {
    return this.closing || this.client.closeAfterReply;
  }

  authRequired(): boolean {
    return !this.client.authenticated && authRequired(this.client, this.server.config);
  }

  // ---- ClientHandle ----------------------------------------------------------------

  /** Close right away (CLIENT KILL, idle timeout, shutdown): replies not yet written are dropped. */
  close(reason: string): void {
    if (this.destroyed) return;
    this.server.log.verbose(`Closing client ${this.describe()}: ${reason}`);
    this.closing = true;
    this.destroyed = true;
    this.server.clients.remove(this);
    this.socket.destroy();
  }

  /**
   * Out-of-band bytes for this client (pubsub messages, a blocked client's
   * reply): queued behind the replies of the batch being handled if this
   * client is the one running, written straight to the socket otherwise.
   */
  deliver(bytes: Buffer): void {
    if (this.destroyed) return;
    if (this.processing) {
      this.writer.raw(bytes);
      return;
    }
    this.server.stats.totalNetOutputBytes += bytes.length;
    this.server.stats.totalWritesProcessed++;
    this.socket.write(bytes);
  }

  // ---- socket events ---------------------------------------------------------------

  private onData(chunk: Buffer): void {
    if (this.closing) return;
    const server = this.server;
    const stats = server.stats;
    const client = this.client;
    const requests = this.requests;
    stats.totalNetInputBytes += chunk.length;
    stats.totalReadsProcessed++;
    client.lastInteraction = Date.now();
    this.processing = true;
    try {
      requests.protoMaxBulkLen = server.config.getNumber('proto-max-bulk-len');
      requests.feed(chunk);
      if (requests.error !== null) {
        this.protocolError(requests.error);
      } else if (!this.shouldStop() &&
                 requests.queryBufferBytes > server.config.getNumber('client-query-buffer-limit')) {
        server.log.warning(`Closing client that reached max query buffer length: ${this.describe()} ` +
          `qbuf=${requests.queryBufferBytes}`);
        client.closeAfterReply = true;
      }
      client.queryBufferBytes = requests.queryBufferBytes;
    } catch (err) {
      // Nothing below the dispatcher should throw; if it does, only this client pays for it.
      server.log.warning(`Closing client ${this.describe()} after an internal error: ` +
        `${err instanceof Error ? err.stack ?? err.message : String(err)}`);
      client.closeAfterReply = true;
    } finally {
      this.processing = false;
      this.flush();
    }
    if (client.closeAfterReply) this.closeAfterFlush();
  }

  /** Send everything encoded for this client; always drains the shared writer. */
  flush(): void {
    const out = this.writer.take();
    if (out === null || this.destroyed) return;
    this.server.stats.totalNetOutputBytes += out.length;
    this.server.stats.totalWritesProcessed++;
    this.socket.write(out);
  }

  private protocolError(message: string): void {
    const fault = this.requests.fault;
    this.server.log.verbose(`Protocol error (${message}) from client: ${this.describe()}` +
      (fault !== null ? ` (${fault.message})` : ''));
    // Latin1: Redis echoes the offending byte raw ("expected '$', got 'X'").
    this.writer.raw(Buffer.from(`-ERR ${message}\r\n`, 'latin1'));
    this.server.stats.countError('ERR');
    this.client.closeAfterReply = true;
  }

  /** QUIT and protocol errors: the replies already queued go out, then the connection closes. */
  private closeAfterFlush(): void {
    if (this.destroyed) return;
    this.closing = true;
    this.destroyed = true;
    this.server.clients.remove(this);
    this.socket.end(() => this.socket.destroy());
  }

  private onClose(): void {
    this.closing = true;
    this.destroyed = true;
    this.server.clients.remove(this);
  }

  /** A short CLIENT LIST-style identification for log lines. */
  describe(): string {
    const c = this.client;
    return `id=${c.id} addr=${c.addr} laddr=${c.laddr} fd=${c.fd} name=${c.name}`;
  }
}
