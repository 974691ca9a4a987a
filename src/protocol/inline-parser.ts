// Inline commands ("PING\r\n", what telnet and redis-cli --pipe style tools
// send). Arguments are split exactly like Redis's sdssplitargs(), which is
// what processInlineBuffer() uses, so quoting and escapes behave the same.

/** Redis's PROTO_INLINE_MAX_SIZE: an inline line (or a header line) may not grow past this without a newline. */
export const PROTO_INLINE_MAX_SIZE = 64 * 1024;

const SPACE = 0x20;
const TAB = 0x09;
const LF = 0x0a;
const CR = 0x0d;
const NUL = 0x00;
const DQUOTE = 0x22;
const SQUOTE = 0x27;
const BACKSLASH = 0x5c;

/** C's isspace() in the "C" locale. */
function isSpace(b: number): boolean {
  return b === SPACE || (b >= TAB && b <= CR);
}

function hexValue(b: number): number {
  if (b >= 0x30 && b <= 0x39) return b - 0x30;
  if (b >= 0x61 && b <= 0x66) return b - 0x61 + 10;
  if (b >= 0x41 && b <= 0x46) return b - 0x41 + 10;
  return -1;
}

/**
 * Split line[start, end) into arguments the way sdssplitargs() does.
 * Returns null for unbalanced quotes (or a closing quote not followed by a
 * space). The line is treated as a C string: a NUL byte ends it.
 * Unquoted arguments are zero-copy views into `line`.
 */
export function splitInlineArgs(line: Buffer, start: number, end: number): Buffer[] | null {
  const nul = line.indexOf(NUL, start);
  if (nul !== -1 && nul < end) end = nul;
  const args: Buffer[] = [];
  // Bytes of an argument that needed unquoting; reused across arguments.
  const scratch: number[] = [];
  let p = start;
  for (;;) {
    // Between arguments sdssplitargs skips isspace() bytes (this includes VT and FF,
    // which inside an unquoted argument are kept as ordinary bytes).
    while (p < end && isSpace(line[p]!)) p++;
    if (p >= end) return args;

    const tokenStart = p;
    // A token stays a zero-copy view until a quote shows up in it.
    let plain = true;
    let inDouble = false;
    let inSingle = false;
    for (;;) {
      if (p >= end) {
        if (inDouble || inSingle) return null; // unterminated quotes
        break;
      }
      const c = line[p]!;
      if (inDouble) {
        if (c === BACKSLASH && p + 3 < end && line[p + 1] === 0x78 /* x */ &&
            hexValue(line[p + 2]!) >= 0 && hexValue(line[p + 3]!) >= 0) {
          scratch.push(hexValue(line[p + 2]!) * 16 + hexValue(line[p + 3]!));
          p += 4;
        } else if (c === BACKSLASH && p + 1 < end) {
          const e = line[p + 1]!;
          scratch.push(e === 0x6e ? LF : e === 0x72 ? CR : e === 0x74 ? TAB : e === 0x62 ? 0x08 : e === 0x61 ? 0x07 : e);
          p += 2;
        } else if (c === DQUOTE) {
          // A closing quote must be followed by a space or the end of the line.
          if (p + 1 < end && !isSpace(line[p + 1]!)) return null;
          p++;
          break;
        } else {
          scratch.push(c);
          p++;
        }
      } else if (inSingle) {
        if (c === BACKSLASH && p + 1 < end && line[p + 1] === SQUOTE) {
          scratch.push(SQUOTE);
          p += 2;
        } else if (c === SQUOTE) {
          if (p + 1 < end && !isSpace(line[p + 1]!)) return null;
          p++;
          break;
        } else {
          scratch.push(c);
          p++;
        }
      } else if (c === SPACE || c === LF || c === CR || c === TAB) {
        break; // the blank is skipped at the top of the outer loop
      } else if (c === DQUOTE || c === SQUOTE) {
        if (plain) {
          // Quotes may start mid-token (a"b c" is one argument): keep what came before.
          plain = false;
          scratch.length = 0;
          for (let i = tokenStart; i < p; i++) scratch.push(line[i]!);
        }
        if (c === DQUOTE) inDouble = true;
        else inSingle = true;
        p++;
      } else {
        if (!plain) scratch.push(c);
        p++;
      }
    }
    args.push(plain ? line.subarray(tokenStart, p) : Buffer.from(scratch));
  }
}
