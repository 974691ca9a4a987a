// RESP2/RESP3 reply encoder. Replies for one batch of pipelined commands are
// appended to a single growable buffer and leave in one socket write, so the
// hot path allocates nothing per reply: numbers and short strings are encoded
// straight into the buffer with Buffer methods.

const CRLF = 0x0a0d; // "\r\n" as a little-endian uint16
const INITIAL_CAPACITY = 64 * 1024;

// Redis's shared replies, pre-encoded once.
const SMALL_INT_REPLIES: Buffer[] = [];
for (let i = 0; i < 10000; i++) SMALL_INT_REPLIES.push(Buffer.from(`:${i}\r\n`, 'latin1'));
const OK = Buffer.from('+OK\r\n');
/** Pre-encoded "$n\r\n" and "*n\r\n" headers for small n, like Redis's shared bulkhdr/mbulkhdr. */
const SHARED_HEADERS = 1024;
const BULK_HEADERS: Buffer[] = [];
const ARRAY_HEADERS: Buffer[] = [];
for (let i = 0; i < SHARED_HEADERS; i++) {
  BULK_HEADERS.push(Buffer.from(`$${i}\r\n`, 'latin1'));
  ARRAY_HEADERS.push(Buffer.from(`*${i}\r\n`, 'latin1'));
}
/** Up to this many bytes, a plain loop beats Buffer.copy's argument checks (measured on Node 20). */
const SHORT_COPY = 32;
const NULL_BULK2 = Buffer.from('$-1\r\n');
const NULL_ARRAY2 = Buffer.from('*-1\r\n');
const NULL3 = Buffer.from('_\r\n');

export type RespVersion = 2 | 3;

export class ReplyWriter {
  buf: Buffer = Buffer.allocUnsafe(INITIAL_CAPACITY);
  /** Bytes encoded so far in this batch. */
  length = 0;
  /** Protocol of the client being served; set by the connection before dispatch. */
  resp: RespVersion = 2;

  /** Make room for n more bytes. */
  ensure(n: number): void {
    const need = this.length + n;
    if (need <= this.buf.length) return;
    let cap = this.buf.length * 2;
    while (cap < need) cap *= 2;
    const next = Buffer.allocUnsafe(cap);
    this.buf.copy(next, 0, 0, this.length);
    this.buf = next;
  }

  /** Hand the encoded batch over (copied, since this buffer is reused) and start a new one. */
  take(): Buffer | null {
    if (this.length === 0) return null;
    const out = Buffer.allocUnsafe(this.length);
    this.buf.copy(out, 0, 0, this.length);
    this.length = 0;
    if (this.buf.length > 16 * INITIAL_CAPACITY) this.buf = Buffer.allocUnsafe(INITIAL_CAPACITY);
    return out;
  }

  /** Forget everything written since `mark` (used to discard a half-written reply). */
  rewind(mark: number): void {
    this.length = mark;
  }

  raw(bytes: Buffer): void {
    const n = bytes.length;
    this.ensure(n);
    if (n <= SHORT_COPY) {
      const buf = this.buf;
      let at = this.length;
      for (let i = 0; i < n; i++) buf[at++] = bytes[i]!;
      this.length = at;
      return;
    }
    bytes.copy(this.buf, this.length);
    this.length += n;
  }

  private ascii(s: string): void {
    this.ensure(s.length * 3);
    this.length += this.buf.write(s, this.length, 'latin1');
  }

  private crlf(): void {
    this.buf.writeUInt16LE(CRLF, this.length);
    this.length += 2;
  }

  private prefixedNumber(prefix: string, n: number): void {
    if (n >= 0 && n < SHARED_HEADERS && (prefix === '$' || prefix === '*')) {
      this.raw(prefix === '$' ? BULK_HEADERS[n]! : ARRAY_HEADERS[n]!);
      return;
    }
    this.ensure(24);
    this.buf[this.length++] = prefix.charCodeAt(0);
    this.length += this.buf.write(String(n), this.length, 'latin1');
    this.crlf();
  }

  ok(): void {
    this.raw(OK);
  }

