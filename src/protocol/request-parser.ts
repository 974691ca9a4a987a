// Request parsing: RESP multibulk through redis-parser, inline commands
// through inline-parser.ts, with Redis's protocol limits enforced in between.
//
// redis-parser is a *reply* parser: it accepts any RESP type anywhere, trusts
// length headers blindly (`new Array(n)`, waiting for an n-byte bulk) and
// parses digits without validating them. So every command's framing is
// validated here first, by a light scanner that only reads the `*N` / `$len`
// header lines and skips payload bytes, and redis-parser is handed only bytes
// that are known to be a well-formed prefix of the stream. Complete commands
// are handed over in batches (one `execute` for a whole pipelined packet) and
// are dispatched synchronously from its returnReply callback.
//
// Redis checks a command's framing only after running the commands before it
// (their effects can change the rules: AUTH lifts the unauthenticated limits,
// QUIT ends processing). The scanner runs ahead within a batch, so a batch
// stops at the first command after which that state changed and scanning
// resumes from that command boundary.
import { PROTO_INLINE_MAX_SIZE, splitInlineArgs } from './inline-parser';

// redis-parser ships no type declarations; this is the part of it we use.
interface RespParserOptions {
  returnBuffers: boolean;
  returnReply(reply: unknown): void;
  returnError(err: Error): void;
  returnFatalError(err: Error): void;
}
interface RespParser {
  buffer: Buffer | null;
  offset: number;
  execute(chunk: Buffer): void;
}
const RedisParser = require('redis-parser') as new (options: RespParserOptions) => RespParser;

/**
 * Most elements one multibulk request may declare. Redis 7.0 accepts up to
 * INT_MAX; this keeps the older 1M cap because every parsed element is a JS
 * object and running out of V8 heap kills the whole server, not one client.
 */
export const MAX_MULTIBULK_LENGTH = 1024 * 1024;
/** Before authentication Redis caps requests tightly so an anonymous peer cannot make it buffer much. */
export const UNAUTHENTICATED_MAX_MULTIBULK = 10;
export const UNAUTHENTICATED_MAX_BULK = 16384;

const STAR = 0x2a;
const DOLLAR = 0x24;
const CR = 0x0d;
const LF = 0x0a;

// readHeader() outcomes (kept in a field so the hot path allocates nothing).
const HEADER_OK = 0;
const HEADER_INCOMPLETE = 1;
const HEADER_INVALID = 2;

// runBatch() outcomes other than a resume position (which is >= 0).
const BATCH_DONE = -1;
const BATCH_STOPPED = -2;

/**
 * Parse a Redis integer exactly like string2ll(): optional '-', no '+', no
 * leading zeros ("0" alone is fine, "-0" is not), no spaces, within int64.
 * Returns NaN when the text is not such an integer. Values beyond 2^53 are
 * returned rounded (callers only compare them against limits).
 */
export function parseRedisInteger(buf: Buffer, start = 0, end = buf.length): number {
  let i = start;
  if (i >= end) return NaN;
  if (end - i === 1 && buf[i] === 0x30) return 0;
  let negative = false;
  if (buf[i] === 0x2d) {
    negative = true;
    i++;
    if (i === end) return NaN;
  }
  const first = buf[i]!;
  if (first < 0x31 || first > 0x39) return NaN;
  const digits = end - i;
  if (digits > 19) return NaN;
  let n = 0;
  for (; i < end; i++) {
    const c = buf[i]!;
    if (c < 0x30 || c > 0x39) return NaN;
    n = n * 10 + (c - 0x30);
  }
  if (digits >= 16) {
    // Beyond 2^53 the digit loop is inexact: decide the int64 range and round once, via BigInt.
    const big = BigInt(buf.toString('latin1', start, end));
    if (big > 9223372036854775807n || big < -9223372036854775808n) return NaN;
    return Number(big);
  }
  return negative ? -n : n;
}

