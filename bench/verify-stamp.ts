// --verify's block contents: every 32-bit word derived from (block, generation, index), the
// first two words the block and generation themselves, so a misplaced or stale block is told
// apart from a torn one. The WebAssembly engine computes the same words (assembly/guest/engine.ts).

/** Fills buf with the block's stamp. */
export function stamp(buf: Uint8Array, block: number, gen: number): void {
  const w = new Uint32Array(buf.buffer, buf.byteOffset, buf.byteLength >>> 2);
  let x = (Math.imul(block + 1, 0x9e3779b1) ^ Math.imul(gen, 0x85ebca6b)) >>> 0;
  for (let k = 0; k < w.length; k++) {
    x = (Math.imul(x ^ (x >>> 15), 0x2c1b3c6d) + k) >>> 0;
    w[k] = x;
  }
  w[0] = block;
  w[1] = gen;
}

/** Whether buf holds the block's stamp of that generation. */
export function matches(buf: Uint8Array, block: number, gen: number): boolean {
  const w = new Uint32Array(buf.buffer, buf.byteOffset, buf.byteLength >>> 2);
  if (w[0] !== block || w[1] !== gen) return false;
  let x = (Math.imul(block + 1, 0x9e3779b1) ^ Math.imul(gen, 0x85ebca6b)) >>> 0;
  for (let k = 0; k < w.length; k++) {
    x = (Math.imul(x ^ (x >>> 15), 0x2c1b3c6d) + k) >>> 0;
    if (k >= 2 && w[k] !== x) return false;
  }
  return true;
}
