// The connected clients: ids, membership, and the counts INFO clients and
// CLIENT LIST report. Connections register themselves on accept and leave on
// close; commands reach other clients (CLIENT KILL, CLIENT LIST) through here.
import type { ClientState } from './client-state';

/** What the registry holds per connection: its state, and how to end it. */
export interface ClientHandle {
  readonly client: ClientState;
  /** Close the connection now (CLIENT KILL, idle timeout, SHUTDOWN); unsent replies are dropped. */
  close(reason: string): void;
  /** Send encoded RESP to this client outside its own request handling (pubsub, unblocking), in order. */
  deliver(bytes: Buffer): void;
}

export class ClientRegistry {
  private lastId = 0;
  /** Insertion order is id order, which is the order CLIENT LIST prints. */
  private readonly byId = new Map<number, ClientHandle>();

  /** `maxclients` is read on each accept, so CONFIG SET maxclients applies to the next connection. */
  constructor(private readonly maxClientsSetting: () => number) {}

  /** A fresh client id: monotonic from 1, never reused (CLIENT ID). */
  nextId(): number {
    return ++this.lastId;
  }

  add(handle: ClientHandle): void {
    this.byId.set(handle.client.id, handle);
  }

  remove(handle: ClientHandle): void {
    if (this.byId.get(handle.client.id) === handle) this.byId.delete(handle.client.id);
  }

  /** INFO clients connected_clients. */
  get connectedClients(): number {
    return this.byId.size;
  }

  /** INFO clients maxclients. */
  get maxClients(): number {
    return this.maxClientsSetting();
  }

  /** Whether one more client may connect (Redis refuses once connected >= maxclients). */
  hasRoom(): boolean {
    return this.byId.size < this.maxClientsSetting();
  }

  get(id: number): ClientHandle | undefined {
    return this.byId.get(id);
  }

  /** Every connected client's state, in id order (CLIENT LIST). */
  list(): ClientState[] {
    const out: ClientState[] = [];
    for (const handle of this.byId.values()) out.push(handle.client);
    return out;
  }

  /** Every connection, in id order (for commands that act on other clients). */
  handles(): IterableIterator<ClientHandle> {
    return this.byId.values();
  }

  /** Close every client (SHUTDOWN, server close). */
  closeAll(reason: string): void {
    for (const handle of [...this.byId.values()]) handle.close(reason);
  }
}
