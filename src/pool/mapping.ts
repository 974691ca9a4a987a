// The pool's one MAP_SHARED mapping, made with libc calls through ffi-rs and
// exposed to JS without copying (createExternalBuffer). A Node 20 Buffer stops
// at 4 GiB, so the mapping is seen through 1 GiB views; the allocator never
// lets an object straddle two views (1 MiB pages never cross a view boundary).
import * as fs from 'fs';
import { DataType, createExternalBuffer, createPointer, freePointer, load, open as ffiOpen, PointerType, unwrapPointer } from 'ffi-rs';

export const VIEW_SHIFT = 30;
export const VIEW_BYTES = 2 ** VIEW_SHIFT;

const LIBC = 'libc';
const PROT_READ = 0x1;
const PROT_WRITE = 0x2;
const MAP_SHARED = 0x01;
const MFD_CLOEXEC = 0x1;
const O_RDWR = 0x2;
const O_CREAT = 0x40;
const O_CLOEXEC = 0x80000;
export const MADV_REMOVE = 9;

let libcOpen = false;
function libc(): void {
  if (!libcOpen) {
    ffiOpen({ library: LIBC, path: 'libc.so.6' });
    libcOpen = true;
  }
}

interface Errno<T> { value: T; errnoCode: number; errnoMessage: string }

function call<T>(funcName: string, retType: DataType, paramsType: DataType[], paramsValue: unknown[]): Errno<T> {
  libc();
  return load({ library: LIBC, funcName, retType, paramsType, paramsValue, errno: true }) as unknown as Errno<T>;
}

function check(what: string, r: Errno<number | bigint>): void {
  if (Number(r.value) === -1) throw new Error(`${what} failed: ${r.errnoMessage} (errno ${r.errnoCode})`);
}

/** Wrap `length` bytes at native address `address` in a Buffer that shares the memory. */
function viewAt(address: bigint, length: number): Buffer {
  const holder = createPointer({ paramsType: [DataType.BigInt], paramsValue: [address] });
  const buffer = createExternalBuffer(unwrapPointer(holder)[0]!, length);
  freePointer({ paramsType: [DataType.BigInt], paramsValue: holder, pointerType: PointerType.RsPointer });
  return buffer;
}

export interface MappingOptions {
  size: number;
  /** A file (normally under /dev/shm) to map; empty or undefined = an anonymous memfd. */
  path?: string;
}

export class SharedMapping {
  private constructor(
    readonly fd: number,
    readonly size: number,
    readonly address: bigint,
    readonly views: Buffer[],
    /** The file backing the pool, or null for a memfd. */
    readonly path: string | null,
    /** True when the file existed with this size before we opened it (a re-attach). */
    readonly existed: boolean,
  ) {}

  static open(options: MappingOptions): SharedMapping {
    const { size } = options;
    if (!Number.isSafeInteger(size) || size <= 0 || size % (1 << 20) !== 0) {
      throw new Error(`pool size must be a positive multiple of 1 MiB, got ${size}`);
    }
    let fd: number;
    let existed = false;
    const path = options.path ? options.path : null;
    if (path) {
      existed = fs.existsSync(path) && fs.statSync(path).size === size;
      const r = call<number>('open', DataType.I32, [DataType.String, DataType.I32, DataType.I32], [path, O_RDWR | O_CREAT | O_CLOEXEC, 0o600]);
      check(`open(${path})`, r);
      fd = r.value;
    } else {
      const r = call<number>('memfd_create', DataType.I32, [DataType.String, DataType.U32], ['poolkv', MFD_CLOEXEC]);
      check('memfd_create', r);
      fd = r.value;
    }
    if (!existed) check('ftruncate', call('ftruncate', DataType.I32, [DataType.I32, DataType.I64], [fd, size]));
    const m = call<bigint>('mmap', DataType.BigInt,
      [DataType.BigInt, DataType.U64, DataType.I32, DataType.I32, DataType.I32, DataType.I64],
      [0n, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0]);
    if (m.value === -1n || m.value === 0xffffffffffffffffn) {
      call('close', DataType.I32, [DataType.I32], [fd]);
      throw new Error(`mmap of ${size} bytes failed: ${m.errnoMessage} (errno ${m.errnoCode})`);
    }
    const views: Buffer[] = [];
    for (let at = 0; at < size; at += VIEW_BYTES) {
      views.push(viewAt(m.value + BigInt(at), Math.min(VIEW_BYTES, size - at)));
    }
    return new SharedMapping(fd, size, m.value, views, path, existed);
  }

  /** madvise over [offset, offset+length); advice failures are not fatal, so the result is returned. */
  advise(offset: number, length: number, advice: number): boolean {
    const r = call<number>('madvise', DataType.I32, [DataType.BigInt, DataType.U64, DataType.I32], [this.address + BigInt(offset), length, advice]);
    return r.value === 0;
  }

  /** Unmap and close. The views must not be touched afterwards. */
  close(): void {
    call('munmap', DataType.I32, [DataType.BigInt, DataType.U64], [this.address, this.size]);
    call('close', DataType.I32, [DataType.I32], [this.fd]);
  }
}
