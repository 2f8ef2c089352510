// Per-instance scratch: each WASM instance (one per vhost worker thread) gets its own area of
// the shared memory from the control plane, because module statics would be shared and
// re-initialised by every instantiation. Pointers into it live in globals, which are
// per instance.
import { UIO_MAXIOV } from "./defs";
import { IoVecArray, IovIter, iovec_array_size } from "./iovec";
import { COPIES_SIZE, copies_bind } from "./copies";
import { MARKS_SIZE, marks_bind } from "./dirtylog";

/** Bytes of general scratch (response headers, sense, small replies). */
export const SCRATCH_SIZE: usize = 4096;

const CHAIN_IOV_OFF: usize = 0;
const INDIRECT_IOV_OFF: usize = CHAIN_IOV_OFF + iovec_array_size(UIO_MAXIOV);
const DESC_COPY_OFF: usize = INDIRECT_IOV_OFF + iovec_array_size(UIO_MAXIOV);
const ITER_OFF: usize = DESC_COPY_OFF + 16;
const ITER_COUNT: usize = 4;
const DEVICE_CTX_OFF: usize = (ITER_OFF + ITER_COUNT * offsetof<IovIter>() + 15) & ~15;
/** Bytes of per-instance device context (a device's per-request state struct). */
export const DEVICE_CTX_SIZE: usize = 256;
const SCRATCH_OFF: usize = DEVICE_CTX_OFF + DEVICE_CTX_SIZE;
const COPIES_OFF: usize = SCRATCH_OFF + SCRATCH_SIZE;
const MARKS_OFF: usize = COPIES_OFF + COPIES_SIZE;
const ZEROES_OFF: usize = MARKS_OFF + MARKS_SIZE;
/** Bytes of zeroes: an empty sense field, a whole GOOD response. */
const ZEROES_SIZE: usize = 128;
const INSTANCE_AREA_SIZE: usize = ZEROES_OFF + ZEROES_SIZE;

let area: usize = 0;

/** Binds this instance to its scratch area (INSTANCE_AREA_SIZE bytes, 16-aligned). */
export function instance_init(base: usize): void {
  area = base;
  copies_bind(base + COPIES_OFF);
  marks_bind(base + MARKS_OFF);
  memory.fill(base + ZEROES_OFF, 0, ZEROES_SIZE);
}

/** Bytes the control plane must give each instance. */
export function instance_area_size(): usize {
  return INSTANCE_AREA_SIZE;
}

/** The iovec array a chain is translated into. */
@inline export function chain_iov(): IoVecArray {
  return changetype<IoVecArray>(area + CHAIN_IOV_OFF);
}

/** The iovec array an indirect table is translated into. */
@inline export function indirect_iov(): IoVecArray {
  return changetype<IoVecArray>(area + INDIRECT_IOV_OFF);
}

/** 16 bytes to assemble a descriptor that straddles two iovecs of an indirect table. */
@inline export function desc_copy(): usize {
  return area + DESC_COPY_OFF;
}

@inline function cursor(slot: usize): IovIter {
  return changetype<IovIter>(area + ITER_OFF + slot * offsetof<IovIter>());
}

// A request's cursors, one per role, the same in every device type (ITER_COUNT of them).

/** The request: the chain's readable part, its header first and then its data-out. */
@inline export function request_cursor(): IovIter {
  return cursor(0);
}

/** The reply: the chain's writable part from its start (a response header, an event, a status). */
@inline export function reply_cursor(): IovIter {
  return cursor(1);
}

/** The data-in: where read data goes in the writable part (after a response header, if any). */
@inline export function data_in_cursor(): IovIter {
  return cursor(2);
}

/** A second pass over the data-out, for a command that compares it with what it read (VERIFY). */
@inline export function verify_cursor(): IovIter {
  return cursor(3);
}

/** DEVICE_CTX_SIZE bytes for a device's per-request state. */
@inline export function device_ctx(): usize {
  return area + DEVICE_CTX_OFF;
}

/** ZEROES_SIZE bytes that stay zero (nothing writes them). */
@inline export function zeroes(): usize {
  return area + ZEROES_OFF;
}

/** SCRATCH_SIZE bytes of scratch. */
@inline export function scratch(): usize {
  return area + SCRATCH_OFF;
}
