// HalfSipHash-1-3: SipHash's 32-bit variant, a keyed PRF built from 32-bit
// add/rotate/xor, so it runs at full speed on JS numbers. The key (seed)
// lives in the pool header; without it an attacker cannot aim keys at one
// bucket (hash flooding), and the hash is the same after the pool is attached
// elsewhere, so tables need no rebuild.

const rotl = (x: number, b: number): number => (x << b) | (x >>> (32 - b));

export function halfSipHash13(key: Buffer, k0: number, k1: number): number {
  let v0 = k0 | 0;
  let v1 = k1 | 0;
  let v2 = 0x6c796765 ^ k0;
  let v3 = 0x74656462 ^ k1;
  const len = key.length;
  const end = len - (len & 3);
  let i = 0;
  for (; i < end; i += 4) {
    const m = key[i]! | (key[i + 1]! << 8) | (key[i + 2]! << 16) | (key[i + 3]! << 24);
    v3 ^= m;
    v0 = (v0 + v1) | 0; v1 = rotl(v1, 5); v1 ^= v0; v0 = rotl(v0, 16);
    v2 = (v2 + v3) | 0; v3 = rotl(v3, 8); v3 ^= v2;
    v0 = (v0 + v3) | 0; v3 = rotl(v3, 7); v3 ^= v0;
    v2 = (v2 + v1) | 0; v1 = rotl(v1, 13); v1 ^= v2; v2 = rotl(v2, 16);
    v0 ^= m;
  }
  // The last 0-3 bytes, with the length in the top byte.
  let b = len << 24;
  const tail = len & 3;
  if (tail >= 3) b |= key[i + 2]! << 16;
  if (tail >= 2) b |= key[i + 1]! << 8;
  if (tail >= 1) b |= key[i]!;
  v3 ^= b;
  v0 = (v0 + v1) | 0; v1 = rotl(v1, 5); v1 ^= v0; v0 = rotl(v0, 16);
  v2 = (v2 + v3) | 0; v3 = rotl(v3, 8); v3 ^= v2;
  v0 = (v0 + v3) | 0; v3 = rotl(v3, 7); v3 ^= v0;
  v2 = (v2 + v1) | 0; v1 = rotl(v1, 13); v1 ^= v2; v2 = rotl(v2, 16);
  v0 ^= b;
  v2 ^= 0xff;
  for (let r = 0; r < 3; r++) {
    v0 = (v0 + v1) | 0; v1 = rotl(v1, 5); v1 ^= v0; v0 = rotl(v0, 16);
    v2 = (v2 + v3) | 0; v3 = rotl(v3, 8); v3 ^= v2;
    v0 = (v0 + v3) | 0; v3 = rotl(v3, 7); v3 ^= v0;
    v2 = (v2 + v1) | 0; v1 = rotl(v1, 13); v1 ^= v2; v2 = rotl(v2, 16);
  }
  return (v1 ^ v3) >>> 0;
}
