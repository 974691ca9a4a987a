// The "connection" command group: PING, ECHO, QUIT, SELECT, HELLO, AUTH.
// Declarations (arity, flags, ACL categories, docs) are Redis 7.0.15's, and
// the replies follow its helloCommand/authCommand/selectCommand/pingCommand.
import { createHash, timingSafeEqual } from 'crypto';
import { parseRedisInteger } from '../protocol/request-parser';
import type { ClientState } from '../server/client-state';
import type { ServerContext } from '../server/server-context';
import type { CommandContext, CommandSpec } from './types';

/** REDIS_VERSION reported by HELLO (and INFO server redis_version). */
export const REDIS_VERSION = '7.0.15';

const INT_MIN = -2147483648;
const INT_MAX = 2147483647;
const PONG = Buffer.from('+PONG\r\n');
const DEFAULT_USER = Buffer.from('default');
const PUBSUB_PONG_EMPTY = Buffer.from('*2\r\n$4\r\npong\r\n$0\r\n\r\n');
const PUBSUB_PONG_HEADER = Buffer.from('*2\r\n$4\r\npong\r\n');

export const CLIENT_NAME_ERROR = 'ERR Client names cannot contain spaces, newlines or special characters.';

/** Redis's validateClientName(): printable ASCII without spaces ('!'..'~'); empty is allowed (clears the name). */
export function isValidClientName(name: Buffer): boolean {
  for (let i = 0; i < name.length; i++) {
    const c = name[i]!;
    if (c < 0x21 || c > 0x7e) return false;
  }
  return true;
}

/**
 * Redis's authRequired(): the default user has a password (requirepass) and
 * this client has not authenticated. Clearing requirepass at runtime frees
 * clients that never authenticated, as in Redis.
 */
export function authRequired(client: ClientState, config: ServerContext['config']): boolean {
  return !client.authenticated && config.getString('requirepass') !== '';
}

function sha256(data: Buffer): Buffer {
  return createHash('sha256').update(data).digest();
}

/**
 * The only user is "default" (no ACL users yet). Without requirepass it is
 * "nopass" and accepts any password; with it, only that password. Compared
 * through digests in constant time, as Redis's ACL does.
 */
function checkCredentials(ctx: CommandContext, username: Buffer, password: Buffer): boolean {
  if (username.toString('latin1') !== 'default') return false;
  const required = ctx.server.config.getString('requirepass');
  if (required === '') return true;
  return timingSafeEqual(sha256(password), sha256(Buffer.from(required)));
}

function ping(ctx: CommandContext, argv: Buffer[]): void {
  const reply = ctx.reply;
  if (argv.length > 2) {
    reply.error("ERR wrong number of arguments for 'ping' command");
    return;
  }
  // A RESP2 client in pubsub mode can only read pushes, so PING answers in that shape.
  if (ctx.client.subscriptions > 0 && ctx.client.resp === 2) {
    if (argv.length === 1) {
      reply.raw(PUBSUB_PONG_EMPTY);
    } else {
      reply.raw(PUBSUB_PONG_HEADER);
      reply.bulk(argv[1]!);
    }
    return;
  }
  if (argv.length === 1) reply.raw(PONG);
  else reply.bulk(argv[1]!);
}

function echo(ctx: CommandContext, argv: Buffer[]): void {
  ctx.reply.bulk(argv[1]!);
}

function quit(ctx: CommandContext): void {
  ctx.reply.ok();
  ctx.client.closeAfterReply = true;
}

function select(ctx: CommandContext, argv: Buffer[]): void {
  const reply = ctx.reply;
  const id = parseRedisInteger(argv[1]!);
  if (Number.isNaN(id)) {
    reply.error('ERR value is not an integer or out of range');
    return;
  }
  if (id < INT_MIN || id > INT_MAX) {
    reply.error(`ERR value is out of range, value must between ${INT_MIN} and ${INT_MAX}`);
    return;
  }
  if (id < 0 || id >= ctx.server.keyspace.dbCount) {
    reply.error('ERR DB index is out of range');
    return;
  }
  ctx.client.db = id;
  reply.ok();
}

