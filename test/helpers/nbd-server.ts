// A small NBD server for tests: the fixed-newstyle handshake, then each request handed to a
// script that decides the reply (data from a memory image by default, or an error, silence,
// garbage). It speaks simple replies only unless told to accept structured ones.
import type { Socket } from "node:net";
import { UnixNbdServer, otherOption, readNbdWire, writeGreeting } from "./nbd-wire.js";

export interface NbdRequest {
  type: number;
  flags: number;
  cookie: bigint;
  offset: number;
  length: number;
  data?: Buffer;
}

/** What the script tells the server to do with a request. */
type NbdAction =
  | { reply: "ok" }
  | { reply: "later"; ms: number }
  | { reply: "error"; errno: number }
  | { reply: "silence" }
  | { reply: "raw"; bytes: Buffer }
  | { reply: "close" };

export interface FakeNbdOptions {
  size: number;
  flags?: number;
  /** Answer NBD_OPT_GO with NBD_REP_ERR_TLS_REQD. */
  requireTls?: boolean;
  /** Listen on this unix socket path (default: one in a folder of its own). */
  socketPath?: string;
  /** Take NBD_CMD_DISC and keep the connection open (a server that does not finish a soft disconnect). */
  ignoreDisc?: boolean;
  script?: (r: NbdRequest, c: Socket) => NbdAction | undefined;
}

/** A simple reply's header for request r: NBD_SIMPLE_REPLY_MAGIC, the error, the cookie. */
function replyHeader(r: NbdRequest, errno: number): Buffer {
  const h = Buffer.alloc(16);
  h.writeUInt32BE(0x67446698, 0);
  h.writeUInt32BE(errno, 4);
  h.writeBigUInt64BE(r.cookie, 8);
  return h;
}

export class FakeNbdServer extends UnixNbdServer {
  readonly image: Buffer;
  readonly requests: NbdRequest[] = [];
  /** The options received in the handshake, in order (NBD_OPT_*). */
  readonly options: number[] = [];
  /** NBD_CMD_DISC requests received (soft disconnects). */
  discs = 0;

  constructor(readonly opts: FakeNbdOptions) {
    super(opts.socketPath);
    this.image = Buffer.alloc(opts.size);
  }

  /** Cuts every open connection (the server stays up). */
  drop(): void {
    for (const c of this.connections) c.destroy();
  }

  protected serve(c: Socket): void {
    writeGreeting(c);
    readNbdWire(c, {
      option: (opt, reply) => {
        this.options.push(opt);
        if (opt === 7) {
          if (this.opts.requireTls) return void reply(0x80000005);
          const info = Buffer.alloc(12);
          info.writeUInt16BE(0, 0);
          info.writeBigUInt64BE(BigInt(this.opts.size), 2);
          info.writeUInt16BE((this.opts.flags ?? 0) | 1, 10);
          reply(3, info);
          reply(1);
          return "go";
        }
        return otherOption(c, opt, reply); // structured replies are not offered
      },
      request: (h, payload) => {
        if (h.type === 2) {
          this.discs++;
          if (this.opts.ignoreDisc) return undefined;
          c.end();
          return "stop";
        }
        const r: NbdRequest = h.type === 1 ? { ...h, data: payload } : { ...h };
        this.requests.push(r);
        this.answer(c, r);
        return undefined;
      },
    });
  }

  private answer(c: Socket, r: NbdRequest): void {
    const action = this.opts.script?.(r, c) ?? { reply: "ok" };
    if (action.reply === "silence") return;
    if (action.reply === "later") return void setTimeout(() => !c.destroyed && this.answerNow(c, r), action.ms);
    if (action.reply === "close") return void c.destroy();
    if (action.reply === "raw") return void c.write(action.bytes);
    if (action.reply === "error") return void c.write(replyHeader(r, action.errno));
    this.answerNow(c, r);
  }

  /** Carries a request out on the image and replies with success. */
  private answerNow(c: Socket, r: NbdRequest): void {
    if (r.type === 0) return void c.write(Buffer.concat([replyHeader(r, 0), this.image.subarray(r.offset, r.offset + r.length)]));
    if (r.type === 1) r.data!.copy(this.image, r.offset);
    if (r.type === 4 || r.type === 6) this.image.fill(0, r.offset, r.offset + r.length);
    c.write(replyHeader(r, 0));
  }
}
