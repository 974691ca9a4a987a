// CLIENT: ID, SETNAME, GETNAME, SETINFO, LIST, INFO, KILL, HELP. Declarations
// are Redis 7.0.15's (SETINFO's is Redis 7.2's: clients such as ioredis and
// node-redis send it on connect). CLIENT LIST / INFO print Redis 7.0's line
// format with what poolkv knows about each connection; see clientInfoLine.
import type { ClientState } from '../server/client-state';
import type { ClientHandle } from '../server/client-registry';
import { CLIENT_NAME_ERROR, isValidClientName } from './connection';
import { writeHelp } from './introspection';
import type { CommandContext, CommandFlag, CommandSpec } from './types';

const LLONG_MAX = 9223372036854775807n;

/** Client types as CLIENT LIST TYPE / CLIENT KILL TYPE name them (getClientTypeByName). */
type ClientType = 'normal' | 'replica' | 'pubsub' | 'master';

function clientTypeByName(name: string): ClientType | null {
  switch (name.toLowerCase()) {
    case 'normal': return 'normal';
    case 'slave':
    case 'replica': return 'replica';
    case 'pubsub': return 'pubsub';
    case 'master': return 'master';
    default: return null;
  }
}

/** getClientType: only normal and pubsub connections exist here (no replication). */
function clientType(client: ClientState): ClientType {
  return client.subscriptions > 0 ? 'pubsub' : 'normal';
}

/**
 * One CLIENT LIST line (catClientInfoString) without the trailing newline.
 * What poolkv cannot know is reported as the empty / zero value, never made up:
 * replies for all connections are encoded in one shared buffer and handed to
 * the socket, so there is no per-client reply buffer (rbs, rbp, obl = 0) and
 * what is queued shows as omem; argv-mem is the current command's arguments
 * for the client running CLIENT LIST / INFO, 0 for the others (they are idle).
 */
export function clientInfoLine(client: ClientState, current: ClientState | null, argvBytes: number): string {
  const now = Date.now();
  let flags = '';
  if (client.subscriptions > 0) flags += 'P';
  if (client.closeAfterReply) flags += 'c';
  if (flags === '') flags = 'N';
  const omem = client.outputBufferBytes();
  const qbuf = client.queryBufferBytes;
  const argvMem = client === current ? argvBytes : 0;
  return [
    `id=${client.id}`,
    `addr=${client.addr}`,
    `laddr=${client.laddr}`,
    `fd=${client.fd}`,
    `name=${client.name}`,
    `age=${Math.floor((now - client.createdAt) / 1000)}`,
    `idle=${Math.floor((now - client.lastInteraction) / 1000)}`,
    `flags=${flags}`,
    `db=${client.db}`,
    `sub=${client.subscriptions}`,
    'psub=0',
    'ssub=0',
    'multi=-1',
    `qbuf=${qbuf}`,
    'qbuf-free=0',
    `argv-mem=${argvMem}`,
    'multi-mem=0',
    'rbs=0',
    'rbp=0',
    'obl=0',
    `oll=${omem > 0 ? 1 : 0}`,
    `omem=${omem}`,
    `tot-mem=${qbuf + argvMem + omem}`,
    `events=r${omem > 0 ? 'w' : ''}`,
    `cmd=${client.lastCommand}`,
    'user=default',
    'redir=-1',
    `resp=${client.resp}`,
    `lib-name=${client.libName}`,
    `lib-ver=${client.libVer}`,
  ].join(' ');
}

function argvBytes(argv: Buffer[]): number {
  let n = 0;
  for (const arg of argv) n += arg.length;
  return n;
}

function clientId(ctx: CommandContext): void {
  ctx.reply.integer(ctx.client.id);
}

/** clientSetNameOrReply: '!'..'~' only; an empty name removes the name. */
function clientSetName(ctx: CommandContext, argv: Buffer[]): void {
  const name = argv[2]!;
  if (!isValidClientName(name)) {
    ctx.reply.error(CLIENT_NAME_ERROR);
    return;
  }
  ctx.client.name = name.toString('latin1');
  ctx.reply.ok();
}

function clientGetName(ctx: CommandContext): void {
  if (ctx.client.name === '') ctx.reply.nullBulk();
  else ctx.reply.bulk(Buffer.from(ctx.client.name, 'latin1'));
}

/** CLIENT SETINFO LIB-NAME|LIB-VER value (Redis 7.2's clientSetinfoCommand). */
function clientSetInfo(ctx: CommandContext, argv: Buffer[]): void {
  const attr = argv[2]!.toString('latin1');
  const value = argv[3]!;
  const lower = attr.toLowerCase();
  if (lower !== 'lib-name' && lower !== 'lib-ver') {
    ctx.reply.raw(Buffer.from(`-ERR Unrecognized option '${attr.replace(/[\r\n]/g, ' ')}'\r\n`, 'latin1'));
    return;
  }
  if (!isValidClientName(value)) {
    ctx.reply.raw(Buffer.from(`-ERR ${attr.replace(/[\r\n]/g, ' ')} cannot contain spaces, newlines or special characters.\r\n`, 'latin1'));
    return;
  }
  if (lower === 'lib-name') ctx.client.libName = value.toString('latin1');
  else ctx.client.libVer = value.toString('latin1');
  ctx.reply.ok();
}

