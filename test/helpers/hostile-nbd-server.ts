// An NBD server that misbehaves on purpose (issue 29's hostile-server campaign): the fixed-newstyle
// handshake with structured replies, an export held in memory, and for the next request a
// misbehaviour chosen by the test (wrong magic, foreign or repeated cookies, chunks outside the
// request, holes past its end, bogus error lengths, disconnects mid-reply, one byte at a time,
// silence) or for the next handshake an absurd answer. Each misbehaviour is used once: the
// request sent again after the client reconnects is served properly.
import type { Socket } from "node:net";
import { UnixNbdServer, otherOption, readNbdWire, writeGreeting, type NbdRequestHeader } from "./nbd-wire.js";

export const MISBEHAVIOURS = [
  "bytewise",
  "split",
  "bad-magic",
  "unknown-cookie",
  "repeat-cookie",
  "unsolicited",
  "chunk-before",
  "chunk-after",
  "chunk-overrun",
  "hole-past-end",
  "error-short",
  "error-message-overrun",
  "error",
  "short-read",
  "simple-data",
  "disconnect-mid-reply",
  "garbage-chunk-type",
  "stall",
] as const;
export type Misbehaviour = (typeof MISBEHAVIOURS)[number];

export const HANDSHAKE_MISBEHAVIOURS = [
  "size-zero",
  "size-huge",
  "size-odd",
  "block-min-zero",
  "block-min-over-max",
  "block-huge",
  "reply-huge",
  "bad-hello",
  "close",
] as const;
export type HandshakeMisbehaviour = (typeof HANDSHAKE_MISBEHAVIOURS)[number];

const SIMPLE = 0x67446698;
const STRUCTURED = 0x668e33ef;
const FLAG_DONE = 1;
const T_NONE = 0;
const T_OFFSET_DATA = 1;
const T_OFFSET_HOLE = 2;
const T_ERROR = 0x8001;

export class HostileNbdServer extends UnixNbdServer {
  readonly image: Buffer;
  /** What the next transmission request gets, and the next handshake. */
  next: Misbehaviour | undefined;
  nextHandshake: HandshakeMisbehaviour | undefined;
  /** Requests received, and misbehaviours carried out. */
  requests = 0;
  misbehaved = 0;

  constructor(size: number) {
    super();
    this.image = Buffer.alloc(size);
    // Data in the first half; the second half zero, where holes are true.
    for (let i = 0; i < size / 2; i++) this.image[i] = (i * 131 + (i >> 9)) & 0xff;
  }

  protected serve(c: Socket): void {
    const hs = this.nextHandshake;
    this.nextHandshake = undefined;
    writeGreeting(c, hs === "bad-hello" ? "NBDMAGIX" : "NBDMAGIC");
    if (hs === "close") return void c.end();
    let structured = false;
    readNbdWire(c, {
      option: (opt, reply) => {
        if (opt === 8) {
          structured = true;
          reply(1);
          return undefined;
        }
        if (opt === 7) {
          if (hs === "reply-huge") return void reply(3, Buffer.alloc(12), 0x7fffffff);
          const size = hs === "size-zero" ? 0n : hs === "size-huge" ? 2n ** 63n : hs === "size-odd" ? BigInt(this.image.length - 3) : BigInt(this.image.length);
          const info = Buffer.alloc(12);
          info.writeBigUInt64BE(size, 2);
          info.writeUInt16BE(1 | 4 | 8 | 32 | 256, 10); // HAS_FLAGS, SEND_FLUSH, SEND_FUA, SEND_TRIM, CAN_MULTI_CONN
          reply(3, info);
          const bs = Buffer.alloc(14);
          bs.writeUInt16BE(3, 0);
          const [min, pref, max] =
            hs === "block-min-zero"
              ? [0, 4096, 1 << 20]
              : hs === "block-min-over-max"
                ? [65536, 4096, 512]
                : hs === "block-huge"
                  ? [2 ** 31, 2 ** 31, 2 ** 32 - 1]
                  : [1, 4096, 1 << 20];
          bs.writeUInt32BE(min, 2);
          bs.writeUInt32BE(pref, 6);
          bs.writeUInt32BE(max, 10);
          reply(3, bs);
          reply(1);
          return "go";
        }
        return otherOption(c, opt, reply);
      },
      request: (r, data) => {
        if (r.type === 2) {
          c.end();
          return "stop";
        }
        this.requests++;
        const m = this.next;
        this.next = undefined;
        if (m) this.misbehaved++;
        this.answer(c, r, data, structured, m);
        return undefined;
      },
    });
  }

