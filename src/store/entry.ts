// One key and its value in one chunk, as memcached's item: a 32-byte header,
// the key, then the value. A value too big for a chunk lives in a chain of
// whole pages and the chunk keeps the chain's head after the key.
//
//   word 0   next entry in the hash chain         (dict.ts)
//   word 1   hash of the key                      (dict.ts)
//   f64  1   expire time, ms since epoch; 0 = none
//   word 4   LRU clock (s, 24 bits) or LFU (minutes << 8 | counter)
//   word 5   type (byte 0) | flags (byte 1)
//   word 6   key length
//   word 7   value length
//   byte 32  key bytes, then the value (or a 4-byte chain head, 4-aligned)

export const ENTRY_HEADER_BYTES = 32;
export const KEY_OFFSET = ENTRY_HEADER_BYTES;

export const W_LRU = 4;
export const W_META = 5;
export const W_KEY_LEN = 6;
export const W_VALUE_LEN = 7;
export const F_EXPIRE = 1;

/** Redis's object types (the numbers of OBJ_STRING etc.). */
export const enum ValueType {
  String = 0,
  List = 1,
  Set = 2,
  ZSet = 3,
  Hash = 4,
  Stream = 6,
}

export const TYPE_NAMES: Record<number, string> = { 0: 'string', 1: 'list', 2: 'set', 3: 'zset', 4: 'hash', 6: 'stream' };

/** The value was modified in place (APPEND, SETRANGE): OBJECT ENCODING says "raw" as Redis does. */
export const FLAG_RAW = 1;
/** The value lives in a page chain, not inline. */
export const FLAG_LARGE = 2;
/** Made by a command Redis stores as a plain string even when it looks like an integer (INCRBYFLOAT). */
export const FLAG_NOT_INT = 4;

/** Large-value page: word 0 = next page ref, word 1 = bytes used; data from byte 8. */
export const CHAIN_HEADER_BYTES = 8;

export function chainHeadWord(keyLen: number): number {
  return (KEY_OFFSET + keyLen + 3) >>> 2;
}