  /** +status. Must not contain CR or LF. */
  simple(s: string): void {
    this.ensure(s.length * 3 + 3);
    this.buf[this.length++] = 0x2b; // '+'
    this.length += this.buf.write(s, this.length, 'utf8');
    this.crlf();
  }

  /** -error. `message` includes the code: "ERR ...", "WRONGTYPE ...", "OOM ...". */
  error(message: string): void {
    this.ensure(message.length * 3 + 3);
    this.buf[this.length++] = 0x2d; // '-'
    this.length += this.buf.write(message, this.length, 'utf8');
    this.crlf();
  }

  integer(n: number | bigint): void {
    if (typeof n === 'number' && n >= 0 && n < 10000 && Number.isInteger(n)) {
      this.raw(SMALL_INT_REPLIES[n]!);
      return;
    }
    this.ensure(24);
    this.buf[this.length++] = 0x3a; // ':'
    this.length += this.buf.write(String(n), this.length, 'latin1');
    this.crlf();
  }

  bulk(value: Buffer | string): void {
    if (typeof value === 'string') {
      const len = Buffer.byteLength(value);
      this.prefixedNumber('$', len);
      this.ensure(len + 2);
      this.length += this.buf.write(value, this.length, 'utf8');
    } else {
      this.prefixedNumber('$', value.length);
      this.ensure(value.length + 2);
      value.copy(this.buf, this.length);
      this.length += value.length;
    }
    this.crlf();
  }

  /**
   * Start a bulk string of `len` bytes whose payload the caller copies into
   * `this.buf` at the returned offset (e.g. straight out of the pool), then
   * call endBulk(). Avoids an intermediate Buffer per value.
   */
  beginBulk(len: number): number {
    this.prefixedNumber('$', len);
    this.ensure(len + 2);
    const at = this.length;
    this.length += len;
    return at;
  }

  endBulk(): void {
    this.crlf();
  }

  /** Null bulk string: $-1 in RESP2, _ in RESP3. */
  nullBulk(): void {
    this.raw(this.resp === 3 ? NULL3 : NULL_BULK2);
  }

  /** Null array: *-1 in RESP2, _ in RESP3. */
  nullArray(): void {
    this.raw(this.resp === 3 ? NULL3 : NULL_ARRAY2);
  }

  arrayHeader(n: number): void {
    this.prefixedNumber('*', n);
  }

  /** A map of n pairs: %n in RESP3, a flat array of 2n in RESP2. */
  mapHeader(n: number): void {
    if (this.resp === 3) this.prefixedNumber('%', n);
    else this.prefixedNumber('*', n * 2);
  }

  /** A set of n members: ~n in RESP3, an array in RESP2. */
  setHeader(n: number): void {
    this.prefixedNumber(this.resp === 3 ? '~' : '*', n);
  }

  /** A double: ,d in RESP3, a bulk string in RESP2 (formatted like Redis's %.17g). */
  double(formatted: string): void {
    if (this.resp === 3) {
      this.ensure(formatted.length + 3);
      this.buf[this.length++] = 0x2c; // ','
      this.ascii(formatted);
      this.crlf();
    } else {
      this.bulk(formatted);
    }
  }

  /** A boolean: #t/#f in RESP3, :1/:0 in RESP2. */
  boolean(b: boolean): void {
    if (this.resp === 3) this.ascii(b ? '#t\r\n' : '#f\r\n');
    else this.integer(b ? 1 : 0);
  }

  /** Verbatim string (INFO, CLIENT INFO, LCS...): =len\r\ntxt:... in RESP3, a bulk string in RESP2. */
  verbatim(text: string, format = 'txt'): void {
    if (this.resp === 3) {
      const len = Buffer.byteLength(text) + 4;
      this.prefixedNumber('=', len);
      this.ensure(len + 2);
      this.length += this.buf.write(format + ':', this.length, 'latin1');
      this.length += this.buf.write(text, this.length, 'utf8');
      this.crlf();
    } else {
      this.bulk(text);
    }
  }

  /** Write a list of bulk strings as an array (small helper for KEYS, CONFIG GET...). */
  bulkArray(items: Array<Buffer | string>): void {
    this.arrayHeader(items.length);
    for (const it of items) this.bulk(it);
  }
}
