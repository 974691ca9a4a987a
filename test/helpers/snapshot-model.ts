// The in-process model of a keyspace used by the snapshot tests: a plain Map
// per database, the comparison of a pool keyspace against it, and a seeded
// generator of random writes of every kind (new keys, in-place overwrites,
// appends, deletes, TTLs, FLUSHALL, cron steps) that keeps the model in step.
import { strict as assert } from 'assert';
import { KEEP_TTL, Keyspace, Lookup } from '../../src/store/keyspace';
import { pattern, rng } from './random';

const MiB = 1024 * 1024;

export interface ModelEntry { value: Buffer; expireAt: number }
export type Model = Array<Map<string, ModelEntry>>;

export function cloneModel(model: Model): Model {
  return model.map((m) => new Map([...m].map(([k, v]) => [k, { value: Buffer.from(v.value), expireAt: v.expireAt }])));
}

/** Every key of the keyspace equals the model, and nothing else is there. */
export function assertKeyspaceEquals(ks: Keyspace, model: Model, what: string): void {
  for (let i = 0; i < model.length; i++) {
    const db = ks.db(i);
    const m = model[i]!;
    assert.equal(db.size(), m.size, `${what}: db ${i} size`);
    let seen = 0;
    db.forEachLive((e) => {
      const key = db.keyOf(e).toString('latin1');
      const expected = m.get(key);
      assert.ok(expected, `${what}: unexpected key ${key} in db ${i}`);
      assert.ok(db.readString(e).equals(expected.value), `${what}: value of ${key}`);
      assert.equal(db.expireAt(e), expected.expireAt, `${what}: ttl of ${key}`);
      seen++;
    });
    assert.equal(seen, m.size, `${what}: db ${i} live keys`);
  }
}

/** Random writes of every kind: new keys, overwrites, appends, deletes, TTLs, FLUSHALL (after 8000 ops), cron steps. */
export function randomWriter(ks: Keyspace, model: Model, seed: number): () => void {
  const r = rng(seed);
  const far = Date.now() + 3600_000;
  let op = 0;
  return () => {
    op++;
    const dbi = r() < 0.8 ? 0 : 1;
    const db = ks.db(dbi);
    const m = model[dbi]!;
    const key = `key:${Math.floor(r() * 3000)}`;
    const k = Buffer.from(key);
    const x = r();
    if (x < 0.4) {
      const size = r() < 0.98 ? Math.floor(r() * 3000) : Math.floor(r() * 1.5 * MiB);
      const v = pattern(op * 31 + seed, size);
      const ttl = r() < 0.2 ? far + Math.floor(r() * 1000) : 0;
      db.setString(k, v, ttl);
      m.set(key, { value: v, expireAt: ttl });
    } else if (x < 0.6) {
      const e = db.lookup(k, Lookup.Write);
      const entry = m.get(key);
      if (e !== 0 && entry) {
        // In place (same length): overwrite a range; or grow by appending.
        if (r() < 0.5 && entry.value.length > 0) {
          const at = Math.floor(r() * entry.value.length);
          const data = pattern(op, Math.min(entry.value.length - at, 1 + Math.floor(r() * 2000)));
          db.writeString(e, at, data);
          data.copy(entry.value, at);
        } else {
          const add = pattern(op, Math.floor(r() * 500));
          const oldLen = db.stringLength(e);
          const e2 = db.resizeString(e, oldLen + add.length);
          db.writeString(e2, oldLen, add);
          entry.value = Buffer.concat([entry.value, add]);
        }
      }
    } else if (x < 0.78) {
      assert.equal(db.deleteKey(k), m.delete(key));
    } else if (x < 0.88) {
      const e = db.lookup(k, Lookup.Write);
      const entry = m.get(key);
      if (e !== 0 && entry) {
        const at = r() < 0.5 ? 0 : far + 7;
        db.setExpireAt(e, at);
        entry.expireAt = at;
      }
    } else if (x < 0.985) {
      const v = pattern(op, Math.floor(r() * 200));
      db.setString(k, v, KEEP_TTL);
      const old = m.get(key);
      m.set(key, { value: v, expireAt: old ? old.expireAt : 0 });
    } else if (x < 0.988 && op > 8000) {
      ks.flushAll();
      for (const mm of model) mm.clear();
    } else {
      ks.rehashCron(1);
    }
  };
}