/** What the parser needs from the connection that owns it. */
export interface RequestHandler {
  /** Run one command; argv buffers are only valid during the call. */
  command(argv: Buffer[]): void;
  /** True once nothing more may be processed for this client (QUIT, CLIENT KILL, closed socket). */
  shouldStop(): boolean;
  /** Redis's authRequired(): the client still has to authenticate (tighter header limits apply). */
  authRequired(): boolean;
}

export class RequestParser {
  /** proto-max-bulk-len; the connection refreshes it before each feed (CONFIG SET may change it). */
  protoMaxBulkLen = 512 * 1024 * 1024;
  /** Set once a protocol error was found: the message to reply (the connection adds '-ERR '); the client must be closed. */
  error: string | null = null;

  private readonly resp: RespParser;
  private readonly handler: RequestHandler;

  // Scanner state that survives between chunks.
  /** Elements of the current multibulk command not yet fully received; 0 at a command boundary. */
  private elemsLeft = 0;
  /** Payload bytes (plus the trailing CRLF) of the current bulk still to come. */
  private skip = 0;
  /** Bytes of an incomplete header or inline line, not yet given to redis-parser. */
  private carry: Buffer | null = null;
  /** Bytes of the current unfinished multibulk command already given to redis-parser. */
  private commandBytes = 0;

  // Per-batch bookkeeping, shared with the returnReply callback.
  /** Stream positions (in the current chunk) where each command of the batch ends. */
  private readonly boundaries: number[] = [];
  private batchReplies = 0;
  private batchStopAt = -1;
  private batchUnauthenticated = false;
  private parserFault: Error | null = null;

  constructor(handler: RequestHandler) {
    this.handler = handler;
    this.resp = new RedisParser({
      returnBuffers: true,
      returnReply: (reply) => this.onParsed(reply),
      // Never reached: the scanner lets no '-' replies or bad type bytes through.
      returnError: (err) => this.onParserFault(err),
      returnFatalError: (err) => this.onParserFault(err),
    });
  }

  /** Unparsed bytes held for this client (INFO qbuf, client-query-buffer-limit). */
  get queryBufferBytes(): number {
    return (this.elemsLeft > 0 ? this.commandBytes : 0) + (this.carry !== null ? this.carry.length : 0);
  }

  /** Process one chunk read from the socket: run every complete command in it, keep the rest. */
  feed(data: Buffer): void {
    if (this.error !== null) return;
    let chunk = data;
    if (this.carry !== null) {
      chunk = Buffer.concat([this.carry, data]);
      this.carry = null;
    }
    this.scan(chunk);
  }

