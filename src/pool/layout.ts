// The pool's on-memory layout. Everything the dataset needs to be attached
// somewhere else lives here, at fixed offsets from the start of the pool:
//
//   page 0..metaPages-1 : header | slab class table | database roots | page table
//   remaining pages      : slab pages (chunks of one class), whole pages (large
//                          values, big hash-table segments) or free pages
//
// Word indexes (W_*) address uint32 slots from ref 0, D_* address float64 slots.

export const POOL_MAGIC = 0x50564b50; // "PKVP" little-endian
export const LAYOUT_VERSION = 1;

// ---- header (bytes 0..1023) ----
export const W_MAGIC = 0;
export const W_LAYOUT_VERSION = 1;
export const D_POOL_SIZE = 1; // bytes 8..15
export const W_PAGE_SIZE = 4;
export const W_PAGE_COUNT = 5;
export const W_META_PAGES = 6;
export const W_DB_COUNT = 7;
export const W_HASH_SEED = 8; // 4 words: 8..11
export const W_CLASS_COUNT = 12;
export const W_MIN_CHUNK = 13;
export const D_GROWTH_FACTOR = 7; // bytes 56..63
export const W_CLEAN_SHUTDOWN = 16;
export const W_UNTOUCHED_PAGE = 17; // first page never handed out yet (pages above it are free)
export const D_CREATED_AT = 9; // bytes 72..79
export const W_FREE_PAGE_HEAD = 20; // singly linked list of returned pages (0 = empty)
export const W_FREE_PAGE_COUNT = 21;
export const D_USED_BYTES = 11; // bytes 88..95: bytes in allocated chunks and pages
export const D_PEAK_BYTES = 12; // bytes 96..103
export const W_LARGE_PAGES = 26;
export const W_CLASS_TABLE_OFFSET = 28;
export const W_DB_ROOTS_OFFSET = 29;
export const W_PAGE_TABLE_OFFSET = 30;

export const CLASS_TABLE_OFFSET = 1024;
export const MAX_CLASSES = 96;
export const CLASS_ENTRY_BYTES = 32;
// class entry words
export const C_CHUNK_SIZE = 0;
export const C_CHUNKS_PER_PAGE = 1;
export const C_PARTIAL_HEAD = 2; // first page with a free chunk (0 = none)
export const C_PAGES = 3;
export const C_USED_CHUNKS = 4;
export const C_WORDS = CLASS_ENTRY_BYTES / 4;

export const DB_ROOTS_OFFSET = CLASS_TABLE_OFFSET + MAX_CLASSES * CLASS_ENTRY_BYTES; // 4096
export const DB_ROOT_BYTES = 64;

// page table entry words (32 bytes each)
export const PAGE_ENTRY_BYTES = 32;
export const P_CLASS = 0; // 0 free, 1..MAX_CLASSES slab class, PAGE_LARGE, PAGE_META
export const P_USED = 1; // chunks in use
export const P_FREE_HEAD = 2; // 1 + index of the first free chunk (0 = none)
export const P_CARVED = 3; // chunks handed out at least once (the rest were never touched)
export const P_NEXT = 4; // next page in the class's partial list or the free-page list
export const P_PREV = 5;
export const P_WORDS = PAGE_ENTRY_BYTES / 4;

export const PAGE_FREE = 0;
export const PAGE_LARGE = 254;
export const PAGE_META = 255;

export function align(n: number, to: number): number {
  return Math.ceil(n / to) * to;
}

export function pageTableOffset(dbCount: number): number {
  return align(DB_ROOTS_OFFSET + dbCount * DB_ROOT_BYTES, 4096);
}
