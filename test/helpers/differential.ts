// Shared plumbing of the differential tests: send the same pipelined commands
// to poolkv and to redis-server, cut the raw replies apart, show them in failures.
import { strict as assert } from 'assert';
import { encodeCommand, rawCommand, replyLength } from './processes';

// eslint-disable-next-line @typescript-eslint/no-require-imports
const RedisParser = require('redis-parser') as new (options: {
  returnReply(reply: unknown): void; returnError(err: Error): void; returnBuffers?: boolean;
}) => { execute(b: Buffer): void };

export type Arg = string | Buffer;
export type Cmd = Arg[];

const BATCH = 400;

/** Send commands pipelined on one connection (after `prefix`, e.g. HELLO 3 or SELECT 3); each reply's raw bytes. */
export async function runPipelined(port: number, cmds: Cmd[], prefix: Cmd[] = []): Promise<Buffer[]> {
  const out: Buffer[] = [];
  for (let start = 0; start < cmds.length; start += BATCH) {
    const batch = cmds.slice(start, start + BATCH);
    const all = [...prefix, ...batch];
    const payload = Buffer.concat(all.map((c) => encodeCommand(c)));
    const bytes = await rawCommand(port, payload, { replies: all.length, timeoutMs: 60000 });
    let p = 0;
    for (let i = 0; i < all.length; i++) {
      const n = replyLength(bytes, p);
      if (i >= prefix.length) out.push(bytes.subarray(p, p + n));
      p += n;
    }
  }
  return out;
}

/** A reply or argument as a short JSON string for assertion messages. */
export function show(b: Buffer | Arg): string {
  const s = Buffer.isBuffer(b) ? b.toString('latin1') : b;
  return JSON.stringify(s.length > 200 ? `${s.slice(0, 200)}...(${s.length} bytes)` : s);
}

export function showCmd(cmd: Cmd): string {
  return cmd.map(show).join(' ');
}

/** The first reply in `bytes`, decoded (errors become Error objects). */
export function decode(bytes: Buffer): unknown {
  const replies: unknown[] = [];
  const parser = new RedisParser({ returnReply: (r) => replies.push(r), returnError: (e) => replies.push(e) });
  parser.execute(bytes);
  return replies[0];
}

/**
 * Send the same commands to poolkv and to redis-server and assert each pair of
 * replies is equivalent (byte-equal, or within a test's tolerance); poolkv's replies.
 */
export async function expectSameReplies(
  poolkvPort: number, redisPort: number, cmds: Cmd[], prefix: Cmd[],
  equivalent: (cmd: Cmd, ours: Buffer, theirs: Buffer) => boolean,
): Promise<Buffer[]> {
  const [ours, theirs] = await Promise.all([runPipelined(poolkvPort, cmds, prefix), runPipelined(redisPort, cmds, prefix)]);
  for (let i = 0; i < cmds.length; i++) {
    assert.ok(equivalent(cmds[i]!, ours[i]!, theirs[i]!),
      `command #${i}: ${showCmd(cmds[i]!)}\n  poolkv: ${show(ours[i]!)}\n  redis:  ${show(theirs[i]!)}`);
  }
  return ours;
}
