// Two minimal devices over the generic queue core, used by the ring tests and the ring
// micro-benchmark: `echo` copies the readable bytes of a chain into its writable bytes,
// `null` writes a fixed-size zero reply (a status byte and padding) and ignores the request.
import { IoVecArray } from "./iovec";
import { reply_cursor, request_cursor } from "./instance";
import { VirtQueue } from "./queue";

/** Echo: used len = min(readable bytes, writable bytes). Stateless. */
@unmanaged export class EchoDevice {
  handle(vq: VirtQueue, head: u32, iov: IoVecArray): i64 {
    const src = request_cursor();
    const dst = reply_cursor();
    src.init(iov, 0, iov.out);
    dst.init(iov, iov.out, iov.count);
    let written: i64 = 0;
    while (src.idx < src.end && dst.idx < dst.end) {
      // Copy one readable segment at a time straight from guest memory to guest memory.
      const seg = iov.len(src.idx) - src.off;
      const n = dst.write(<usize>iov.base(src.idx) + src.off, seg);
      src.skip(n);
      written += n;
      if (n < seg) break;
    }
    return written;
  }
}

/** Null: a reply of replyLen zero bytes (clipped to the writable space), request unread. */
@unmanaged export class NullDevice {
  replyLen: u32;

  handle(vq: VirtQueue, head: u32, iov: IoVecArray): i64 {
    const dst = reply_cursor();
    dst.init(iov, iov.out, iov.count);
    return dst.fill(0, this.replyLen);
  }
}
