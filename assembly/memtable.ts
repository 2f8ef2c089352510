// Guest memory table: guest-physical ranges mapped to offsets in the shared memory, the
// analogue of struct vhost_memory / the kernel's umem tree, and the translation every guest
// buffer address goes through (the kernel's translate_desc()).
import { VQ_ERR_IOV_FULL, VQ_ERR_NONE, VQ_ERR_OVERFLOW, VQ_ERR_TRANSLATE } from "./defs";
import { IoVecArray } from "./iovec";

/** struct vhost_memory header: region count, then regions. */
@unmanaged export class MemTable {
  nregions: u32;
  padding: u32;
}

/** struct vhost_memory_region without flags_padding: where a guest-physical range lives. */
@unmanaged export class MemRegion {
  guest_phys_addr: u64;
  memory_size: u64;
  userspace_addr: u64;
}

export const MEM_REGION_SIZE: usize = offsetof<MemRegion>();

// Index of the region the last translation hit: a per-instance cache (a global, not memory).
let lastRegion: u32 = 0;

@inline export function memtable_region(mt: MemTable, i: u32): MemRegion {
  return changetype<MemRegion>(changetype<usize>(mt) + offsetof<MemTable>() + <usize>i * MEM_REGION_SIZE);
}

/** The region that holds guest-physical address gpa, or null. */
export function memtable_find(mt: MemTable, gpa: u64): MemRegion | null {
  const n = mt.nregions;
  if (lastRegion < n) {
    const r = memtable_region(mt, lastRegion);
    if (gpa >= r.guest_phys_addr && gpa - r.guest_phys_addr < r.memory_size) return r;
  }
  for (let i: u32 = 0; i < n; i++) {
    const r = memtable_region(mt, i);
    if (gpa >= r.guest_phys_addr && gpa - r.guest_phys_addr < r.memory_size) {
      lastRegion = i;
      return r;
    }
  }
  return null;
}

// The contiguous piece found by memtable_span(): an offset in the shared memory and a length.
let spanHva: u32 = 0;
let spanLen: u32 = 0;

/** Finds the first contiguous piece of guest range [gpa, gpa + len), len > 0, into spanHva/spanLen. */
function memtable_span(mt: MemTable, gpa: u64, len: u32): u32 {
  const r = memtable_find(mt, gpa);
  if (r === null) return VQ_ERR_TRANSLATE;
  const into = gpa - r.guest_phys_addr;
  const room = r.memory_size - into;
  spanHva = <u32>(r.userspace_addr + into);
  spanLen = room < <u64>len ? <u32>room : len;
  return VQ_ERR_NONE;
}

/**
 * Appends to iov the iovecs that cover guest range [gpa, gpa + len), split at region
 * boundaries. Returns VQ_ERR_NONE or why not (unmapped, addr + len overflow, too many iovecs).
 */
@inline export function memtable_translate(mt: MemTable, gpa: u64, len: u32, iov: IoVecArray, capacity: u32): u32 {
  // Fast path: the whole range inside the region the last lookup hit (validated regions do not
  // wrap, so into < size && len <= size - into also rules out overflow).
  if (lastRegion < mt.nregions && len != 0) {
    const r = memtable_region(mt, lastRegion);
    const into = gpa - r.guest_phys_addr;
    const n = iov.count;
    if (into < r.memory_size && <u64>len <= r.memory_size - into && n < capacity) {
      iov.set(n, <u32>(r.userspace_addr + into), len);
      iov.count = n + 1;
      return VQ_ERR_NONE;
    }
  }
  return memtable_translate_spans(mt, gpa, len, iov, capacity);
}

/** memtable_translate() of any range: region by region. */
function memtable_translate_spans(mt: MemTable, gpa: u64, len: u32, iov: IoVecArray, capacity: u32): u32 {
  if (len == 0) return VQ_ERR_NONE;
  if (gpa + <u64>(len - 1) < gpa) return VQ_ERR_OVERFLOW;
  while (len > 0) {
    const err = memtable_span(mt, gpa, len);
    if (err != VQ_ERR_NONE) return err;
    const n = iov.count;
    if (n >= capacity) return VQ_ERR_IOV_FULL;
    iov.set(n, spanHva, spanLen);
    iov.count = n + 1;
    gpa += spanLen;
    len -= spanLen;
  }
  return VQ_ERR_NONE;
}