function hello(ctx: CommandContext, argv: Buffer[]): void {
  const reply = ctx.reply;
  const client = ctx.client;
  let version = 0;
  let next = 1;
  if (argv.length >= 2) {
    version = parseRedisInteger(argv[next++]!);
    if (Number.isNaN(version)) {
      reply.error('ERR Protocol version is not an integer or out of range');
      return;
    }
    if (version < 2 || version > 3) {
      reply.error('NOPROTO unsupported protocol version');
      return;
    }
  }

  let username: Buffer | null = null;
  let password: Buffer | null = null;
  let clientName: Buffer | null = null;
  for (let j = next; j < argv.length; j++) {
    const moreArgs = argv.length - 1 - j;
    const option = argv[j]!.toString('latin1').toLowerCase();
    if (option === 'auth' && moreArgs >= 2) {
      username = argv[j + 1]!;
      password = argv[j + 2]!;
      j += 2;
    } else if (option === 'setname' && moreArgs >= 1) {
      clientName = argv[j + 1]!;
      if (!isValidClientName(clientName)) {
        reply.error(CLIENT_NAME_ERROR);
        return;
      }
      j++;
    } else {
      // Raw bytes of the option as Redis's %s prints them (up to a NUL), CR/LF made spaces.
      const raw = argv[j]!;
      const nul = raw.indexOf(0);
      const text = raw.toString('latin1', 0, nul === -1 ? raw.length : nul).replace(/[\r\n]/g, ' ');
      reply.raw(Buffer.from(`-ERR Syntax error in HELLO option '${text}'\r\n`, 'latin1'));
      return;
    }
  }

  if (username !== null && password !== null) {
    if (!checkCredentials(ctx, username, password)) {
      reply.error('WRONGPASS invalid username-password pair or user is disabled.');
      return;
    }
    client.authenticated = true;
  }
  if (authRequired(client, ctx.server.config)) {
    reply.error('NOAUTH HELLO must be called with the client already authenticated, otherwise the ' +
      'HELLO AUTH <user> <pass> option can be used to authenticate the client and select the RESP ' +
      'protocol version at the same time');
    return;
  }

  // Switch first: the reply itself is already in the new protocol.
  if (version === 2 || version === 3) {
    client.resp = version;
    reply.resp = version;
  }
  if (clientName !== null) client.name = clientName.toString('latin1');

  reply.mapHeader(7);
  reply.bulk('server');
  reply.bulk('redis');
  reply.bulk('version');
  reply.bulk(REDIS_VERSION);
  reply.bulk('proto');
  reply.integer(client.resp);
  reply.bulk('id');
  reply.integer(client.id);
  reply.bulk('mode');
  reply.bulk('standalone');
  reply.bulk('role');
  reply.bulk('master');
  reply.bulk('modules');
  reply.arrayHeader(0);
}

function auth(ctx: CommandContext, argv: Buffer[]): void {
  const reply = ctx.reply;
  if (argv.length > 3) {
    reply.error('ERR syntax error');
    return;
  }
  let username: Buffer;
  let password: Buffer;
  if (argv.length === 2) {
    // The one-argument form is an error when the default user has no password, as in Redis.
    if (ctx.server.config.getString('requirepass') === '') {
      reply.error('ERR AUTH <password> called without any password configured for the default user. ' +
        'Are you sure your configuration is correct?');
      return;
    }
    username = DEFAULT_USER;
    password = argv[1]!;
  } else {
    username = argv[1]!;
    password = argv[2]!;
  }
  if (checkCredentials(ctx, username, password)) {
    ctx.client.authenticated = true;
    reply.ok();
  } else {
    reply.error('WRONGPASS invalid username-password pair or user is disabled.');
  }
}

export const commands: CommandSpec[] = [
  {
    name: 'auth', arity: -2,
    flags: ['noscript', 'loading', 'stale', 'fast', 'no_auth', 'allow_busy'],
    firstKey: 0, lastKey: 0, step: 0, acl: ['fast', 'connection'],
    group: 'connection', since: '1.0.0', summary: 'Authenticate to the server',
    complexity: 'O(N) where N is the number of passwords defined for the user',
    handler: auth,
  },
  {
    name: 'echo', arity: 2,
    flags: ['loading', 'stale', 'fast'],
    firstKey: 0, lastKey: 0, step: 0, acl: ['fast', 'connection'],
    group: 'connection', since: '1.0.0', summary: 'Echo the given string', complexity: 'O(1)',
    handler: echo,
  },
  {
    name: 'hello', arity: -1,
    flags: ['noscript', 'loading', 'stale', 'fast', 'no_auth', 'allow_busy'],
    firstKey: 0, lastKey: 0, step: 0, acl: ['fast', 'connection'],
    group: 'connection', since: '6.0.0', summary: 'Handshake with Redis', complexity: 'O(1)',
    handler: hello,
  },
  {
    name: 'ping', arity: -1,
    flags: ['fast'],
    firstKey: 0, lastKey: 0, step: 0, acl: ['fast', 'connection'],
    group: 'connection', since: '1.0.0', summary: 'Ping the server', complexity: 'O(1)',
    handler: ping,
  },
  {
    name: 'quit', arity: -1,
    flags: ['noscript', 'loading', 'stale', 'fast', 'no_auth', 'allow_busy'],
    firstKey: 0, lastKey: 0, step: 0, acl: ['fast', 'connection'],
    group: 'connection', since: '1.0.0', summary: 'Close the connection', complexity: 'O(1)',
    handler: quit,
  },
  {
    name: 'select', arity: 2,
    flags: ['loading', 'stale', 'fast'],
    firstKey: 0, lastKey: 0, step: 0, acl: ['fast', 'connection'],
    group: 'connection', since: '1.0.0', summary: 'Change the selected database for the current connection',
    complexity: 'O(1)',
    handler: select,
  },
];
