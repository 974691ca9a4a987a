// The value parsers Redis's config layer uses, reproduced exactly so that a
// poolkv config file or CONFIG SET accepts and rejects what redis-server does:
// memtoull (sizes with units), string2ll (strict integers), yesnotoi
// (booleans), and the sds helpers that split and quote config lines.

const ULLONG_MAX = (1n << 64n) - 1n;

/** Size units exactly as Redis's memtoull knows them: k/m/g are powers of 1000, kb/mb/gb of 1024. */
const MEMORY_UNITS: ReadonlyMap<string, bigint> = new Map([
  ['', 1n],
  ['b', 1n],
  ['k', 1000n],
  ['kb', 1024n],
  ['m', 1000n * 1000n],
  ['mb', 1024n * 1024n],
  ['g', 1000n * 1000n * 1000n],
  ['gb', 1024n * 1024n * 1024n],
]);

/**
 * Redis's memtoull: leading decimal digits, then an optional unit (case-insensitive).
 * Returns null where Redis reports an error. Like Redis (strtoull without a
 * range check, then an unsigned multiply), no digits at all reads as 0 ("kb" is
 * 0), a digit run beyond 2^64-1 saturates at 2^64-1, and the product wraps
 * modulo 2^64.
 */
export function memtoull(text: string): bigint | null {
  if (text.startsWith('-')) return null;
  let digitsEnd = 0;
  while (digitsEnd < text.length && text.charCodeAt(digitsEnd) >= 0x30 && text.charCodeAt(digitsEnd) <= 0x39) digitsEnd++;
  const multiplier = MEMORY_UNITS.get(text.slice(digitsEnd).toLowerCase());
  if (multiplier === undefined) return null;
  // Redis copies the digits into a 128-byte buffer and gives up on longer runs.
  if (digitsEnd >= 128) return null;
  let value = digitsEnd === 0 ? 0n : BigInt(text.slice(0, digitsEnd));
  if (value > ULLONG_MAX) value = ULLONG_MAX; // strtoull's ERANGE result, which Redis does not check
  return (value * multiplier) & ULLONG_MAX;
}

/** Reinterpret an unsigned 64-bit value as C's `long long` (how Redis stores a parsed memory value). */
export function toSigned64(value: bigint): bigint {
  return BigInt.asIntN(64, value);
}

const LLONG_MIN = -(1n << 63n);
const LLONG_MAX = (1n << 63n) - 1n;

/**
 * Redis's string2ll: an optional '-', then digits with no leading zero (a lone
 * "0" is fine), nothing else, within the long long range. Returns null otherwise.
 */
export function string2ll(text: string): bigint | null {
  if (text.length === 0 || text.length > 20) return null;
  if (text === '0') return 0n;
  let i = 0;
  const negative = text[0] === '-';
  if (negative) i = 1;
  if (i >= text.length) return null;
  const first = text.charCodeAt(i);
  if (first < 0x31 || first > 0x39) return null; // no '+', no leading zero, no "-0"
  for (let j = i + 1; j < text.length; j++) {
    const c = text.charCodeAt(j);
    if (c < 0x30 || c > 0x39) return null;
  }
  const value = BigInt(text);
  if (value < LLONG_MIN || value > LLONG_MAX) return null;
  return value;
}

/** Redis's yesnotoi: "yes" → true, "no" → false (case-insensitive), anything else → null. */
export function yesnotoi(text: string): boolean | null {
  const lower = text.toLowerCase();
  if (lower === 'yes') return true;
  if (lower === 'no') return false;
  return null;
}

// --- sds helpers --------------------------------------------------------

/** C isspace() in the "C" locale. */
function isCSpace(b: number): boolean {
  return b === 0x20 || (b >= 0x09 && b <= 0x0d);
}

function hexDigitValue(b: number): number {
  if (b >= 0x30 && b <= 0x39) return b - 0x30;
  if (b >= 0x61 && b <= 0x66) return b - 0x61 + 10;
  if (b >= 0x41 && b <= 0x46) return b - 0x41 + 10;
  return -1;
}

