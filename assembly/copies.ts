// Deferred data copies. A drain copies the blocks of each RAM READ and WRITE later, in order,
// at the latest right before the used ring is next published (vq_publish_used calls
// copies_flush), so that the copies of a batch run back to back: the processor then overlaps
// their cache misses, where one copy between two requests' work waits for memory alone. What
// is deferred is already validated; the list is this instance's (a few dozen entries in its
// scratch area) and is empty whenever a drain returns.
//
// A random RAM-disk block misses the TLB and the caches: the page walk and the first line are
// two trips to memory before the copy can stream. A flush first reads one byte of every source
// after the first, so that those trips overlap one another and the first copies (WebAssembly
// has no prefetch instruction: plain loads, their values kept in `touched` so that no
// optimizer drops them). Only sources: reading a WRITE's destination block first made random
// 4 KiB writes 14 % slower.
import { copy_bytes } from "./bytes";

/** Copies a list holds before it runs them to make room. */
export const DEFERRED_COPIES: u32 = 32;
/** Bytes of a list: a count, then (dst, src, len) triples of u32. */
export const COPIES_SIZE: usize = 4 + <usize>DEFERRED_COPIES * 12;

// This instance's list (in its scratch area), and the bytes its copies move.
let list: usize = 0;
let pending: usize = 0;
// The bytes the flushes touched, folded together (read by nothing; it keeps the loads).
let touched: u32 = 0;

export function copies_bind(at: usize): void {
  list = at;
  pending = 0;
  store<u32>(list, 0);
}

/** Bytes the deferred copies will move. */
@inline export function copies_pending(): usize {
  return pending;
}

/** Copies n bytes from src to dst before the used ring is next published (ranges validated, not overlapping). */
@inline export function copy_deferred(dst: usize, src: usize, n: usize): void {
  let k = load<u32>(list);
  if (k == DEFERRED_COPIES) {
    copies_flush();
    k = 0;
  }
  const e = entry(k);
  store<u32>(e, <u32>dst);
  store<u32>(e, <u32>src, 4);
  store<u32>(e, <u32>n, 8);
  store<u32>(list, k + 1);
  pending += n;
}

/** Where deferred copy i's (dst, src, len) lies in the list. */
@inline function entry(i: u32): usize {
  return list + 4 + <usize>i * 12;
}

/** Runs the deferred copies, in the order they were deferred, their sources touched first. */
export function copies_flush(): void {
  const k = load<u32>(list);
  if (k == 0) return;
  let sink: u32 = 0;
  for (let i: u32 = 1; i < k; i++) sink ^= load<u8>(<usize>load<u32>(entry(i), 4));
  touched ^= sink;
  for (let i: u32 = 0; i < k; i++) {
    const e = entry(i);
    copy_bytes(<usize>load<u32>(e), <usize>load<u32>(e, 4), <usize>load<u32>(e, 8));
  }
  store<u32>(list, 0);
  pending = 0;
}