  /** The proper answer to r, or misbehaviour m. */
  private answer(c: Socket, r: NbdRequestHeader, data: Buffer, structured: boolean, m: Misbehaviour | undefined): void {
    const inRange = r.offset + r.length <= this.image.length;
    if (r.type === 1 && inRange && m !== "stall" && m !== "disconnect-mid-reply") data.copy(this.image, r.offset);
    const simple = (errno: number, cookie = r.cookie, payload?: Buffer) => {
      const h = Buffer.alloc(16);
      h.writeUInt32BE(m === "bad-magic" ? 0xdeadbeef : SIMPLE, 0);
      h.writeUInt32BE(errno, 4);
      h.writeBigUInt64BE(cookie, 8);
      return payload ? Buffer.concat([h, payload]) : h;
    };
    const chunk = (flags: number, type: number, body: Buffer, cookie = r.cookie, length = body.length) => {
      const h = Buffer.alloc(20);
      h.writeUInt32BE(m === "bad-magic" ? 0xdeadbeef : STRUCTURED, 0);
      h.writeUInt16BE(flags, 4);
      h.writeUInt16BE(type, 6);
      h.writeBigUInt64BE(cookie, 8);
      h.writeUInt32BE(length, 16);
      return Buffer.concat([h, body]);
    };
    const dataChunk = (off: number, len: number, flags = 0) => {
      const b = Buffer.alloc(8 + len);
      b.writeBigUInt64BE(BigInt(off), 0);
      this.image.copy(b, 8, off, off + len);
      return chunk(flags, T_OFFSET_DATA, b);
    };
    const hole = (off: number, len: number, flags = 0) => {
      const b = Buffer.alloc(12);
      b.writeBigUInt64BE(BigInt(off), 0);
      b.writeUInt32BE(len, 8);
      return chunk(flags, T_OFFSET_HOLE, b);
    };
    const errChunk = (errno: number, msg: string, declared?: number, length?: number) => {
      const b = Buffer.alloc(6 + msg.length);
      b.writeUInt32BE(errno, 0);
      b.writeUInt16BE(declared ?? msg.length, 4);
      b.write(msg, 6);
      return chunk(FLAG_DONE, T_ERROR, b, r.cookie, length ?? b.length);
    };
    const isRead = r.type === 0;
    let out: Buffer[];
    if (!inRange) out = [structured ? errChunk(22, "out of range") : simple(22)];
    else if (m === "stall") return;
    else if (m === "error") out = [structured ? errChunk(5, "injected") : simple(5)];
    else if (!isRead) out = [m === "unknown-cookie" ? simple(0, r.cookie + 7777n) : simple(0)];
    else if (!structured) out = [simple(0, r.cookie, this.image.subarray(r.offset, r.offset + r.length))];
    else {
      const whole = () => [dataChunk(r.offset, r.length, FLAG_DONE)];
      switch (m) {
        case "split": {
          // Pieces in reverse order; zero pieces of the second half as holes; then NONE with DONE.
          const pieces: Buffer[] = [];
          const step = Math.max(1, Math.ceil(r.length / 3));
          for (let at = 0; at < r.length; at += step) {
            const n = Math.min(step, r.length - at);
            const zero = this.image.subarray(r.offset + at, r.offset + at + n).every((x) => x === 0);
            pieces.unshift(zero ? hole(r.offset + at, n) : dataChunk(r.offset + at, n));
          }
          out = [...pieces, chunk(FLAG_DONE, T_NONE, Buffer.alloc(0))];
          break;
        }
        case "unknown-cookie":
          out = [chunk(FLAG_DONE, T_NONE, Buffer.alloc(0), r.cookie + 9999n)];
          break;
        case "repeat-cookie":
          out = [...whole(), ...whole()];
          break;
        case "unsolicited":
          out = [chunk(FLAG_DONE, T_NONE, Buffer.alloc(0), 0xfeedn), ...whole()];
          break;
        case "chunk-before":
          out = [dataChunk(Math.max(0, r.offset - 512), Math.min(512, r.offset) || 1, FLAG_DONE)];
          break;
        case "chunk-after": {
          const off = r.offset + r.length;
          out = [off + 16 <= this.image.length ? dataChunk(off, 16, FLAG_DONE) : dataChunk(r.offset + 1, r.length, FLAG_DONE)];
          break;
        }
        case "chunk-overrun": {
          const b = Buffer.alloc(8 + r.length + 64);
          b.writeBigUInt64BE(BigInt(r.offset), 0);
          out = [chunk(FLAG_DONE, T_OFFSET_DATA, b)];
          break;
        }
        case "hole-past-end":
          out = [hole(r.offset, r.length + 4096, FLAG_DONE)];
          break;
        case "error-short":
          out = [chunk(FLAG_DONE, T_ERROR, Buffer.alloc(3))];
          break;
        case "error-message-overrun":
          out = [errChunk(5, "abc", 60000)];
          break;
        case "short-read":
          out = [dataChunk(r.offset, Math.max(0, r.length - 1) || 1, 0), chunk(FLAG_DONE, T_NONE, Buffer.alloc(0))];
          if (r.length === 1) out = [chunk(FLAG_DONE, T_NONE, Buffer.alloc(0))];
          break;
        case "simple-data":
          out = [simple(0, r.cookie, this.image.subarray(r.offset, r.offset + r.length))];
          break;
        case "garbage-chunk-type":
          out = [chunk(FLAG_DONE, 77, Buffer.alloc(4))];
          break;
        default:
          out = whole();
      }
    }
    const all = Buffer.concat(out);
    if (m === "disconnect-mid-reply") {
      // Half the reply, then the connection goes (a write was not carried out: the request is sent again).
      c.write(all.subarray(0, Math.max(1, all.length >> 1)));
      return void c.destroy();
    }
    if (m !== "bytewise") return void c.write(all);
    // One byte per write, each on a later turn of the event loop.
    let i = 0;
    const drip = () => {
      if (i >= all.length || c.destroyed) return;
      c.write(all.subarray(i, i + 1));
      i++;
      setImmediate(drip);
    };
    drip();
  }
}
