// OBJECT ENCODING of strings follows Redis's rules through every way a string
// is made or changed; compared with a real redis-server step by step.
import { strict as assert } from 'assert';
import { rawCommand, startPoolkv, startRedis, type RedisProcess } from './helpers/processes';

const STEPS: string[][] = [
  ['SET', 'a', '12'], ['OBJECT', 'ENCODING', 'a'],
  ['APPEND', 'a', '34'], ['OBJECT', 'ENCODING', 'a'],
  ['SET', 'b', '-9223372036854775808'], ['OBJECT', 'ENCODING', 'b'],
  ['SET', 'b', '9223372036854775808'], ['OBJECT', 'ENCODING', 'b'],
  ['SET', 'c', '007'], ['OBJECT', 'ENCODING', 'c'],
  ['SET', 'd', 'x'.repeat(44)], ['OBJECT', 'ENCODING', 'd'],
  ['SET', 'd', 'x'.repeat(45)], ['OBJECT', 'ENCODING', 'd'],
  ['SET', 'e', '10.5'], ['INCRBYFLOAT', 'e', '0.5'], ['OBJECT', 'ENCODING', 'e'],
  ['INCRBYFLOAT', 'f', '3'], ['OBJECT', 'ENCODING', 'f'],
  ['INCR', 'g'], ['OBJECT', 'ENCODING', 'g'],
  ['SET', 'h', 'abc'], ['SETRANGE', 'h', '0', '1'], ['OBJECT', 'ENCODING', 'h'],
  ['SETRANGE', 'i', '2', '5'], ['OBJECT', 'ENCODING', 'i'],
  ['SET', 'j', '5'], ['INCR', 'j'], ['OBJECT', 'ENCODING', 'j'],
  ['SET', 'a', 'fresh'], ['OBJECT', 'ENCODING', 'a'],
  ['OBJECT', 'ENCODING', 'missing'],
];

describe('OBJECT ENCODING for strings (differential)', function () {
  this.timeout(30000);
  let redis: RedisProcess;
  let poolkv: RedisProcess;
  before(async () => {
    [redis, poolkv] = await Promise.all([startRedis(), startPoolkv()]);
  });
  after(async () => {
    await Promise.all([redis?.stop(), poolkv?.stop()]);
  });

  it('matches redis-server after SET, APPEND, SETRANGE, INCR and INCRBYFLOAT', async () => {
    for (const step of STEPS) {
      const [want, got] = await Promise.all([rawCommand(redis.port, step), rawCommand(poolkv.port, step)]);
      assert.equal(got.toString('latin1'), want.toString('latin1'), step.join(' '));
    }
  });
});