function clientInfo(ctx: CommandContext, argv: Buffer[]): void {
  ctx.reply.verbatim(`${clientInfoLine(ctx.client, ctx.client, argvBytes(argv))}\n`);
}

function clientList(ctx: CommandContext, argv: Buffer[]): void {
  const reply = ctx.reply;
  const registry = ctx.server.clients;
  const current = ctx.client;
  const bytes = argvBytes(argv);
  let text = '';
  if (argv.length === 4 && argv[2]!.toString('latin1').toLowerCase() === 'type') {
    const type = clientTypeByName(argv[3]!.toString('latin1'));
    if (type === null) {
      reply.raw(Buffer.from(`-ERR Unknown client type '${argv[3]!.toString('latin1').replace(/[\r\n]/g, ' ')}'\r\n`, 'latin1'));
      return;
    }
    for (const client of registry.list()) {
      if (clientType(client) === type) text += `${clientInfoLine(client, current, bytes)}\n`;
    }
  } else if (argv.length > 3 && argv[2]!.toString('latin1').toLowerCase() === 'id') {
    const ids: number[] = [];
    for (let i = 3; i < argv.length; i++) {
      const id = parseLongLong(argv[i]!);
      if (id === null) {
        reply.error('ERR Invalid client ID');
        return;
      }
      ids.push(id);
    }
    for (const id of ids) {
      const handle = registry.get(id);
      if (handle !== undefined) text += `${clientInfoLine(handle.client, current, bytes)}\n`;
    }
  } else if (argv.length !== 2) {
    reply.error('ERR syntax error');
    return;
  } else {
    for (const client of registry.list()) text += `${clientInfoLine(client, current, bytes)}\n`;
  }
  reply.verbatim(text);
}

/** string2ll into a JS number (ids beyond 2^53 match no client anyway). */
function parseLongLong(arg: Buffer): number | null {
  const text = arg.toString('latin1');
  if (!/^(0|-?[1-9][0-9]*)$/.test(text) || text.length > 20) return null;
  const n = BigInt(text);
  if (n > LLONG_MAX || n < -LLONG_MAX - 1n) return null;
  return Number(n);
}

/** CLIENT KILL addr:port (old form) or CLIENT KILL <filter> <value> ... (new form). */
function clientKill(ctx: CommandContext, argv: Buffer[]): void {
  const reply = ctx.reply;
  let addr: string | null = null;
  let laddr: string | null = null;
  let type: ClientType | null = null;
  let id = 0;
  let skipMe = true;
  const oldForm = argv.length === 3;
  if (oldForm) {
    addr = argv[2]!.toString('latin1');
    skipMe = false; // with the old form a client may kill itself
  } else {
    for (let i = 2; i < argv.length; i += 2) {
      const option = argv[i]!.toString('latin1').toLowerCase();
      const moreArgs = argv.length > i + 1;
      const value = moreArgs ? argv[i + 1]! : null;
      if (option === 'id' && value !== null) {
        const n = parseLongLong(value);
        if (n === null || n < 1) {
          reply.error('ERR client-id should be greater than 0');
          return;
        }
        id = n;
      } else if (option === 'type' && value !== null) {
        type = clientTypeByName(value.toString('latin1'));
        if (type === null) {
          reply.raw(Buffer.from(`-ERR Unknown client type '${value.toString('latin1').replace(/[\r\n]/g, ' ')}'\r\n`, 'latin1'));
          return;
        }
      } else if (option === 'addr' && value !== null) {
        addr = value.toString('latin1');
      } else if (option === 'laddr' && value !== null) {
        laddr = value.toString('latin1');
      } else if (option === 'user' && value !== null) {
        // The only user is "default", and every connection is authenticated as it.
        if (value.toString('latin1') !== 'default') {
          reply.raw(Buffer.from(`-ERR No such user '${value.toString('latin1').replace(/[\r\n]/g, ' ')}'\r\n`, 'latin1'));
          return;
        }
      } else if (option === 'skipme' && value !== null) {
        const yesNo = value.toString('latin1').toLowerCase();
        if (yesNo === 'yes') skipMe = true;
        else if (yesNo === 'no') skipMe = false;
        else {
          reply.error('ERR syntax error');
          return;
        }
      } else {
        reply.error('ERR syntax error');
        return;
      }
    }
  }

  const victims: ClientHandle[] = [];
  let killSelf = false;
  for (const handle of ctx.server.clients.handles()) {
    const client = handle.client;
    if (addr !== null && client.addr !== addr) continue;
    if (laddr !== null && client.laddr !== laddr) continue;
    if (type !== null && clientType(client) !== type) continue;
    if (id !== 0 && client.id !== id) continue;
    if (client === ctx.client) {
      if (skipMe) continue;
      killSelf = true;
    } else {
      victims.push(handle);
    }
  }
  for (const handle of victims) handle.close('killed by CLIENT KILL');
  const killed = victims.length + (killSelf ? 1 : 0);
  if (oldForm) {
    if (killed === 0) reply.error('ERR No such client');
    else reply.ok();
  } else {
    reply.integer(killed);
  }
  // The reply goes out first, then this connection closes.
  if (killSelf) ctx.client.closeAfterReply = true;
}

