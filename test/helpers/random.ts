// Seeded randomness for model tests, so a failure can be replayed from its seed.

/** mulberry32: a small, fast, deterministic PRNG returning floats in [0, 1). */
export function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** `len` pseudo-random bytes determined by `seed` (filled 4 bytes at a time). */
export function pattern(seed: number, len: number): Buffer {
  const out = Buffer.allocUnsafe(len);
  const r = rng(seed);
  const whole = len - (len & 3);
  for (let i = 0; i < whole; i += 4) out.writeUInt32LE(Math.floor(r() * 2 ** 32), i);
  for (let i = whole; i < len; i++) out[i] = Math.floor(r() * 256);
  return out;
}
