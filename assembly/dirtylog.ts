// The dirty log (VHOST_F_LOG_ALL; drivers/vhost/vhost.c log_write, log_used): while a queue logs,
// every guest byte the device writes is marked in a bitmap of one bit per 4 KiB guest-physical
// page, set atomically (the reader clears bits as it syncs), before the used index that makes
// the write visible is published. Writes are known by their offsets in the shared memory; the
// memory table turns them back into guest-physical addresses. Bits past the bitmap's end are
// never written, whatever a range says (a zero-length or wrapping one included). A request's
// marks wait in a list until the copies deferred with it ran (copies.ts): they are set when the
// used ring is next published, after those copies and before the index.
import { MemTable, memtable_region } from "./memtable";
import { copies_flush } from "./copies";

/** Marks (shared-memory ranges) the list holds before it sets them to make room. */
const DEFERRED_MARKS: u32 = 64;
/** Bytes of the list: a count, then (at, len) pairs of u32. */
export const MARKS_SIZE: usize = 4 + <usize>DEFERRED_MARKS * 8;

// This instance's list (in its scratch area), and the log its marks go to (one queue drains at
// a time, and publishes before the next).
let marks: usize = 0;
let markLog: usize = 0;
let markBytes: u32 = 0;
let markTable: usize = 0;

export function marks_bind(at: usize): void {
  marks = at;
  store<u32>(marks, 0);
}

/**
 * Marks shared-memory range [at, at + len) in the dirty log at `log` (`bytes` long, guest
 * addresses through table mt) once the deferred copies before it have run (marks_flush).
 */
export function mark_deferred(log: usize, bytes: u32, mt: MemTable, at: usize, len: usize): void {
  let k = load<u32>(marks);
  if (k == DEFERRED_MARKS || (k != 0 && log != markLog)) {
    copies_flush();
    marks_flush();
    k = 0;
  }
  markLog = log;
  markBytes = bytes;
  markTable = changetype<usize>(mt);
  const e = marks + 4 + <usize>k * 8;
  store<u32>(e, <u32>at);
  store<u32>(e, <u32>len, 4);
  store<u32>(marks, k + 1);
}

/** Sets the marks that waited (the copies before them must have run). */
export function marks_flush(): void {
  const k = load<u32>(marks);
  if (k == 0) return;
  for (let i: u32 = 0; i < k; i++) {
    const e = marks + 4 + <usize>i * 8;
    log_written(markLog, markBytes, changetype<MemTable>(markTable), <usize>load<u32>(e), <usize>load<u32>(e, 4));
  }
  store<u32>(marks, 0);
}

/** log2 of the page one bit stands for (the kernel's VHOST_PAGE_SIZE). */
export const VHOST_LOG_PAGE_SHIFT: u32 = 12;

/** Marks the pages of guest-physical range [gpa, gpa + len) in the bitmap at `log` (`bytes` long). */
export function log_gpa(log: usize, bytes: u32, gpa: u64, len: u64): void {
  if (len == 0) return;
  const first = gpa >> VHOST_LOG_PAGE_SHIFT;
  // The last byte, without wrapping past 2^64.
  const end = gpa + (len - 1) < gpa ? u64.MAX_VALUE : gpa + (len - 1);
  const pages = <u64>bytes << 3;
  let last = end >> VHOST_LOG_PAGE_SHIFT;
  if (first >= pages) return;
  if (last >= pages) last = pages - 1;
  for (let p = first; p <= last; p++) atomic.or<u8>(log + <usize>(p >> 3), <u8>(<u32>1 << <u32>(p & 7)));
}

/** Marks the guest pages the device wrote at shared-memory range [at, at + len), through table mt. */
export function log_written(log: usize, bytes: u32, mt: MemTable, at: usize, len: usize): void {
  if (len == 0) return;
  const n = mt.nregions;
  for (let i: u32 = 0; i < n; i++) {
    const r = memtable_region(mt, i);
    const start = <u64>at;
    const stop = start + <u64>len;
    const rs = r.userspace_addr;
    const re = rs + r.memory_size;
    const s = start > rs ? start : rs;
    const e = stop < re ? stop : re;
    if (s < e) log_gpa(log, bytes, r.guest_phys_addr + (s - rs), e - s);
  }
}