  private scan(chunk: Buffer): void {
    const end = chunk.length;
    let pos = 0;
    /** Bytes [batchStart, pos) are validated but not yet given to redis-parser. */
    let batchStart = 0;
    /** Where the current command starts in this chunk; -1 when it began in an earlier chunk. */
    let cmdStart = this.elemsLeft > 0 ? -1 : 0;
    let unauthenticated = this.handler.authRequired();
    let failure: string | null = null;
    let carryFrom = -1;
    this.boundaries.length = 0;

    for (;;) {
      while (pos < end) {
        if (this.skip > 0) {
          const n = Math.min(this.skip, end - pos);
          this.skip -= n;
          pos += n;
          if (this.skip > 0) break;
          if (--this.elemsLeft > 0) continue;
          // A whole multibulk command has been validated.
          this.boundaries.push(pos);
          cmdStart = pos;
          if (unauthenticated) {
            // Run it before looking at the next header: it may be the AUTH that lifts the limits.
            const r = this.runBatch(chunk, batchStart, pos, unauthenticated);
            if (r === BATCH_STOPPED) return;
            pos = cmdStart = batchStart = r === BATCH_DONE ? pos : r;
            unauthenticated = this.handler.authRequired();
          }
          continue;
        }

        if (this.elemsLeft === 0) {
          cmdStart = pos;
          if (chunk[pos] !== STAR) {
            // Inline command. Run the multibulk commands before it first, to keep replies in order.
            const r = this.runBatch(chunk, batchStart, pos, unauthenticated);
            if (r === BATCH_STOPPED) return;
            if (r !== BATCH_DONE) {
              pos = cmdStart = batchStart = r;
              unauthenticated = this.handler.authRequired();
              continue;
            }
            batchStart = pos;
            const newline = chunk.indexOf(LF, pos);
            if (newline === -1) {
              if (end - pos > PROTO_INLINE_MAX_SIZE) failure = 'Protocol error: too big inline request';
              else carryFrom = pos;
              break;
            }
            const lineEnd = newline > pos && chunk[newline - 1] === CR ? newline - 1 : newline;
            const argv = splitInlineArgs(chunk, pos, lineEnd);
            if (argv === null) {
              failure = 'Protocol error: unbalanced quotes in request';
              break;
            }
            pos = batchStart = cmdStart = newline + 1;
            if (argv.length > 0) {
              this.handler.command(argv);
              if (this.handler.shouldStop()) return;
              unauthenticated = this.handler.authRequired();
            }
            continue;
          }

          const count = this.readHeader(chunk, pos, end);
          if (this.headerStatus === HEADER_INCOMPLETE) {
            if (end - pos > PROTO_INLINE_MAX_SIZE) failure = 'Protocol error: too big mbulk count string';
            else carryFrom = pos;
            break;
          }
          if (this.headerStatus === HEADER_INVALID || count > MAX_MULTIBULK_LENGTH) {
            failure = 'Protocol error: invalid multibulk length';
            break;
          }
          if (count > UNAUTHENTICATED_MAX_MULTIBULK && unauthenticated) {
            failure = 'Protocol error: unauthenticated multibulk length';
            break;
          }
          pos = this.headerNext;
          if (count <= 0) {
            // An empty request: redis-parser returns [] or null for it, which is skipped.
            this.boundaries.push(pos);
            cmdStart = pos;
            continue;
          }
          this.elemsLeft = count;
          continue;
        }

        // Inside a multibulk command: the next bulk header.
        const length = this.readHeader(chunk, pos, end);
        if (this.headerStatus === HEADER_INCOMPLETE) {
          if (end - pos > PROTO_INLINE_MAX_SIZE) failure = 'Protocol error: too big bulk count string';
          else carryFrom = pos;
          break;
        }
        if (chunk[pos] !== DOLLAR) {
          failure = `Protocol error: expected '$', got '${String.fromCharCode(chunk[pos]!)}'`;
          break;
        }
        if (this.headerStatus === HEADER_INVALID || length < 0 || length > this.protoMaxBulkLen) {
          failure = 'Protocol error: invalid bulk length';
          break;
        }
        if (length > UNAUTHENTICATED_MAX_BULK && unauthenticated) {
          failure = 'Protocol error: unauthenticated bulk length';
          break;
        }
        pos = this.headerNext;
        this.skip = length + 2;
      }

      // Hand over what was validated: complete commands run now; a partial
      // command's bytes are kept by redis-parser until the rest arrives. On a
      // failure only the commands before the bad one run.
      const feedEnd = carryFrom >= 0 ? carryFrom
        : failure !== null ? (cmdStart >= 0 ? Math.max(cmdStart, batchStart) : batchStart)
        : end;
      const r = this.runBatch(chunk, batchStart, feedEnd, unauthenticated);
      if (r === BATCH_STOPPED) return;
      if (r !== BATCH_DONE) {
        // The client's state changed mid-batch: rescan from that command boundary.
        pos = cmdStart = batchStart = r;
        failure = null;
        carryFrom = -1;
        unauthenticated = this.handler.authRequired();
        continue;
      }
      if (failure !== null) {
        this.error = failure;
        return;
      }
      if (this.elemsLeft > 0) {
        this.commandBytes = cmdStart >= 0 ? feedEnd - cmdStart : this.commandBytes + feedEnd;
      } else {
        this.commandBytes = 0;
      }
      // Copied: the socket's chunk should not be pinned by a few leftover bytes.
      if (carryFrom >= 0) this.carry = Buffer.from(chunk.subarray(carryFrom));
      return;
    }
  }

