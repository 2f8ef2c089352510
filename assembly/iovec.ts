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
   * into the guest buffers.
   */
  private move(mem: usize, len: u32, mode: u32): u32 {
    const iov = this.iov;
    let done: u32 = 0;
    while (done < len && this.idx < this.end) {
      const seg = iov.len(this.idx) - this.off;
      const n = seg < len - done ? seg : len - done;
      const at = <usize>iov.base(this.idx) + this.off;
      if (mode == MOVE_READ) copy_bytes(mem + done, at, n);
      else if (mode == MOVE_WRITE) copy_bytes(at, mem + done, n);
      else if (mode == MOVE_UPDATE) update_bytes(at, mem + done, n);
      else if (mode == MOVE_DEFER_READ) copy_deferred(mem + done, at, n);
      else if (mode == MOVE_DEFER_WRITE) copy_deferred(at, mem + done, n);
      else fill_bytes(at, <u8>mem, n);
      done += n;
      if (n == seg) {
        this.idx++;
        this.off = 0;
      } else {
        this.off += n;
      }
    }
    return done;
  }

  /** Whether the next len bytes lie in the cursor's current iovec (the common case: one move). */
  @inline private fits(len: u32): bool {
    return this.idx < this.end && len <= this.iov.len(this.idx) - this.off;
  }

  /** The address of the next len bytes, which fits() said lie in one iovec; advances past them. */
  @inline private take(len: u32): usize {
    const idx = this.idx;
    const at = <usize>this.iov.base(idx) + this.off;
    const off = this.off + len;
    if (off == this.iov.len(idx)) {
      this.idx = idx + 1;
      this.off = 0;
    } else {
      this.off = off;
    }
    return at;
  }

  /** Copies up to len bytes from the guest buffers to device memory at dst. */
  @inline read(dst: usize, len: u32): u32 {
    if (!this.fits(len)) return this.move(dst, len, MOVE_READ);
    copy_bytes(dst, this.take(len), len);
    return len;
  }

  /** Copies up to len bytes from device memory at src into the guest buffers. */
  @inline write(src: usize, len: u32): u32 {
    if (!this.fits(len)) return this.move(src, len, MOVE_WRITE);
    copy_bytes(this.take(len), src, len);
    return len;
  }

  /** As write(), leaving guest bytes that already hold the value unwritten (update_bytes). */
  @inline update(src: usize, len: u32): u32 {
    if (!this.fits(len)) return this.move(src, len, MOVE_UPDATE);
    update_bytes(this.take(len), src, len);
    return len;
  }

  /** As read(), the copy deferred until the used ring is next published (copy_deferred). */
  @inline readDeferred(dst: usize, len: u32): u32 {
    if (!this.fits(len)) return this.move(dst, len, MOVE_DEFER_READ);
    copy_deferred(dst, this.take(len), len);
    return len;
  }

  /** As write(), the copy deferred until the used ring is next published (copy_deferred). */
  @inline writeDeferred(src: usize, len: u32): u32 {
    if (!this.fits(len)) return this.move(src, len, MOVE_DEFER_WRITE);
    copy_deferred(this.take(len), src, len);
    return len;
  }

  /** Fills up to len bytes of the guest buffers with byte b. */
  @inline fill(b: u8, len: u32): u32 {
    if (!this.fits(len)) return this.move(<usize>b, len, MOVE_FILL);
    fill_bytes(this.take(len), b, len);
    return len;
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