const CLIENT_HELP = [
  'GETNAME',
  '    Return the name of the current connection.',
  'ID',
  '    Return the ID of the current connection.',
  'INFO',
  '    Return information about the current client connection.',
  'KILL <ip:port>',
  '    Kill connection made from <ip:port>.',
  'KILL <option> <value> [<option> <value> [...]]',
  '    Kill connections. Options are:',
  '    * ADDR (<ip:port>|<unixsocket>:0)',
  '      Kill connections made from the specified address',
  '    * LADDR (<ip:port>|<unixsocket>:0)',
  '      Kill connections made to specified local address',
  '    * TYPE (NORMAL|MASTER|REPLICA|PUBSUB)',
  '      Kill connections by type.',
  '    * USER <username>',
  '      Kill connections authenticated by <username>.',
  '    * SKIPME (YES|NO)',
  '      Skip killing current connection (default: yes).',
  'LIST [options ...]',
  '    Return information about client connections. Options:',
  '    * TYPE (NORMAL|MASTER|REPLICA|PUBSUB)',
  '      Return clients of specified type.',
  'SETNAME <name>',
  '    Assign the name <name> to the current connection.',
  'SETINFO <option> <value>',
  '    Set client meta attr. Options are:',
  '    * LIB-NAME: the client lib name.',
  '    * LIB-VER: the client lib version.',
];

function clientHelp(ctx: CommandContext, argv: Buffer[]): void {
  writeHelp(ctx, argv[0]!, CLIENT_HELP);
}

const USER_FLAGS: CommandFlag[] = ['noscript', 'loading', 'stale'];
const ADMIN_FLAGS: CommandFlag[] = ['admin', 'noscript', 'loading', 'stale'];
const USER_ACL = ['slow', 'connection'];
const ADMIN_ACL = ['admin', 'slow', 'dangerous', 'connection'];

export const commands: CommandSpec[] = [
  {
    name: 'client', arity: -2, flags: [],
    firstKey: 0, lastKey: 0, step: 0, acl: ['slow'],
    group: 'connection', since: '2.4.0', summary: 'A container for client connection commands',
    complexity: 'Depends on subcommand.',
    subcommands: [
      {
        name: 'getname', arity: 2, flags: USER_FLAGS, firstKey: 0, lastKey: 0, step: 0, acl: USER_ACL,
        group: 'connection', since: '2.6.9', summary: 'Get the current connection name', complexity: 'O(1)',
        handler: clientGetName,
      },
      {
        name: 'help', arity: 2, flags: ['loading', 'stale'], firstKey: 0, lastKey: 0, step: 0, acl: USER_ACL,
        group: 'connection', since: '5.0.0', summary: 'Show helpful text about the different subcommands',
        complexity: 'O(1)',
        handler: clientHelp,
      },
      {
        name: 'id', arity: 2, flags: USER_FLAGS, firstKey: 0, lastKey: 0, step: 0, acl: USER_ACL,
        group: 'connection', since: '5.0.0', summary: 'Returns the client ID for the current connection',
        complexity: 'O(1)',
        handler: clientId,
      },
      {
        name: 'info', arity: 2, flags: USER_FLAGS, firstKey: 0, lastKey: 0, step: 0, acl: USER_ACL,
        group: 'connection', since: '6.2.0', summary: 'Returns information about the current client connection.',
        complexity: 'O(1)',
        handler: clientInfo,
      },
      {
        name: 'kill', arity: -3, flags: ADMIN_FLAGS, firstKey: 0, lastKey: 0, step: 0, acl: ADMIN_ACL,
        group: 'connection', since: '2.4.0', summary: 'Kill the connection of a client',
        complexity: 'O(N) where N is the number of client connections',
        handler: clientKill,
      },
      {
        name: 'list', arity: -2, flags: ADMIN_FLAGS, firstKey: 0, lastKey: 0, step: 0, acl: ADMIN_ACL,
        group: 'connection', since: '2.4.0', summary: 'Get the list of client connections',
        complexity: 'O(N) where N is the number of client connections',
        handler: clientList,
      },
      {
        name: 'setinfo', arity: 4, flags: USER_FLAGS, firstKey: 0, lastKey: 0, step: 0, acl: USER_ACL,
        group: 'connection', since: '7.2.0', summary: 'Sets information specific to the client or connection.', complexity: 'O(1)',
        handler: clientSetInfo,
      },
      {
        name: 'setname', arity: 3, flags: USER_FLAGS, firstKey: 0, lastKey: 0, step: 0, acl: USER_ACL,
        group: 'connection', since: '2.6.9', summary: 'Set the current connection name', complexity: 'O(1)',
        handler: clientSetName,
      },
    ],
  },
];
