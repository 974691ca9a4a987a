// Redis's glob matcher (util.c stringmatchlen), byte for byte: `*`, `?`,
// `[...]` with ranges, `^` negation and `\` escapes, and the nocase flag.
// KEYS, SCAN MATCH and PSUBSCRIBE run it on binary keys, CONFIG GET on option
// names, so it works on bytes; strings are matched as their UTF-8 bytes.
//
// Quirks kept on purpose because clients can observe them:
// - bytes are compared as C `char`, which is signed on the platforms Redis
//   ships for, so in a range like `[a-\xff]` the byte 0xff is -1 and the range
//   is swapped to -1..'a';
// - an unterminated `[` swallows the rest of the pattern as its set;
// - `[a-]` is the range a..']' (the range test looks at the next two bytes);
// - a trailing lone `\` matches a literal backslash;
// - the empty string does not match `*` (KEYS/SCAN short-cut a pattern of
//   exactly `*` before calling the matcher; `compileGlob` does the same);
// - recursion through `*` is capped at 1000 levels, as in Redis since the
//   CVE-2022-36021 / CVE-2024-31228 fixes (Debian's 7.0.15 has both): deeper
//   patterns simply do not match.

const STAR = 0x2a; // *
const QUESTION = 0x3f; // ?
const OPEN_BRACKET = 0x5b; // [
const CLOSE_BRACKET = 0x5d; // ]
const BACKSLASH = 0x5c; // \
const CARET = 0x5e; // ^
const DASH = 0x2d; // -
const MAX_NESTING = 1000;

/** C's tolower() in the "C" locale, on a value that may be a negative signed char. */
function toLower(c: number): number {
  return c >= 0x41 && c <= 0x5a ? c + 32 : c;
}

/** A byte as C sees it through a signed `char`. */
function signedChar(b: number): number {
  return b >= 0x80 ? b - 0x100 : b;
}

interface MatchState {
  /** Set once the rest of a pattern failed to match anywhere: no longer `*` match can help. */
  skipLongerMatches: boolean;
}

// Reading past the end of the pattern yields 0, like the NUL terminator that
// follows every sds string in Redis (the C code relies on it in two places).
function at(bytes: Uint8Array, i: number): number {
  return i < bytes.length ? bytes[i] : 0;
}

function matchImpl(
  pattern: Uint8Array,
  patternStart: number,
  subject: Uint8Array,
  subjectStart: number,
  subjectEnd: number,
  nocase: boolean,
  state: MatchState,
  nesting: number,
): boolean {
  if (nesting > MAX_NESTING) return false;
  let p = patternStart;
  let patternLen = pattern.length - patternStart;
  let s = subjectStart;
  let stringLen = subjectEnd - subjectStart;

  while (patternLen > 0 && stringLen > 0) {
    switch (pattern[p]) {
      case STAR: {
        while (patternLen > 0 && at(pattern, p + 1) === STAR) {
          p++;
          patternLen--;
        }
        if (patternLen === 1) return true; // a trailing star matches whatever is left
        while (stringLen > 0) {
          if (matchImpl(pattern, p + 1, subject, s, subjectEnd, nocase, state, nesting + 1)) return true;
          if (state.skipLongerMatches) return false;
          s++;
          stringLen--;
        }
        // The rest of the pattern matched nowhere in the rest of the string, so
        // giving any earlier `*` more characters cannot help either.
        state.skipLongerMatches = true;
        return false;
      }
      case QUESTION:
        s++;
        stringLen--;
        break;
      case OPEN_BRACKET: {
        p++;
        patternLen--;
        const negate = at(pattern, p) === CARET;
        if (negate) {
          p++;
          patternLen--;
        }
        let matched = false;
        const c = subject[s];
        for (;;) {
          const pc = at(pattern, p);
          if (pc === BACKSLASH && patternLen >= 2) {
            p++;
            patternLen--;
            if (pattern[p] === c) matched = true;
          } else if (pc === CLOSE_BRACKET) {
            break;
          } else if (patternLen === 0) {
            // Unterminated set: step back so the advance below ends the pattern.
            p--;
            patternLen++;
            break;
          } else if (patternLen >= 3 && pattern[p + 1] === DASH) {
            let start = signedChar(pattern[p]);
            let end = signedChar(pattern[p + 2]);
            let ch = signedChar(c);
            if (start > end) {
              const t = start;
              start = end;
              end = t;
            }
            if (nocase) {
              start = toLower(start);
              end = toLower(end);
              ch = toLower(ch);
            }
            p += 2;
            patternLen -= 2;
            if (ch >= start && ch <= end) matched = true;
          } else if (nocase ? toLower(pc) === toLower(c) : pc === c) {
            matched = true;
          }
          p++;
          patternLen--;
        }
        if (negate) matched = !matched;
        if (!matched) return false;
        s++;
        stringLen--;
        break;
      }
      default: {
        if (pattern[p] === BACKSLASH && patternLen >= 2) {
          p++;
          patternLen--;
        }
        const pc = pattern[p];
        const c = subject[s];
        if (nocase ? toLower(pc) !== toLower(c) : pc !== c) return false;
        s++;
        stringLen--;
        break;
      }
    }
    p++;
    patternLen--;
    if (stringLen === 0) {
      // Trailing stars match the empty rest of the string.
      while (at(pattern, p) === STAR) {
        p++;
        patternLen--;
      }
      break;
    }
  }
  return patternLen === 0 && stringLen === 0;
}

export type GlobInput = Uint8Array | string;

function toBytes(value: GlobInput): Uint8Array {
  return typeof value === 'string' ? Buffer.from(value, 'utf8') : value;
}

/** Redis's stringmatchlen(pattern, subject, nocase): exact semantics, no short cuts. */
export function stringMatch(pattern: GlobInput, subject: GlobInput, nocase = false): boolean {
  const subjectBytes = toBytes(subject);
  return matchImpl(toBytes(pattern), 0, subjectBytes, 0, subjectBytes.length, nocase, { skipLongerMatches: false }, 0);
}

export type GlobMatcher = (subject: GlobInput) => boolean;

/**
 * A matcher for one pattern applied to many subjects (KEYS, SCAN MATCH). The
 * pattern is encoded once; a pattern of exactly `*` matches everything,
 * including the empty key, as KEYS and SCAN do (their `allkeys` short cut).
 */
export function compileGlob(pattern: GlobInput, nocase = false): GlobMatcher {
  const patternBytes = toBytes(pattern);
  if (patternBytes.length === 1 && patternBytes[0] === STAR) return () => true;
  return (subject) => {
    const subjectBytes = toBytes(subject);
    return matchImpl(patternBytes, 0, subjectBytes, 0, subjectBytes.length, nocase, { skipLongerMatches: false }, 0);
  };
}

/** True when the pattern contains a glob metacharacter (CONFIG GET looks names up directly otherwise). */
export function hasGlobMeta(pattern: string): boolean {
  return /[*?[]/.test(pattern);
}
