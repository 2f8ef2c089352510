// Requests held by an asynchronous backstore (the file backstore, served by the worker's TS
// side with Node fs I/O straight into the guest buffers): a per-request-queue table of slots,
// each with a copy of the chain's iovecs (for the response) and the exact data iovecs.
// The owning worker submits and completes; a TMF on another worker may mark a slot aborted.
import { IoVecArray, iovec_array_size } from "../iovec";

/** Slot states (atomic: the control queue's worker may abort a submitted slot). */
export const SLOT_FREE: u32 = 0;
export const SLOT_SUBMITTED: u32 = 1;
export const SLOT_ABORTED: u32 = 2;

/** Asynchronous operations. */
export const IO_READ: u32 = 1; // read length bytes at offset into the data iovecs
export const IO_WRITE: u32 = 2; // write the data iovecs at offset
export const IO_FLUSH: u32 = 3; // make written data durable
export const IO_WRITE_SAME: u32 = 4; // write the one-block data iovecs (none: zeroes) over length bytes
export const IO_COMPARE: u32 = 5; // compare length bytes at offset with the data iovecs

/** Completion results. */
export const IO_OK: u32 = 0;
export const IO_ERROR: u32 = 1; // the backing I/O failed or came up short
export const IO_MISCOMPARE: u32 = 2; // IO_COMPARE found a difference (info = offset in the range)

/** Iovecs a slot can hold: seg_max data segments plus headers and PI. */
export const SLOT_IOV: u32 = 136;

@unmanaged export class InflightSlot {
  state: u32;
  head: u32;
  lun: u32;
  op: u32;
  tag: u64;
  /** Byte offset and length in the backstore. */
  offset: u64;
  length: u64;
  /** The guest's data buffer bytes (for the residual count). */
  buf_len: u64;
  desc_sense: u32;
  _pad: u32;

  /** The chain's iovecs as popped (the response goes to the start of its writable part). */
  @inline chain(): IoVecArray {
    return changetype<IoVecArray>(changetype<usize>(this) + offsetof<InflightSlot>());
  }
  /** The data iovecs, exactly `length` bytes (IO_WRITE_SAME: one block; none for IO_FLUSH). */
  @inline data(): IoVecArray {
    return changetype<IoVecArray>(changetype<usize>(this) + offsetof<InflightSlot>() + iovec_array_size(SLOT_IOV));
  }
}

const SLOT_SIZE: usize = (offsetof<InflightSlot>() + 2 * iovec_array_size(SLOT_IOV) + 15) & ~15;

/** Header of a table: then `capacity` u16 submitted-slot numbers, then the slots. */
@unmanaged export class InflightTable {
  capacity: u32;
  /** Slots not free. */
  count: u32;
  /** Slots submitted by the last drains and not yet taken by the TS side. */
  nsubmit: u32;
  /** Hint: where to look for a free slot. */
  next: u32;
}

@inline function submit_list(t: InflightTable): usize {
  return changetype<usize>(t) + offsetof<InflightTable>();
}

@inline function slots_base(t: InflightTable): usize {
  return (submit_list(t) + (<usize>t.capacity << 1) + 15) & ~15;
}

export function inflight_table_size(capacity: u32): usize {
  return ((offsetof<InflightTable>() + (<usize>capacity << 1) + 15) & ~15) + <usize>capacity * SLOT_SIZE;
}

@inline export function inflight_slot(t: InflightTable, i: u32): InflightSlot {
  return changetype<InflightSlot>(slots_base(t) + <usize>i * SLOT_SIZE);
}

/** Takes a free slot and lists it as submitted; returns its number, or -1 when all are busy. */
export function inflight_alloc(t: InflightTable): i32 {
  const cap = t.capacity;
  if (t.count >= cap) return -1;
  let i = t.next;
  for (let k: u32 = 0; k < cap; k++) {
    if (i >= cap) i = 0;
    const s = inflight_slot(t, i);
    if (atomic.load<u32>(changetype<usize>(s)) == SLOT_FREE) {
      t.count++;
      t.next = i + 1;
      store<u16>(submit_list(t) + (<usize>t.nsubmit << 1), <u16>i);
      t.nsubmit++;
      return <i32>i;
    }
    i++;
  }
  return -1;
}

/** Slot number k of the submitted list. */
export function inflight_submitted(t: InflightTable, k: u32): u32 {
  return <u32>load<u16>(submit_list(t) + (<usize>k << 1));
}

/** Frees a slot; returns the state it had (SLOT_ABORTED if a TMF aborted it meanwhile). */
export function inflight_release(t: InflightTable, i: u32): u32 {
  t.count--;
  return atomic.xchg<u32>(changetype<usize>(inflight_slot(t, i)), SLOT_FREE);
}

/** Marks a submitted slot aborted (a TMF); false if it was not submitted. */
export function inflight_abort(s: InflightSlot): bool {
  return atomic.cmpxchg<u32>(changetype<usize>(s), SLOT_SUBMITTED, SLOT_ABORTED) == SLOT_SUBMITTED;
}

/** Copies iovecs [first, end) of src into dst, starting `skip` bytes in, for at most `len` bytes. */
export function iov_extract(dst: IoVecArray, src: IoVecArray, first: u32, off: u32, end: u32, len: u64): bool {
  let n: u32 = 0;
  let i = first;
  let o = off;
  while (len > 0 && i < end) {
    if (n >= SLOT_IOV) return false;
    const seg = <u64>(src.len(i) - o);
    const take = seg < len ? seg : len;
    dst.set(n++, src.base(i) + o, <u32>take);
    len -= take;
    i++;
    o = 0;
  }
  dst.count = n;
  dst.out = 0;
  return true;
}
