// Byte moves within the shared memory. Bulk-memory instructions cost a call into the engine
// (tens of ns on V8 for a shared memory), so short moves (headers, replies, sense data) use
// word loops; long ones (data blocks) use memory.copy/memory.fill, which run near memcpy.

/** Below this many bytes, loops beat the bulk-memory instructions. */
const SHORT_MOVE: usize = 128;

/** Copies n bytes from src to dst (the ranges must not overlap). */
@inline export function copy_bytes(dst: usize, src: usize, n: usize): void {
  if (n >= SHORT_MOVE) {
    memory.copy(dst, src, n);
    return;
  }
  if (n >= 8) {
    // Whole words, the last one ending at n (it may overlap the one before).
    for (let i: usize = 0; i < n - 8; i += 8) store<u64>(dst + i, load<u64>(src + i));
    store<u64>(dst + n - 8, load<u64>(src + n - 8));
    return;
  }
  for (let i: usize = 0; i < n; i++) store<u8>(dst + i, load<u8>(src + i));
}

/** Sets n bytes at dst to b. */
@inline export function fill_bytes(dst: usize, b: u8, n: usize): void {
  if (n >= SHORT_MOVE) {
    memory.fill(dst, b, n);
    return;
  }
  if (n >= 8) {
    const w = <u64>b * 0x0101010101010101;
    for (let i: usize = 0; i < n - 8; i += 8) store<u64>(dst + i, w);
    store<u64>(dst + n - 8, w);
    return;
  }
  for (let i: usize = 0; i < n; i++) store<u8>(dst + i, b);
}

/**
 * Makes n bytes at dst equal to those at src (the ranges must not overlap), storing only the
 * words that differ. A reply the guest's buffer already holds (the same status and zeroed sense
 * as the last request in that buffer) then leaves the guest's cache lines shared instead of
 * taking them over from the guest's core on every request.
 */
@inline export function update_bytes(dst: usize, src: usize, n: usize): void {
  if (n >= 8) {
    for (let i: usize = 0; i < n - 8; i += 8) update_word(dst + i, src + i);
    update_word(dst + n - 8, src + n - 8);
    return;
  }
  for (let i: usize = 0; i < n; i++) {
    const v = load<u8>(src + i);
    if (load<u8>(dst + i) != v) store<u8>(dst + i, v);
  }
}

/** Stores the word at src into dst unless dst holds it already. */
@inline function update_word(dst: usize, src: usize): void {
  const v = load<u64>(src);
  if (load<u64>(dst) != v) store<u64>(dst, v);
}
