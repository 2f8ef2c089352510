// Scatter-gather lists over shared memory: the iovec array a chain translates to, and a
// byte cursor over a run of it (the analogue of the kernel's iov_iter). The SCSI layer sees
// only cursors, never descriptors.
import { copy_bytes, fill_bytes, update_bytes } from "./bytes";
import { copy_deferred } from "./copies";

/** One iovec: an offset in the shared memory and a length. */
export const IOVEC_SIZE: usize = 8;

/** A translated chain: `count` iovecs, the first `out` device-readable, the rest device-writable. */
@unmanaged export class IoVecArray {
  count: u32;
  out: u32;

  @inline entries(): usize {
    return changetype<usize>(this) + offsetof<IoVecArray>();
  }
  @inline base(i: u32): u32 {
    return load<u32>(this.entries() + <usize>i * IOVEC_SIZE);
  }
  @inline len(i: u32): u32 {
    return load<u32>(this.entries() + <usize>i * IOVEC_SIZE, 4);
  }
  @inline set(i: u32, base: u32, len: u32): void {
    const p = this.entries() + <usize>i * IOVEC_SIZE;
    store<u32>(p, base);
    store<u32>(p, len, 4);
  }
  /** Total bytes of iovecs [first, end). */
  bytes(first: u32, end: u32): u64 {
    let sum: u64 = 0;
    for (let i = first; i < end; i++) sum += this.len(i);
    return sum;
  }
}

/** Bytes an IoVecArray with room for n iovecs occupies. */
export function iovec_array_size(n: u32): usize {
  return offsetof<IoVecArray>() + <usize>n * IOVEC_SIZE;
}

const MOVE_READ: u32 = 0;
const MOVE_WRITE: u32 = 1;
const MOVE_FILL: u32 = 2;
const MOVE_UPDATE: u32 = 3;
const MOVE_DEFER_READ: u32 = 4;
const MOVE_DEFER_WRITE: u32 = 5;

/** One move's bytes: n of them between guest address `at` and device memory `mem` (see IovIter.move). */
@inline function move_bytes(mode: u32, at: usize, mem: usize, n: usize): void {
  if (mode == MOVE_READ) copy_bytes(mem, at, n);
  else if (mode == MOVE_WRITE) copy_bytes(at, mem, n);
  else if (mode == MOVE_UPDATE) update_bytes(at, mem, n);
  else if (mode == MOVE_DEFER_READ) copy_deferred(mem, at, n);
  else if (mode == MOVE_DEFER_WRITE) copy_deferred(at, mem, n);
  else fill_bytes(at, <u8>mem, n);
}

/** A cursor over iovecs [idx, end) of an IoVecArray, `off` bytes into iovec idx. */
@unmanaged export class IovIter {
  iov: IoVecArray;
  idx: u32;
  end: u32;
  off: u32;

  /** Positions the cursor at the start of iovecs [first, end) of iov. */
  init(iov: IoVecArray, first: u32, end: u32): void {
    this.iov = iov;
    this.idx = first;
    this.end = end;
    this.off = 0;
  }

  /**
   * Moves up to len bytes between the cursor and device memory: mode READ copies guest to mem,
   * WRITE copies mem to guest, UPDATE does too but stores only what differs, DEFER_READ and
   * DEFER_WRITE copy as READ and WRITE but later (copies.ts), FILL stores the byte value `mem`
   * into the guest buffers. Bytes within the current iovec (the common case) are one move,
   * inlined where the mode is a constant; others go iovec by iovec.
   */
  @inline private move(mem: usize, len: u32, mode: u32): u32 {
    if (this.idx < this.end && len <= this.iov.len(this.idx) - this.off) {
      move_bytes(mode, this.at(), mem, len);
      this.advance(len);
      return len;
    }
    return this.move_spans(mem, len, mode);
  }

  private move_spans(mem: usize, len: u32, mode: u32): u32 {
    let done: u32 = 0;
    while (done < len && this.idx < this.end) {
      const seg = this.iov.len(this.idx) - this.off;
      const n = seg < len - done ? seg : len - done;
      move_bytes(mode, this.at(), mem + done, n);
      this.advance(n);
      done += n;
    }
    return done;
  }

  /** The guest address the cursor is at. */
  @inline private at(): usize {
    return <usize>this.iov.base(this.idx) + this.off;
  }

  /** Advances n bytes within the current iovec (to the next one when it ends there). */
  @inline private advance(n: u32): void {
    const off = this.off + n;
    if (off == this.iov.len(this.idx)) {
      this.idx++;
      this.off = 0;
    } else {
      this.off = off;
    }
  }

  /** Copies up to len bytes from the guest buffers to device memory at dst. */
  @inline read(dst: usize, len: u32): u32 {
    return this.move(dst, len, MOVE_READ);
  }

  /** Copies up to len bytes from device memory at src into the guest buffers. */
  @inline write(src: usize, len: u32): u32 {
    return this.move(src, len, MOVE_WRITE);
  }

  /** As write(), leaving guest bytes that already hold the value unwritten (update_bytes). */
  @inline update(src: usize, len: u32): u32 {
    return this.move(src, len, MOVE_UPDATE);
  }

  /** As read(), the copy deferred until the used ring is next published (copy_deferred). */
  @inline readDeferred(dst: usize, len: u32): u32 {
    return this.move(dst, len, MOVE_DEFER_READ);
  }

  /** As write(), the copy deferred until the used ring is next published (copy_deferred). */
  @inline writeDeferred(src: usize, len: u32): u32 {
    return this.move(src, len, MOVE_DEFER_WRITE);
  }

  /** Fills up to len bytes of the guest buffers with byte b. */
  @inline fill(b: u8, len: u32): u32 {
    return this.move(<usize>b, len, MOVE_FILL);
  }

  /** Advances up to len bytes without copying. */
  skip(len: u64): u64 {
    const iov = this.iov;
    let done: u64 = 0;
    while (done < len && this.idx < this.end) {
      const seg = <u64>(iov.len(this.idx) - this.off);
      if (seg <= len - done) {
        done += seg;
        this.idx++;
        this.off = 0;
      } else {
        this.off += <u32>(len - done);
        done = len;
      }
    }
    return done;
  }
}
