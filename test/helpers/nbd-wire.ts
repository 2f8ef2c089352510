// The server side of NBD's framing for the test servers (nbd-server.ts, hostile-nbd-server.ts),
// as the NBD protocol document lays it out for the fixed newstyle handshake: the greeting, the
// client's flags, each option, then each transmission request, handed to the server as it
// arrives. What to answer is the server's.
import { createServer, type Server, type Socket } from "node:net";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

/** An option reply's magic. */
const OPT_REPLY_MAGIC = 0x3e889045565a9n;
const NBD_CMD_WRITE = 1;

/** A transmission request's header. */
export interface NbdRequestHeader {
  flags: number;
  type: number;
  cookie: bigint;
  offset: number;
  length: number;
}

/** Answers the option being handled: a reply type, its data, and a length field (default the data's). */
type OptionReply = (type: number, data?: Buffer, length?: number) => void;

export interface NbdWireHandlers {
  /** An option (NBD_OPT_*): "go" enters the transmission phase, "stop" reads nothing more. */
  option(opt: number, reply: OptionReply): "go" | "stop" | undefined;
  /** A request, with a write's payload: "stop" reads nothing more. */
  request(r: NbdRequestHeader, payload: Buffer): "stop" | undefined;
}

const NBD_OPT_ABORT = 2;
const NBD_REP_ACK = 1;
const NBD_REP_ERR_UNSUP = 0x80000001;

/**
 * What every server answers besides the options it serves: NBD_OPT_ABORT acknowledged and the
 * connection ended, any other option NBD_REP_ERR_UNSUP.
 */
export function otherOption(c: Socket, opt: number, reply: OptionReply): "stop" | undefined {
  if (opt === NBD_OPT_ABORT) {
    reply(NBD_REP_ACK);
    c.end();
    return "stop";
  }
  reply(NBD_REP_ERR_UNSUP);
  return undefined;
}

/** Writes the fixed-newstyle greeting (flags FIXED_NEWSTYLE and NO_ZEROES), with another magic where given. */
export function writeGreeting(c: Socket, magic = "NBDMAGIC"): void {
  const hello = Buffer.alloc(18);
  hello.write(magic, 0);
  hello.write("IHAVEOPT", 8);
  hello.writeUInt16BE(1 | 2, 16);
  c.write(hello);
}

/** Reads what the client sends on c after the greeting and hands each option and request to h. */
export function readNbdWire(c: Socket, h: NbdWireHandlers): void {
  let buf = Buffer.alloc(0);
  let phase: "flags" | "options" | "transmission" | "stopped" = "flags";
  const reply =
    (opt: number): OptionReply =>
    (type, data = Buffer.alloc(0), length = data.length) => {
      const r = Buffer.alloc(20);
      r.writeBigUInt64BE(OPT_REPLY_MAGIC);
      r.writeUInt32BE(opt, 8);
      r.writeUInt32BE(type >>> 0, 12);
      r.writeUInt32BE(length, 16);
      c.write(Buffer.concat([r, data]));
    };
  c.on("data", (d: Buffer) => {
    buf = Buffer.concat([buf, d]);
    for (;;) {
      if (phase === "stopped") return;
      if (phase === "flags") {
        if (buf.length < 4) return;
        buf = buf.subarray(4);
        phase = "options";
      } else if (phase === "options") {
        if (buf.length < 16) return;
        const len = buf.readUInt32BE(12);
        if (buf.length < 16 + len) return;
        const opt = buf.readUInt32BE(8);
        buf = buf.subarray(16 + len);
        const next = h.option(opt, reply(opt));
        if (next === "go") phase = "transmission";
        else if (next === "stop") phase = "stopped";
      } else {
        if (buf.length < 28) return;
        const r: NbdRequestHeader = {
          flags: buf.readUInt16BE(4),
          type: buf.readUInt16BE(6),
          cookie: buf.readBigUInt64BE(8),
          offset: Number(buf.readBigUInt64BE(16)),
          length: buf.readUInt32BE(24),
        };
        const need = r.type === NBD_CMD_WRITE ? 28 + r.length : 28;
        if (buf.length < need) return;
        const payload = Buffer.from(buf.subarray(28, need));
        buf = buf.subarray(need);
        if (h.request(r, payload) === "stop") phase = "stopped";
      }
    }
  });
}

/**
 * An NBD test server on a unix socket (in a folder of its own unless given a path): its URI,
 * listen(), close(), the connections open now and how many were accepted; a subclass serves each
 * connection.
 */
export abstract class UnixNbdServer {
  readonly socketPath: string;
  /** The connections open now. */
  readonly connections = new Set<Socket>();
  /** Connections accepted so far (a client's reconnects show here). */
  accepted = 0;
  private server: Server | undefined;
  private readonly ownDir: string | undefined;

  constructor(socketPath?: string) {
    this.ownDir = socketPath ? undefined : mkdtempSync(join(tmpdir(), "nbd-test-"));
    this.socketPath = socketPath ?? join(this.ownDir!, "sock");
  }

  get uri(): string {
    return `nbd+unix:///?socket=${this.socketPath}`;
  }

  async listen(): Promise<void> {
    this.server = createServer((c) => {
      this.connections.add(c);
      this.accepted++;
      c.on("close", () => this.connections.delete(c));
      c.on("error", () => {});
      this.serve(c);
    });
    await new Promise<void>((r) => this.server!.listen(this.socketPath, r));
  }

  async close(): Promise<void> {
    for (const c of this.connections) c.destroy();
    await new Promise<void>((r) => (this.server ? this.server.close(() => r()) : r()));
    if (this.ownDir) rmSync(this.ownDir, { recursive: true, force: true });
  }

  /** Serves one accepted connection. */
  protected abstract serve(c: Socket): void;
}
