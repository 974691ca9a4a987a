// The receiver's images on disk: DIR/<name>/gen-<generation>.pool, one
// directory per snapshot name, generations numbered from 1 and never reused.
// An image only gets a generation file by rename() after it arrived whole,
// verified and was fsync'd (then the directory is fsync'd), so the newest
// generation file is always a complete image: it is the name's current
// image. Transfers in progress write DIR/<name>/temp-<pid>-<n>.pool; stale
// ones are removed at start-up. The newest `keep` generations are kept.
//
// At start-up every name's newest generation gets a quick check (header,
// size, trailer magic; the block CRCs are verified by the server as it
// loads). If it fails, the name is marked damaged: loads are refused with the
// reason rather than quietly serving an older image, until a new save
// commits or an operator removes the bad file.
import * as fs from 'fs';
import * as path from 'path';
import { decodeHeader, IMAGE_HEADER_BYTES, type ImageHeader, imageSize, TRAILER_BYTES, TRAILER_MAGIC } from '../snapshot/image';
import type { Logger } from '../server/log';
import { snapshotNameProblem } from '../transport/protocol';

const GENERATION_FILE = /^gen-(\d{12})\.pool$/;
const TEMP_FILE = /^temp-\d+-\d+\.pool$/;

export interface StoredImage {
  name: string;
  generation: number;
  file: string;
  header: ImageHeader;
  /** The encoded header as stored (sent as is to a loading server). */
  encodedHeader: Buffer;
  bytes: number;
}

interface NameState {
  current: StoredImage | null;
  /** Why the newest generation cannot be served (null when it can). */
  damaged: string | null;
  /** Highest generation number ever seen or handed out. */
  lastGeneration: number;
}

function generationFile(generation: number): string {
  return `gen-${String(generation).padStart(12, '0')}.pool`;
}

/** Read and check an image file's header, size and trailer magic (not the block CRCs). */
export function quickCheckImage(file: string): { header: ImageHeader; encodedHeader: Buffer; bytes: number } {
  const fd = fs.openSync(file, 'r');
  try {
    const size = fs.fstatSync(fd).size;
    const encodedHeader = Buffer.alloc(IMAGE_HEADER_BYTES);
    if (fs.readSync(fd, encodedHeader, 0, IMAGE_HEADER_BYTES, 0) !== IMAGE_HEADER_BYTES) {
      throw new Error(`truncated (${size} bytes, shorter than the header)`);
    }
    const header = decodeHeader(encodedHeader);
    const expected = imageSize(header);
    if (size !== expected) throw new Error(`${size} bytes, but its header describes an image of ${expected} bytes`);
    const trailer = Buffer.alloc(TRAILER_BYTES);
    fs.readSync(fd, trailer, 0, TRAILER_BYTES, size - TRAILER_BYTES);
    if (!trailer.subarray(0, 8).equals(TRAILER_MAGIC)) throw new Error('bad trailer magic');
    return { header, encodedHeader, bytes: size };
  } finally {
    fs.closeSync(fd);
  }
}

export class ImageStore {
  private readonly names = new Map<string, NameState>();
  private tempCounter = 0;

  constructor(readonly dir: string, readonly keep: number, private readonly log: Logger) {}

  /** Scan DIR: each name's newest generation becomes current (after a quick check); stale temp files go. */
  loadAll(): void {
    for (const entry of fs.readdirSync(this.dir, { withFileTypes: true })) {
      if (!entry.isDirectory() || snapshotNameProblem(entry.name) !== null) continue;
      const name = entry.name;
      const nameDir = path.join(this.dir, name);
      const generations: number[] = [];
      for (const file of fs.readdirSync(nameDir)) {
        const m = GENERATION_FILE.exec(file);
        if (m !== null) generations.push(Number(m[1]));
        else if (TEMP_FILE.test(file)) {
          fs.rmSync(path.join(nameDir, file), { force: true });
          this.log.notice(`Removed the unfinished transfer ${path.join(nameDir, file)}`);
        }
      }
      if (generations.length === 0) continue;
      generations.sort((a, b) => b - a);
      const newest = generations[0]!;
      const state: NameState = { current: null, damaged: null, lastGeneration: newest };
      const file = path.join(nameDir, generationFile(newest));
      try {
        const checked = quickCheckImage(file);
        state.current = { name, generation: newest, file, ...checked };
        this.log.notice(`Image '${name}': generation ${newest} is current (${checked.bytes} bytes, ` +
          `taken ${new Date(checked.header.createdAt).toISOString()}; ${generations.length} generation(s) on disk)`);
      } catch (err) {
        state.damaged = `generation ${newest} (${file}) is damaged: ${(err as Error).message}`;
        this.log.warning(`Image '${name}': ${state.damaged}. Loads of '${name}' are refused until a new save ` +
          'commits or the file is removed.');
      }
      this.names.set(name, state);
    }
  }

  /** The image to serve for `name`, null when there is none, or an Error saying why it cannot be served. */
  current(name: string): StoredImage | null | Error {
    const state = this.names.get(name);
    if (state === undefined) return null;
    if (state.damaged !== null) return new Error(`image '${name}' ${state.damaged}`);
    return state.current;
  }

  /** A fresh temp file path for a transfer under `name` (its directory created). */
  tempPath(name: string): string {
    const nameDir = path.join(this.dir, name);
    fs.mkdirSync(nameDir, { recursive: true });
    return path.join(nameDir, `temp-${process.pid}-${++this.tempCounter}.pool`);
  }

  /**
   * Make a complete, fsync'd, closed temp file the current image of `name`:
   * rename to the next generation, fsync the directory, prune old
   * generations. Returns the new current image.
   */
  async commit(name: string, tempFile: string, header: ImageHeader, encodedHeader: Buffer): Promise<StoredImage> {
    let state = this.names.get(name);
    if (state === undefined) {
      state = { current: null, damaged: null, lastGeneration: 0 };
      this.names.set(name, state);
    }
    // Numbered now, synchronously, so concurrent commits under one name never collide.
    const generation = ++state.lastGeneration;
    const nameDir = path.join(this.dir, name);
    const file = path.join(nameDir, generationFile(generation));
    await fs.promises.rename(tempFile, file);
    await syncDirectory(nameDir);
    const image: StoredImage = { name, generation, file, header, encodedHeader, bytes: imageSize(header) };
    // A slower commit that finished later must not replace a newer generation.
    if (state.current === null || state.current.generation < generation) {
      state.current = image;
      state.damaged = null;
    }
    await this.prune(name);
    return image;
  }

  /** Keep the newest `keep` generations of `name`; delete older ones (a reader holding one open keeps its data). */
  private async prune(name: string): Promise<void> {
    const nameDir = path.join(this.dir, name);
    const generations: number[] = [];
    for (const file of await fs.promises.readdir(nameDir)) {
      const m = GENERATION_FILE.exec(file);
      if (m !== null) generations.push(Number(m[1]));
    }
    generations.sort((a, b) => b - a);
    for (const old of generations.slice(this.keep)) {
      await fs.promises.rm(path.join(nameDir, generationFile(old)), { force: true });
      this.log.verbose(`Image '${name}': pruned generation ${old} (keeping ${this.keep})`);
    }
  }

  /** Names and their current generations (for the start-up summary). */
  summary(): Array<{ name: string; generation: number | null; damaged: boolean }> {
    return [...this.names].map(([name, s]) => ({ name, generation: s.current?.generation ?? null, damaged: s.damaged !== null }));
  }
}

export async function syncDirectory(dir: string): Promise<void> {
  const handle = await fs.promises.open(dir, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}
