// poolkv-receiver --auth-token-file: the token read from a file (so it is not
// in ps or /proc/<pid>/cmdline), checked as strictly as --auth-token, and
// used for real: a server with that token ships an image, one without is refused.
import { strict as assert } from 'assert';
import * as fs from 'fs';
import * as path from 'path';
import { rawCommand, startPoolkv, type RedisProcess } from './helpers/processes';
import { runReceiverCli, scratchDir, startReceiver, type ReceiverProcess } from './helpers/receiver';

describe('poolkv-receiver --auth-token-file', function () {
  this.timeout(60000);
  const stops: Array<() => Promise<unknown>> = [];
  afterEach(async () => {
    for (const stop of stops.splice(0)) await stop().catch(() => null);
  });

  it('refuses a missing, empty or doubled token with a clear message', async () => {
    const dir = scratchDir('poolkv-tokenfile-');
    const empty = path.join(dir, 'empty');
    fs.writeFileSync(empty, '\n');
    const base = ['--listen', '127.0.0.1:7070', '--dir', dir];
    const cases: Array<[string[], string]> = [
      [[...base, '--auth-token-file', path.join(dir, 'nope')], `--auth-token-file ${path.join(dir, 'nope')}: no such file`],
      [[...base, '--auth-token-file', empty], `the token in --auth-token-file ${empty} must not be empty`],
      [[...base, '--auth-token-file', empty, '--auth-token', 'x'], 'give --auth-token or --auth-token-file, not both'],
      [base, '--auth-token is required (or --auth-token-file)'],
    ];
    for (const [args, message] of cases) {
      const { code, stderr } = await runReceiverCli(args);
      assert.notEqual(code, 0, `${args.join(' ')} exits non-zero`);
      assert.ok(stderr.includes(message), `${args.join(' ')}: expected ${JSON.stringify(message)} in ${JSON.stringify(stderr)}`);
    }
  });

  it('a server presenting the token from the file ships its image; a wrong token is refused; ps does not show it', async () => {
    const dir = scratchDir('poolkv-tokenfile-');
    const tokenFile = path.join(dir, 'token');
    const token = 'file-token-7f3a';
    fs.writeFileSync(tokenFile, `${token}\n`, { mode: 0o600 });
    const r: ReceiverProcess = await startReceiver({ token, tokenFile, dir: scratchDir('poolkv-tokenfile-images-') });
    stops.push(() => r.kill());
    await r.waitForLog('Ready to accept');
    const cmdline = fs.readFileSync(`/proc/${r.process.pid}/cmdline`, 'utf8');
    assert.ok(!cmdline.includes(token), 'the token is not on the command line');

    const peer = (t: string): string[] => ['--snapshot-transport', 'tcp', '--snapshot-peer', r.address, '--snapshot-auth-token', t,
      '--snapshot-name', 'tokenfile'];
    const good: RedisProcess = await startPoolkv(['--pool-size', '64mb', ...peer(token)]);
    stops.push(() => good.stop());
    assert.equal((await rawCommand(good.port, ['SET', 'k', 'v'])).toString(), '+OK\r\n');
    assert.equal((await rawCommand(good.port, ['SAVE'])).toString(), '+OK\r\n');
    await r.waitForLog(/Image 'tokenfile' generation 1 committed from/);

    const bad: RedisProcess = await startPoolkv(['--pool-size', '64mb', ...peer('not-the-token')]);
    stops.push(() => bad.stop());
    const reply = (await rawCommand(bad.port, ['SAVE'])).toString();
    assert.match(reply, /^-ERR/);
    await r.waitForLog(/Refused 127\.0\.0\.1:\d+ \(image 'tokenfile'\): /);
  });
});
