// Descriptor chain walk (VIRTIO 1.2, 2.7.5): translates the chain at the next avail entry
// into an iovec array, direct and indirect descriptors alike, device-readable buffers first.
// The analogue of the kernel's vhost_get_vq_desc(); a malformed chain is a queue error.
import {
  DESC_SIZE, UIO_MAXIOV, VQ_ERR_DESC_RANGE, VQ_ERR_INDIRECT_LEN, VQ_ERR_INDIRECT_LOOP,
  VQ_ERR_INDIRECT_NESTED, VQ_ERR_INDIRECT_NEXT, VQ_ERR_INDIRECT_RANGE, VQ_ERR_INDIRECT_TOO_BIG,
  VQ_ERR_LOOP, VQ_ERR_NONE, VQ_ERR_OUT_AFTER_IN, VRING_DESC_F_INDIRECT, VRING_DESC_F_NEXT,
  VRING_DESC_F_WRITE,
} from "./defs";
import { IoVecArray } from "./iovec";
import { copy_bytes } from "./bytes";
import { MemTable, memtable_translate } from "./memtable";
import { desc_copy, indirect_iov } from "./instance";
import { VirtQueue, VQ_NO_HEAD, vq_consume_avail, vq_err, vq_next_head } from "./queue";

/** Most entries an indirect table may have (the kernel's USHRT_MAX + 1). */
const INDIRECT_MAX_ENTRIES: u32 = 65536;

// The descriptor being looked at, read once from guest memory into per-instance globals so
// that a guest changing it meanwhile cannot make us see two values.
let dAddr: u64 = 0;
let dLen: u32 = 0;
let dFlags: u16 = 0;
let dNext: u16 = 0;
// Set once the walk has added a device-writable buffer to this chain.
let sawWritable: bool = false;

@inline function load_desc(p: usize): void {
  dAddr = load<u64>(p);
  dLen = load<u32>(p, 8);
  dFlags = load<u16>(p, 12);
  dNext = load<u16>(p, 14);
}

/**
 * Adds the current descriptor's buffer to iov. VIRTIO 1.2, 2.7.4.2: the driver MUST place
 * device-writable elements after device-readable ones.
 */
@inline function add_buffer(mt: MemTable, iov: IoVecArray): u32 {
  const writable = (dFlags & VRING_DESC_F_WRITE) != 0;
  if (writable) sawWritable = true;
  else if (sawWritable) return VQ_ERR_OUT_AFTER_IN;
  const err = memtable_translate(mt, dAddr, dLen, iov, UIO_MAXIOV);
  if (!writable) iov.out = iov.count;
  return err;
}

/** Address of entry i of an indirect table translated into tiov (copied if it straddles iovecs). */
function table_entry(tiov: IoVecArray, i: u32): usize {
  let off = <u64>i * DESC_SIZE;
  const n = tiov.count;
  let k: u32 = 0;
  while (off >= <u64>tiov.len(k)) off -= tiov.len(k++);
  if (off + DESC_SIZE <= <u64>tiov.len(k)) return <usize>tiov.base(k) + <usize>off;
  const dst = desc_copy();
  let got: u32 = 0;
  while (got < DESC_SIZE && k < n) {
    const room = tiov.len(k) - <u32>off;
    const take = room < DESC_SIZE - got ? room : DESC_SIZE - got;
    copy_bytes(dst + got, <usize>tiov.base(k) + <usize>off, take);
    got += take;
    off = 0;
    k++;
  }
  return dst;
}

/**
 * Walks the indirect table the current descriptor refers to (VIRTIO 1.2, 2.7.5.3): its length
 * is a non-zero multiple of 16, it holds no further indirect descriptor, its chain starts at
 * entry 0 and stays inside the table.
 */
function walk_indirect(mt: MemTable, iov: IoVecArray): u32 {
  const len = dLen;
  if (len == 0 || len % DESC_SIZE != 0) return VQ_ERR_INDIRECT_LEN;
  const count = len / DESC_SIZE;
  if (count > INDIRECT_MAX_ENTRIES) return VQ_ERR_INDIRECT_TOO_BIG;
  const tiov = indirect_iov();
  tiov.count = 0;
  let err = memtable_translate(mt, dAddr, len, tiov, UIO_MAXIOV);
  if (err != VQ_ERR_NONE) return err;
  let i: u32 = 0;
  let found: u32 = 0;
  while (true) {
    if (++found > count) return VQ_ERR_INDIRECT_LOOP;
    load_desc(table_entry(tiov, i));
    if ((dFlags & VRING_DESC_F_INDIRECT) != 0) return VQ_ERR_INDIRECT_NESTED;
    err = add_buffer(mt, iov);
    if (err != VQ_ERR_NONE) return err;
    if ((dFlags & VRING_DESC_F_NEXT) == 0) return VQ_ERR_NONE;
    i = dNext;
    if (i >= count) return VQ_ERR_INDIRECT_RANGE;
  }
}

/**
 * Pops the next available chain into iov (iov.out readable iovecs, then writable ones).
 * Returns its head index, vq.num when the ring is empty, or VQ_NO_HEAD on a queue error,
 * in which case the entry stays unconsumed, as in the kernel.
 */
export function vq_pop_chain(vq: VirtQueue, iov: IoVecArray): u32 {
  const num = vq.num;
  const head = vq_next_head(vq);
  if (head >= num) return head;
  const mt = vq.memtable;
  iov.count = 0;
  iov.out = 0;
  sawWritable = false;
  let i = head;
  let found: u32 = 0;
  while (true) {
    if (i >= num) return vq_err(vq, VQ_ERR_DESC_RANGE, i);
    // VIRTIO 1.2, 2.7.5.2: a chain longer than the queue size is a loop.
    if (++found > num) return vq_err(vq, VQ_ERR_LOOP, head);
    load_desc(<usize>vq.desc + <usize>i * DESC_SIZE);
    let err: u32;
    if ((dFlags & VRING_DESC_F_INDIRECT) != 0) {
      // VIRTIO 1.2, 2.7.5.3.1: the driver MUST NOT set both INDIRECT and NEXT.
      if ((dFlags & VRING_DESC_F_NEXT) != 0) return vq_err(vq, VQ_ERR_INDIRECT_NEXT, i);
      err = walk_indirect(mt, iov);
      if (err != VQ_ERR_NONE) return vq_err(vq, err, i);
      break;
    }
    err = add_buffer(mt, iov);
    if (err != VQ_ERR_NONE) return vq_err(vq, err, i);
    if ((dFlags & VRING_DESC_F_NEXT) == 0) break;
    i = dNext;
  }
  vq_consume_avail(vq);
  return head;
}

export { VQ_NO_HEAD };
