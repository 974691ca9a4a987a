// File transport: the image goes to `dir/temp-<pid>.pool`, is fsync'd, renamed
// over `dir/<dbfilename>` and the directory is fsync'd, so a crash at any
// moment leaves either the previous image or the new one, whole (plus, after
// a crash mid-save, a stale temp file: removeStaleTempFiles() at start-up).
// Asynchronous (BGSAVE: the loop keeps running) or synchronous (SAVE,
// SHUTDOWN: blocks, as Redis's rdbSave does).
//
// BGSAVE writes: with the poolkv_native addon, each block (header + payload)
// is one pwritev on the addon's page-I/O thread straight from the cut's
// buffers, and every WRITEBACK_BYTES the kernel is told to start writing the range out
// (sync_file_range, like Redis's rdb-save-incremental-fsync), so the disk
// works during the save and the final fsync has little left to do. Without
// the addon: FileHandle.writev (fs.promises), no early writeback.
//
// Unless POOLKV_SNAPSHOT_DIRECT=0, or the filesystem refuses O_DIRECT (tmpfs),
// BGSAVE with the addon writes with O_DIRECT instead (direct-file.ts): the cut
// copies each page into its place in an aligned 4 MiB chunk and the chunk
// goes to the disk without the page cache.
import * as fs from 'fs';
import * as path from 'path';
import { PAGE_BYTES } from '../pool/memory';
import type { ImageHeader } from '../snapshot/image';
import { DirectImageWriter } from './direct-file';
import { type PageIoNative, pageIo } from './native';
import type { SnapshotBlock, SnapshotSink } from './sink';

/**
 * Start writeback of what was written every this many bytes (BGSAVE with the
 * addon). Measured on the 2-core box (docs/benchmarks.md): 8 MiB kept a PING
 * client's p99.9 during a 267 MiB BGSAVE at a median 0.6 ms; 32 MiB handed the
 * disk bursts whose completions cost the event loop ~2 ms p99.9 and 14-42 ms
 * outliers; 4 MiB was no better than 8.
 */
const WRITEBACK_BYTES = 8 * 1024 * 1024;

export interface FileSinkOptions {
  dir: string;
  filename: string;
  /** true: every call blocks and returns void (SAVE). */
  sync: boolean;
  /** BGSAVE: use the addon's pwritev when it is built (default true). */
  native?: boolean;
  /** BGSAVE with the addon: write with O_DIRECT where the filesystem allows (default: unless POOLKV_SNAPSHOT_DIRECT=0). */
  direct?: boolean;
}

export class FileSink implements SnapshotSink {
  readonly tempPath: string;
  readonly finalPath: string;
  readonly description: string;
  private fd: number | null = null;
  private handle: fs.promises.FileHandle | null = null;
  private direct: DirectImageWriter | null = null;
  private readonly native: PageIoNative | null;
  private position = 0;
  /** Start of the range not yet handed to writeback. */
  private writebackFrom = 0;
  /** Bytes written so far. */
  written = 0;
  /** How BGSAVE writes, once begin() has settled: 'direct' (O_DIRECT chunks) or 'buffered'. */
  writeMode: 'direct' | 'buffered' = 'buffered';

  constructor(private readonly options: FileSinkOptions) {
    this.tempPath = path.join(options.dir, tempFileName(process.pid));
    this.finalPath = path.join(options.dir, options.filename);
    this.description = `file ${this.finalPath}`;
    this.native = options.sync || options.native === false ? null : pageIo();
  }

  begin(_header: ImageHeader, encodedHeader: Buffer): void | Promise<void> {
    if (this.options.sync) {
      this.fd = fs.openSync(this.tempPath, 'w', 0o644);
      this.writeSync([encodedHeader]);
      return;
    }
    return (async () => {
      const direct = this.options.direct ?? process.env.POOLKV_SNAPSHOT_DIRECT !== '0';
      if (this.native !== null && direct) this.direct = await DirectImageWriter.open(this.native, this.tempPath);
      if (this.direct !== null) {
        this.writeMode = 'direct';
        this.direct.append(encodedHeader);
        this.written += encodedHeader.length;
        return;
      }
      this.handle = await fs.promises.open(this.tempPath, 'w', 0o644);
      await this.writeAsync([encodedHeader]);
    })();
  }

  /** O_DIRECT: the block's place in the chunk being assembled (blocks are acquired in image order). */
  acquireBuffer(): Buffer | null {
    return this.direct?.acquire(PAGE_BYTES) ?? null;
  }

  releaseBuffer(_buffer: Buffer): void {
    // Chunks are recycled once written; nothing to do per block.
  }

  write(block: SnapshotBlock): void | Promise<void> {
    if (this.options.sync) return this.writeSync([block.header, block.payload]);
    if (this.direct !== null) {
      return this.direct.write(block.header, block.payload).then(() => {
        this.written += block.header.length + block.payload.length;
      });
    }
    return this.writeAsync([block.header, block.payload]);
  }

