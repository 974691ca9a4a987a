// src/util/glob.ts against the real thing: the same keys are stored in a
// scratch redis-server and every pattern's KEYS answer is compared with what
// stringMatch / compileGlob select locally. The case-insensitive variant is
// compared with CONFIG GET (Redis matches config names with nocase=1).
import { strict as assert } from 'assert';
import { compileGlob, stringMatch } from '../src/util/glob';
import { encodeCommand, rawCommand, startRedis, type RedisProcess } from './helpers/processes';

/** Parse a RESP2 array of bulk strings (KEYS / CONFIG GET replies). */
function parseBulkArray(reply: Buffer): Buffer[] {
  let pos = 0;
  const readLine = (): string => {
    const cr = reply.indexOf('\r\n', pos);
    const line = reply.toString('latin1', pos, cr);
    pos = cr + 2;
    return line;
  };
  const header = readLine();
  assert.equal(header[0], '*', `expected an array, got ${JSON.stringify(reply.toString('latin1'))}`);
  const out: Buffer[] = [];
  for (let i = Number(header.slice(1)); i > 0; i--) {
    const len = Number(readLine().slice(1));
    out.push(reply.subarray(pos, pos + len));
    pos += len + 2;
  }
  return out;
}

const bin = (s: string): Buffer => Buffer.from(s, 'latin1');
const show = (b: Buffer): string => JSON.stringify(b.toString('latin1'));
const sortedKeys = (keys: Buffer[]): string[] => keys.map((k) => k.toString('hex')).sort();

// Keys chosen to sit on every edge the patterns probe: empty, brackets,
// escapes, dashes, high bytes (negative as C chars), case, newlines.
const KEYS: Buffer[] = [
  '', 'a', 'b', 'c', 'z', 'A', 'Z', 'ab', 'abc', 'abd', 'aXc', 'ABC', 'hello', 'hallo', 'hxllo', 'hllo',
  'heeeello', 'h*llo', 'h?llo', 'h[a]llo', '*', '?', '[', ']', '^', '-', '\\', 'a\\b', 'a-b', 'a]b',
  '[abc]', 'foo\nbar', 'caSe', 'CASE', '_', '`', '\x00', 'a\x00b', '\x7f', '\x80abc', '\xff', 'x\xff',
  '\xfe\xff', 'key:1', 'key:12', 'key:123', 'user:{1}:name', 'a*b', 'aab', 'abab', 'aaaa',
].map(bin);

const PATTERNS: string[] = [
  '*', '**', '***', '?', '??', '???', '', 'a', 'A', 'a*', '*a', '*a*', 'a*b', 'a*b*', '*b*c', 'a?c',
  'h?llo', 'h*llo', 'h[ae]llo', 'h[^e]llo', 'h[a-b]llo', 'h[b-a]llo', 'h[^a-b]llo',
  '[a-]', '[a-', '[-a]', '[', '[]', '[]]', '[]a]', '[^]', '[^]]', '[\\]]', '[\\', '[\\]', '[a-c', '[^',
  '\\*', '\\', 'a\\', '*\\', '\\a', 'h\\*llo', 'h\\[a\\]llo', '\\[abc\\]', '[[]', '[[]abc]',
  '[z-a]', '[A-z]', '[a-Z]', '[\x80-\xff]*', '[a-\xff]', '[\xff-a]', '[^\x80-\xff]', 'x[^\xff]', 'x[\xff]',
  '[\x00]', 'a[\x00]b', '*\x00*', '[!a]', '[a-c-e]', '[a-c][a-c]', 'key:?', 'key:*', 'key:[0-9]',
  'key:[0-9][0-9]', 'key:[^1]*', 'user:{*}:name', '*:*:*', 'foo?bar', 'foo\nbar', '*\n*', '[\\-]',
  '[a\\-c]', '[\\^]', '[^^]', '[*]', '[?]', 'a*a*a', '*ab*ab*', 'a*b*a*b', '*a*a*a*a*', '?*', '*?', '*?*',
  '[]-a]', '[a-a]', '[---]', '[\x7f-\x80]', 'c[a-z]Se', 'C[A-Z]*',
];

