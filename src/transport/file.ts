// File transport: the image goes to `dir/temp-<pid>.pool`, is fsync'd, renamed
// over `dir/<dbfilename>` and the directory is fsync'd, so a crash at any
// moment leaves either the previous image or the new one, whole.
// Asynchronous (BGSAVE: fs.promises, the loop keeps running) or synchronous
// (SAVE, SHUTDOWN: blocks, as Redis's rdbSave does).
import * as fs from 'fs';
import * as path from 'path';
import type { ImageHeader } from '../snapshot/image';
import type { SnapshotBlock, SnapshotSink } from './sink';

export interface FileSinkOptions {
  dir: string;
  filename: string;
  /** true: every call blocks and returns void (SAVE). */
  sync: boolean;
}

export class FileSink implements SnapshotSink {
  readonly tempPath: string;
  readonly finalPath: string;
  readonly description: string;
  private fd: number | null = null;
  private handle: fs.promises.FileHandle | null = null;
  private position = 0;
  /** Bytes written so far. */
  written = 0;

  constructor(private readonly options: FileSinkOptions) {
    this.tempPath = path.join(options.dir, `temp-${process.pid}.pool`);
    this.finalPath = path.join(options.dir, options.filename);
    this.description = `file ${this.finalPath}`;
  }

  begin(_header: ImageHeader, encodedHeader: Buffer): void | Promise<void> {
    if (this.options.sync) {
      this.fd = fs.openSync(this.tempPath, 'w', 0o644);
      this.writeSync([encodedHeader]);
      return;
    }
    return (async () => {
      this.handle = await fs.promises.open(this.tempPath, 'w', 0o644);
      await this.writeAsync([encodedHeader]);
    })();
  }

  write(block: SnapshotBlock): void | Promise<void> {
    if (this.options.sync) return this.writeSync([block.header, block.payload]);
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
      await this.writeAsync([trailer]);
      const handle = this.handle!;
      await handle.sync();
      await handle.close();
      this.handle = null;
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
    for (const part of parts) {
      let done = 0;
      while (done < part.length) {
        done += fs.writeSync(this.fd!, part, done, part.length - done, this.position + done);
      }
      this.position += part.length;
      this.written += part.length;
    }
  }

  private async writeAsync(parts: Buffer[]): Promise<void> {
    const handle = this.handle;
    if (handle === null) throw new Error('snapshot file is closed');
    let total = 0;
    for (const part of parts) total += part.length;
    let done = 0;
    // writev with a position: the kernel may write less; finish the rest.
    while (done < total) {
      const { bytesWritten } = await handle.writev(sliceFrom(parts, done), this.position + done);
      done += bytesWritten;
    }
    this.position += total;
    this.written += total;
  }
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