  commit(trailer: Buffer): void | Promise<void> {
    if (this.options.sync) {
      this.writeSync([trailer]);
      fs.fsyncSync(this.fd!);
      fs.closeSync(this.fd!);
      this.fd = null;
      fs.renameSync(this.tempPath, this.finalPath);
      syncDirectory(this.options.dir);
      return;
    }
    return (async () => {
      if (this.direct !== null) {
        const direct = this.direct;
        try {
          await direct.finish(trailer);
        } finally {
          this.direct = null;
          await direct.close();
        }
        this.written += trailer.length;
      } else {
        await this.writeAsync([trailer]);
        const handle = this.handle!;
        await handle.sync();
        await handle.close();
        this.handle = null;
      }
      await fs.promises.rename(this.tempPath, this.finalPath);
      const dir = await fs.promises.open(this.options.dir, 'r');
      try {
        await dir.sync();
      } finally {
        await dir.close();
      }
    })();
  }

  abort(_reason: string): void | Promise<void> {
    if (this.direct !== null) {
      const direct = this.direct;
      this.direct = null;
      return direct.close().catch(() => {}).then(() => fs.promises.rm(this.tempPath, { force: true }));
    }
    if (this.options.sync || this.handle === null) {
      if (this.fd !== null) fs.closeSync(this.fd);
      this.fd = null;
      fs.rmSync(this.tempPath, { force: true });
      return;
    }
    const handle = this.handle;
    this.handle = null;
    return handle.close().catch(() => {}).then(() => fs.promises.rm(this.tempPath, { force: true }));
  }

  private writeSync(parts: Buffer[]): void {
    let total = 0;
    for (const part of parts) total += part.length;
    let done = 0;
    while (done < total) done += fs.writevSync(this.fd!, sliceFrom(parts, done), this.position + done);
    this.position += total;
    this.written += total;
  }

  private async writeAsync(parts: Buffer[]): Promise<void> {
    const handle = this.handle;
    if (handle === null) throw new Error('snapshot file is closed');
    let total = 0;
    for (const part of parts) total += part.length;
    const at = this.position;
    if (this.native !== null) {
      // One threadpool job writes it all (retrying short writes) and may start writeback.
      let wbFrom = 0;
      let wbLength = 0;
      if (at + total - this.writebackFrom >= WRITEBACK_BYTES) {
        wbFrom = this.writebackFrom;
        wbLength = at + total - wbFrom;
        this.writebackFrom = at + total;
      }
      await this.native.pwritev(handle.fd, parts, at, wbFrom, wbLength);
    } else {
      let done = 0;
      // writev with a position: the kernel may write less; finish the rest.
      while (done < total) {
        const { bytesWritten } = await handle.writev(sliceFrom(parts, done), at + done);
        done += bytesWritten;
      }
    }
    this.position = at + total;
    this.written += total;
  }
}

/** The temp file a save by process `pid` writes (Redis: temp-<pid>.rdb). */
export function tempFileName(pid: number): string {
  return `temp-${pid}.pool`;
}

const TEMP_FILE = /^temp-(\d+)\.pool$/;

function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM'; // exists, not ours to signal
  }
}

/**
 * Remove the `temp-<pid>.pool` files a crashed save left in `dir`. Call it at
 * start-up, before any save starts: a file named after this process's own pid
 * is then stale too (pids are reused, e.g. in containers). A file whose pid is
 * another live process is kept (it may be another server's save in progress;
 * a later start-up removes it once that pid is gone). Nothing else in `dir`
 * is touched. Returns the paths removed; `log` gets one line per file removed
 * or kept, and for failures (which are not fatal).
 */
export function removeStaleTempFiles(dir: string, log?: (message: string) => void): string[] {
  const removed: string[] = [];
  let names: string[];
  try {
    names = fs.readdirSync(dir);
  } catch (err) {
    log?.(`Could not list ${dir} for stale snapshot temp files: ${(err as Error).message}`);
    return removed;
  }
  for (const name of names) {
    const m = TEMP_FILE.exec(name);
    if (m === null) continue;
    const pid = Number(m[1]);
    const file = path.join(dir, name);
    if (pid !== process.pid && processAlive(pid)) {
      log?.(`Keeping ${file}: process ${pid} is alive (another server saving into the same dir?)`);
      continue;
    }
    try {
      const st = fs.lstatSync(file);
      if (!st.isFile()) continue;
      fs.rmSync(file, { force: true });
      removed.push(file);
      log?.(`Removed stale snapshot temp file ${file} (${st.size} bytes, left by process ${pid})`);
    } catch (err) {
      log?.(`Could not remove stale snapshot temp file ${file}: ${(err as Error).message}`);
    }
  }
  return removed;
}

function sliceFrom(parts: Buffer[], skip: number): Buffer[] {
  if (skip === 0) return parts;
  const out: Buffer[] = [];
  for (const part of parts) {
    if (skip >= part.length) {
      skip -= part.length;
      continue;
    }
    out.push(skip > 0 ? part.subarray(skip) : part);
    skip = 0;
  }
  return out;
}

function syncDirectory(dir: string): void {
  const fd = fs.openSync(dir, 'r');
  try {
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
}