  // readHeader() results.
  private headerStatus = HEADER_OK;
  private headerNext = 0;

  /**
   * Read the integer of a `*N` / `$N` line starting at buf[pos] (the type
   * byte). Like Redis it needs the CR and one byte after it; the number is
   * validated as string2ll() would.
   */
  private readHeader(buf: Buffer, pos: number, end: number): number {
    // Fast path: a plain positive number directly followed by CR.
    let i = pos + 1;
    let n = 0;
    while (i < end) {
      const c = buf[i]!;
      if (c < 0x30 || c > 0x39) break;
      n = n * 10 + (c - 0x30);
      i++;
    }
    const digits = i - pos - 1;
    if (i + 1 < end && buf[i] === CR && digits > 0 && digits < 16 && (buf[pos + 1] !== 0x30 || digits === 1)) {
      this.headerStatus = HEADER_OK;
      this.headerNext = i + 2;
      return n;
    }
    // Anything else (negative, malformed, incomplete, very long): find the line end first, as Redis does.
    const cr = buf.indexOf(CR, pos + 1);
    if (cr === -1 || cr + 1 >= end) {
      this.headerStatus = HEADER_INCOMPLETE;
      return 0;
    }
    this.headerNext = cr + 2;
    const value = parseRedisInteger(buf, pos + 1, cr);
    this.headerStatus = Number.isNaN(value) ? HEADER_INVALID : HEADER_OK;
    return value;
  }

  /**
   * Give chunk[from, to) to redis-parser, which dispatches every complete
   * command in it. Returns BATCH_DONE, BATCH_STOPPED (the client must not
   * process anything more), or the stream position to rescan from when the
   * client's state changed after one of the commands.
   */
  private runBatch(chunk: Buffer, from: number, to: number, unauthenticated: boolean): number {
    if (to <= from) {
      this.boundaries.length = 0;
      return BATCH_DONE;
    }
    this.batchReplies = 0;
    this.batchStopAt = -1;
    this.batchUnauthenticated = unauthenticated;
    try {
      this.resp.execute(chunk.subarray(from, to));
    } catch (err) {
      // A parser failure is this client's problem only.
      this.parserFault ??= err instanceof Error ? err : new Error(String(err));
    }
    if (this.parserFault !== null) {
      this.error = 'Protocol error: invalid request';
      this.boundaries.length = 0;
      return BATCH_STOPPED;
    }
    const stopAt = this.batchStopAt;
    const resumeAt = stopAt >= 0 ? this.boundaries[stopAt] : BATCH_DONE;
    this.boundaries.length = 0;
    if (stopAt < 0) return BATCH_DONE;
    if (this.handler.shouldStop()) return BATCH_STOPPED;
    if (resumeAt === undefined) {
      // redis-parser saw more commands than the scanner validated: never expected, but fatal if so.
      this.parserFault = new Error('request scanner and redis-parser disagree on command boundaries');
      this.error = 'Protocol error: invalid request';
      return BATCH_STOPPED;
    }
    // Any partial command after the stop point was dropped by the parser along with the rest.
    this.elemsLeft = 0;
    this.skip = 0;
    this.commandBytes = 0;
    return resumeAt;
  }

  private onParsed(reply: unknown): void {
    const index = this.batchReplies++;
    // `*0` and `*-1` arrive as [] and null: empty requests, nothing to run.
    if (Array.isArray(reply) && reply.length > 0) this.handler.command(reply as Buffer[]);
    if (this.handler.shouldStop() || this.handler.authRequired() !== this.batchUnauthenticated) {
      this.batchStopAt = index;
      // Ends redis-parser's loop at this command boundary; the rest of the batch is dropped.
      const p = this.resp;
      if (p.buffer !== null) p.offset = p.buffer.length;
    }
  }

  private onParserFault(err: Error): void {
    this.parserFault ??= err;
    const p = this.resp;
    if (p.buffer !== null) p.offset = p.buffer.length;
  }

  /** The first parser failure, for logging. */
  get fault(): Error | null {
    return this.parserFault;
  }
}