describe('glob (Redis stringmatchlen)', function () {
  this.timeout(60000);
  let redis: RedisProcess;

  before(async () => {
    redis = await startRedis();
    const mset = [bin('MSET')];
    for (const key of KEYS) mset.push(key, bin('1'));
    assert.equal((await rawCommand(redis.port, encodeCommand(mset))).toString(), '+OK\r\n');
  });

  after(async () => {
    await redis?.stop();
  });

  it('selects exactly the keys KEYS selects, for every pattern', async () => {
    const mismatches: string[] = [];
    for (const pattern of PATTERNS) {
      const patternBytes = bin(pattern);
      const expected = sortedKeys(parseBulkArray(await rawCommand(redis.port, encodeCommand([bin('KEYS'), patternBytes]))));
      const matcher = compileGlob(patternBytes);
      const viaMatcher = sortedKeys(KEYS.filter((k) => matcher(k)));
      // stringMatch has no `*` short cut: it differs from KEYS only on the empty key with pattern "*".
      const viaStringMatch = sortedKeys(KEYS.filter((k) => stringMatch(patternBytes, k) || (pattern === '*')));
      if (viaMatcher.join() !== expected.join()) mismatches.push(`compileGlob ${show(patternBytes)}: redis ${expected} ours ${viaMatcher}`);
      if (viaStringMatch.join() !== expected.join()) mismatches.push(`stringMatch ${show(patternBytes)}: redis ${expected} ours ${viaStringMatch}`);
    }
    assert.deepEqual(mismatches, []);
  });

  it('keeps the `*` short cut of KEYS/SCAN but not of the matcher itself', async () => {
    assert.equal(compileGlob('*')(''), true);
    assert.equal(stringMatch('*', ''), false); // stringmatchlen("*", "") is 0 in Redis too
    assert.equal(compileGlob('**')(''), false);
    const keys = parseBulkArray(await rawCommand(redis.port, encodeCommand(['KEYS', '**'])));
    assert.ok(!keys.some((k) => k.length === 0), 'redis KEYS ** skips the empty key');
  });

  it('gives up on patterns nested deeper than 1000 stars, like Redis', async () => {
    const longKey = 'n'.repeat(1100);
    await rawCommand(redis.port, encodeCommand(['SET', longKey, '1']));
    for (const stars of [999, 1000, 1001, 1100]) {
      const pattern = '*' + 'n*'.repeat(stars);
      const redisSays = parseBulkArray(await rawCommand(redis.port, encodeCommand(['KEYS', pattern]))).some((k) => k.toString() === longKey);
      assert.equal(stringMatch(pattern, longKey), redisSays, `${stars} nested stars`);
    }
    await rawCommand(redis.port, encodeCommand(['DEL', longKey]));
  });

  it('stays fast on patterns that backtrack exponentially without the skip rule', () => {
    const subject = 'a'.repeat(4000);
    const pattern = '*a'.repeat(30) + 'b';
    const started = Date.now();
    assert.equal(stringMatch(pattern, subject), false);
    assert.ok(Date.now() - started < 1000, 'matching should not backtrack exponentially');
  });

  it('matches case-insensitively exactly like CONFIG GET does (nocase)', async () => {
    const all = parseBulkArray(await rawCommand(redis.port, encodeCommand(['CONFIG', 'GET', '*'])));
    const names = all.filter((_, i) => i % 2 === 0).map((b) => b.toString('latin1'));
    assert.ok(names.length > 100);
    const nocasePatterns = [
      'MAX*', '*MEMORY*', '[A-M]*', '[^a-z]*', '*-[P]olicy', '[M-m]axmemory', '[a-Z]*', 'LAZYFREE-*-USER-*',
      '?z', '*[!]*', 'MAXMEMORY-[a-Z]*', '*[E-e]*', '[^A-Z]*[^A-Z]', 'hz', 'H?',
    ];
    for (const pattern of nocasePatterns) {
      const reply = parseBulkArray(await rawCommand(redis.port, encodeCommand(['CONFIG', 'GET', pattern])));
      const expected = reply.filter((_, i) => i % 2 === 0).map((b) => b.toString('latin1')).sort();
      const ours = names.filter((n) => stringMatch(pattern, n, true)).sort();
      // A pattern without glob characters is a direct lookup in CONFIG GET: echoed as typed.
      const directLookup = !/[*?[]/.test(pattern);
      assert.deepEqual(directLookup ? ours.map((n) => n.toLowerCase()) : ours,
        directLookup ? expected.map((n) => n.toLowerCase()) : expected, `pattern ${pattern}`);
    }
  });

  it('works on strings as their UTF-8 bytes', () => {
    assert.equal(stringMatch('caf?', 'café'), false); // é is two bytes
    assert.equal(stringMatch('caf??', 'café'), true);
    assert.equal(stringMatch('*é', Buffer.from('café')), true);
    assert.equal(stringMatch('h[ae]llo', 'hello'), true);
    assert.equal(stringMatch('H[AE]LLO', 'hello', true), true);
    assert.equal(stringMatch('H[AE]LLO', 'hello'), false);
  });
});