/**
 * Redis's sdssplitargs on raw bytes: whitespace-separated tokens, "double
 * quotes" with \n \r \t \b \a \xHH and \<char> escapes, 'single quotes' with
 * only \' escaped; a closing quote must be followed by whitespace or the end.
 * Returns null for unbalanced quotes (Redis's NULL). Stops at a NUL byte, as C does.
 */
export function splitArgsBytes(line: Uint8Array): Buffer[] | null {
  const nul = line.indexOf(0);
  const end = nul === -1 ? line.length : nul;
  const at = (i: number): number => (i < end ? line[i] : 0);
  const tokens: Buffer[] = [];
  let p = 0;
  for (;;) {
    while (p < end && isCSpace(line[p])) p++;
    if (p >= end) return tokens;
    const current: number[] = [];
    let inDoubleQuotes = false;
    let inSingleQuotes = false;
    let done = false;
    while (!done) {
      const c = at(p);
      if (inDoubleQuotes) {
        if (c === 0x5c && at(p + 1) === 0x78 && hexDigitValue(at(p + 2)) >= 0 && hexDigitValue(at(p + 3)) >= 0) {
          current.push(hexDigitValue(at(p + 2)) * 16 + hexDigitValue(at(p + 3)));
          p += 3;
        } else if (c === 0x5c && at(p + 1) !== 0) {
          p++;
          const escaped = at(p);
          switch (escaped) {
            case 0x6e: current.push(0x0a); break; // \n
            case 0x72: current.push(0x0d); break; // \r
            case 0x74: current.push(0x09); break; // \t
            case 0x62: current.push(0x08); break; // \b
            case 0x61: current.push(0x07); break; // \a
            default: current.push(escaped); break;
          }
        } else if (c === 0x22) {
          if (at(p + 1) !== 0 && !isCSpace(at(p + 1))) return null;
          done = true;
        } else if (c === 0) {
          return null; // unterminated quotes
        } else {
          current.push(c);
        }
      } else if (inSingleQuotes) {
        if (c === 0x5c && at(p + 1) === 0x27) {
          p++;
          current.push(0x27);
        } else if (c === 0x27) {
          if (at(p + 1) !== 0 && !isCSpace(at(p + 1))) return null;
          done = true;
        } else if (c === 0) {
          return null;
        } else {
          current.push(c);
        }
      } else {
        switch (c) {
          case 0x20:
          case 0x0a:
          case 0x0d:
          case 0x09:
          case 0x00:
            done = true;
            break;
          case 0x22:
            inDoubleQuotes = true;
            break;
          case 0x27:
            inSingleQuotes = true;
            break;
          default:
            current.push(c);
            break;
        }
      }
      if (at(p) !== 0) p++;
    }
    tokens.push(Buffer.from(current));
  }
}

/** sdssplitargs on a string, tokens decoded back as UTF-8. */
export function splitArgs(line: string): string[] | null {
  const tokens = splitArgsBytes(Buffer.from(line, 'utf8'));
  return tokens === null ? null : tokens.map((t) => t.toString('utf8'));
}

/** Redis's sdssplitlen(value, " "): split on every single space, keeping empty pieces; "" gives no pieces. */
export function splitOnSpaces(value: string): string[] {
  return value.length === 0 ? [] : value.split(' ');
}

/** Redis's sdscatrepr: a double-quoted, escaped rendering that sdssplitargs reads back. */
export function quoteRepr(value: string | Uint8Array): string {
  const bytes = typeof value === 'string' ? Buffer.from(value, 'utf8') : value;
  let out = '"';
  for (const b of bytes) {
    switch (b) {
      case 0x5c: out += '\\\\'; break;
      case 0x22: out += '\\"'; break;
      case 0x0a: out += '\\n'; break;
      case 0x0d: out += '\\r'; break;
      case 0x09: out += '\\t'; break;
      case 0x07: out += '\\a'; break;
      case 0x08: out += '\\b'; break;
      default:
        out += b >= 0x20 && b <= 0x7e ? String.fromCharCode(b) : `\\x${b.toString(16).padStart(2, '0')}`;
    }
  }
  return out + '"';
}

/** Redis's sdstrim(line, " \t\r\n"). */
export function trimConfigLine(line: string): string {
  return line.replace(/^[ \t\r\n]+|[ \t\r\n]+$/g, '');
}
