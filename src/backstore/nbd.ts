// The NBD backstore: a LUN on a Network Block Device server (qemu-nbd, nbdkit, nbd-server, a
// storage service speaking NBD), as the NBD protocol document describes it: fixed-newstyle
// handshake with NBD_OPT_GO (export size, block size constraints, transmission flags),
// structured replies when the server offers them, many requests in flight per connection keyed
// by cookie, READ / WRITE / FLUSH / TRIM / WRITE_ZEROES with FUA and NO_HOLE. No TLS: a server
// that requires it is refused with a message saying so.
//
// Failures: a dropped connection, a server that stops answering (no reply within timeoutMs) and
// bad server input (wrong magic, unknown cookie, impossible lengths) all close the connection;
// its requests in flight are sent again once a connection is re-established (with backoff,
// for up to reconnectMs), and fail with ENOTCONN / ETIMEDOUT after that. A server that is
// shutting down answers NBD_ESHUTDOWN: the request was not carried out, the connection is
// ended softly (NBD_CMD_DISC, nothing new sent on it, the replies still due are taken), and the
// request is sent again on a new connection. Every request is completed exactly once. Data read
// lands in the guest buffers' views as it arrives.
import { connect, type Socket } from "node:net";
import type { BackstoreFeatures, BackstoreType, IoDone, QueuedBackstore, ThreadedBackstore } from "./backstore.js";
import { compiledModule } from "../sys/compiled-module.js";
import { BS_OP_DISCARD, BS_OP_FLUSH, BS_OP_READ, BS_OP_WRITE, BS_OP_WRITE_ZEROES, type BackstoreIo } from "./ring.js";
import { log } from "../sys/log.js";
import { startTls, tlsOptions, tlsSettings, type NbdTlsConfig } from "./nbd-tls.js";
import type { ConnectionOptions, TLSSocket } from "node:tls";

export interface NbdConfig extends NbdTlsConfig {
  /**
   * `nbd://HOST[:PORT]/EXPORT`, `nbd+unix:///EXPORT?socket=PATH` (the NBD URI syntax), and with
   * TLS `nbds://` and `nbds+unix://`, whose query may carry the TLS settings as libnbd spells them.
   */
  uri: string;
  /** Connections to open when the server allows several (NBD_FLAG_CAN_MULTI_CONN). Default 2. */
  connections?: number;
  /** A request with no reply for this long means the server stopped answering. Default 30 s. */
  timeoutMs?: number;
  /** How long to keep reconnecting before requests fail. Default 15 s. */
  reconnectMs?: number;
  /**
   * Where the sockets live when the server allows several connections (NBD_FLAG_CAN_MULTI_CONN):
   * true (the default), in the vhost workers, each with connections of its own, served between
   * their passes over the rings; false, on the thread that opened the LUN. Without multi-conn
   * they always live there (one connection).
   */
  onWorkers?: boolean;
}

declare module "./backstore.js" {
  interface BackstoreConfigs {
    nbd: NbdConfig;
  }
}

// ---- protocol constants (NBD protocol document) ----
const NBDMAGIC = 0x4e42444d41474943n;
const IHAVEOPT = 0x49484156454f5054n;
const OPT_REPLY_MAGIC = 0x3e889045565a9n;
const NBD_FLAG_FIXED_NEWSTYLE = 1;
const NBD_FLAG_NO_ZEROES = 2;
const NBD_FLAG_C_FIXED_NEWSTYLE = 1;
const NBD_FLAG_C_NO_ZEROES = 2;
const NBD_OPT_ABORT = 2;
const NBD_OPT_STARTTLS = 5;
const NBD_OPT_GO = 7;
const NBD_OPT_STRUCTURED_REPLY = 8;
const NBD_REP_ACK = 1;
const NBD_REP_INFO = 3;
const NBD_REP_FLAG_ERROR = 0x80000000;
// The reply types are unsigned 32-bit: `+`, not `|`, keeps them positive to compare with readUInt32BE.
const NBD_REP_ERR_UNSUP = NBD_REP_FLAG_ERROR + 1;
const NBD_REP_ERR_TLS_REQD = NBD_REP_FLAG_ERROR + 5;
const NBD_REP_ERR_UNKNOWN = NBD_REP_FLAG_ERROR + 6;
const NBD_INFO_EXPORT = 0;
const NBD_INFO_BLOCK_SIZE = 3;
const NBD_FLAG_READ_ONLY = 1 << 1;
const NBD_FLAG_SEND_FLUSH = 1 << 2;
const NBD_FLAG_SEND_FUA = 1 << 3;
const NBD_FLAG_SEND_TRIM = 1 << 5;
const NBD_FLAG_SEND_WRITE_ZEROES = 1 << 6;
const NBD_FLAG_CAN_MULTI_CONN = 1 << 8;
const NBD_REQUEST_MAGIC = 0x25609513;
const NBD_SIMPLE_REPLY_MAGIC = 0x67446698;
const NBD_STRUCTURED_REPLY_MAGIC = 0x668e33ef;
const NBD_CMD_READ = 0;
const NBD_CMD_WRITE = 1;
const NBD_CMD_DISC = 2;
const NBD_CMD_FLUSH = 3;
const NBD_CMD_TRIM = 4;
const NBD_CMD_WRITE_ZEROES = 6;
const NBD_CMD_FLAG_FUA = 1;
const NBD_CMD_FLAG_NO_HOLE = 2;
const NBD_REPLY_FLAG_DONE = 1;
const NBD_REPLY_TYPE_NONE = 0;
const NBD_REPLY_TYPE_OFFSET_DATA = 1;
const NBD_REPLY_TYPE_OFFSET_HOLE = 2;
const NBD_REPLY_TYPE_ERROR_BIT = 0x8000;
/** Linux errno values completions carry. */
const EIO = 5;
const ENOTCONN = 107;
const ETIMEDOUT = 110;
/** NBD_ESHUTDOWN: the server is shutting down and did not carry the request out (Linux's ESHUTDOWN). */
const NBD_ESHUTDOWN = 108;
/**
 * How long one reconnect attempt may take to connect and negotiate, ms: a handshake takes a few
 * round trips, and a listener that accepts but never greets (a server on its way out still
 * holding a unix socket) must not use up the whole reconnect window.
 */
const ATTEMPT_MS = 2000;
/** The pause between reconnect attempts: from the first, doubling up to the last, ms. */
const BACKOFF_FIRST_MS = 50;
const BACKOFF_MAX_MS = 2000;

/** Where an NBD URI points. */
export interface NbdAddress {
  host?: string;
  port?: number;
  socket?: string;
  export: string;
}

/** Parses `nbd[s]://HOST[:PORT]/EXPORT` and `nbd[s]+unix:///EXPORT?socket=PATH`. */
export function parseNbdUri(uri: string): NbdAddress {
  let u: URL;
  try {
    u = new URL(uri);
  } catch {
    throw new RangeError(`${uri}: not an NBD URI (nbd://HOST[:PORT]/EXPORT or nbd+unix:///EXPORT?socket=PATH)`);
  }
  const name = decodeURIComponent(u.pathname.replace(/^\//, ""));
  if (u.protocol === "nbd:" || u.protocol === "nbds:") {
    if (!u.hostname) throw new RangeError(`${uri}: no host`);
    return { host: u.hostname.replace(/^\[|\]$/g, ""), port: u.port ? Number(u.port) : 10809, export: name };
  }
  if (u.protocol === "nbd+unix:" || u.protocol === "nbds+unix:") {
    const socket = u.searchParams.get("socket");
    if (!socket) throw new RangeError(`${uri}: ${u.protocol.slice(0, -1)} needs ?socket=PATH`);
    return { socket, export: name };
  }
  throw new RangeError(`${uri}: the scheme must be nbd:, nbd+unix:, nbds: or nbds+unix:`);
}

/** What NBD_OPT_GO told about the export. */
export interface ExportInfo {
  size: number;
  flags: number;
  minBlock: number;
  maxPayload: number;
  structured: boolean;
}

/**
 * A socket read into one reused buffer (net's `onread`), so that a large read reply is not a
 * new allocation per chunk: its reader must take what it needs before returning.
 */
interface Dialed {
  sock: Socket;
  /** Gets each chunk read, valid only during the call. */
  reader: (chunk: Buffer) => void;
  /**
   * Where the next read is to land instead of the reused buffer (a reply's data straight into
   * the guest's buffer), or undefined. Asked before each read of a socket without TLS.
   */
  target: () => Uint8Array | undefined;
  /** TLS was started on the socket (it then speaks NBD only through TLS, if at all). */
  tlsStarted?: boolean;
}

/** Bytes read from a socket per call: room for a 128 KiB read reply and what follows it. */
const READ_BUFFER = 256 << 10;
const EMPTY = Buffer.alloc(0);
/** The least a reply's data must have left in one guest buffer piece to be read there directly. */
const DIRECT_MIN = 16 << 10;

/** A read whose reply data may land in the guest's buffers (NbdConnection.nextRead). */
function isLargeRead(io: BackstoreIo): boolean {
  return io.op === BS_OP_READ && io.length >= DIRECT_MIN;
}

/** Buffered reads over a socket during the handshake. */
class HandshakeReader {
  private chunks: Buffer[] = [];
  private have = 0;
  private wake: (() => void) | undefined;
  private ended: Error | undefined;
  constructor(private readonly d: Dialed) {
    d.reader = this.onData;
    d.sock.on("close", this.onEnd);
    d.sock.on("error", this.onError);
  }
  private readonly onData = (b: Buffer) => {
    this.chunks.push(Buffer.from(b));
    this.have += b.length;
    this.wake?.();
  };
  private readonly onEnd = () => {
    this.ended ??= new Error("the server closed the connection during the handshake");
    this.wake?.();
  };
  private readonly onError = (e: Error) => {
    this.ended = e;
    this.wake?.();
  };
  async read(n: number): Promise<Buffer> {
    while (this.have < n) {
      if (this.ended) throw this.ended;
      await new Promise<void>((r) => (this.wake = r));
      this.wake = undefined;
    }
    const all = Buffer.concat(this.chunks);
    this.chunks = all.length > n ? [all.subarray(n)] : [];
    this.have -= n;
    return all.subarray(0, n);
  }
  /** Reads from now on from the TLS socket started over the dialed one. */
  rebind(t: TLSSocket): void {
    this.d.sock.off("close", this.onEnd);
    this.d.sock.off("error", this.onError);
    t.on("data", (b: Buffer) => this.d.reader(b));
    this.d.sock = t;
    t.on("close", this.onEnd);
    t.on("error", this.onError);
  }

  /** Stops reading; returns what arrived beyond the handshake. */
  detach(): Buffer {
    this.d.reader = () => {};
    this.d.sock.off("close", this.onEnd);
    this.d.sock.off("error", this.onError);
    return Buffer.concat(this.chunks);
  }
}

/**
 * Opens a socket to the address. A socket that will carry TLS is read the usual way (TLS reads
 * the socket itself), the others into one reused buffer.
 */
function dial(a: NbdAddress, tls: boolean): Promise<Dialed> {
  return new Promise((resolve, reject) => {
    const d: Dialed = { sock: undefined as unknown as Socket, reader: () => {}, target: () => undefined };
    const shared = Buffer.allocUnsafe(READ_BUFFER);
    const onread = tls
      ? undefined
      : {
          buffer: () => d.target() ?? shared,
          callback: (n: number, buf: Uint8Array) => {
            d.reader(buf === shared ? shared.subarray(0, n) : Buffer.from(buf.buffer, buf.byteOffset, n));
            return true;
          },
        };
    const s = a.socket ? connect({ path: a.socket, onread }) : connect({ port: a.port!, host: a.host!, onread });
    if (tls) s.on("data", (b) => d.reader(b));
    d.sock = s;
    s.once("connect", () => {
      s.off("error", reject);
      s.setNoDelay(true);
      resolve(d);
    });
    s.once("error", reject);
  });
}

/** TLS for a connection: whether it must be had, and how (node:tls options). */
interface TlsPlan {
  mode: "require" | "prefer";
  options: ConnectionOptions;
}

const TLS_REQUIRED = 'the server requires TLS: use an nbds:// or nbds+unix:// URI (or tls: "require") with credentials';

/**
 * The fixed-newstyle handshake up to NBD_OPT_GO; resolves with the export's description. With
 * TLS, NBD_OPT_STARTTLS comes first, and everything after it goes through TLS.
 */
async function handshake(d: Dialed, r: HandshakeReader, name: string, tls: TlsPlan | undefined): Promise<ExportInfo> {
  const hello = await r.read(18);
  if (hello.readBigUInt64BE(0) !== NBDMAGIC) throw new Error("not an NBD server (no NBDMAGIC)");
  if (hello.readBigUInt64BE(8) !== IHAVEOPT) throw new Error("the server speaks the old-style NBD handshake; only fixed newstyle is supported");
  const hflags = hello.readUInt16BE(16);
  if (!(hflags & NBD_FLAG_FIXED_NEWSTYLE)) throw new Error("the server does not support the fixed newstyle handshake");
  const cflags = Buffer.alloc(4);
  cflags.writeUInt32BE(NBD_FLAG_C_FIXED_NEWSTYLE | (hflags & NBD_FLAG_NO_ZEROES ? NBD_FLAG_C_NO_ZEROES : 0));
  d.sock.write(cflags);
  const option = (opt: number, data: Buffer) => {
    const h = Buffer.alloc(16);
    h.writeBigUInt64BE(IHAVEOPT);
    h.writeUInt32BE(opt, 8);
    h.writeUInt32BE(data.length, 12);
    d.sock.write(Buffer.concat([h, data]));
  };
  const reply = async (opt: number) => {
    const h = await r.read(20);
    if (h.readBigUInt64BE(0) !== OPT_REPLY_MAGIC) throw new Error("bad option reply magic");
    if (h.readUInt32BE(8) !== opt) throw new Error(`option reply for option ${h.readUInt32BE(8)}, expected ${opt}`);
    const type = h.readUInt32BE(12);
    const len = h.readUInt32BE(16);
    if (len > 1 << 20) throw new Error(`option reply of ${len} bytes`);
    return { type, data: await r.read(len) };
  };
  if (tls) {
    // NBD_OPT_STARTTLS before anything else: not even the export's name goes in clear text.
    option(NBD_OPT_STARTTLS, Buffer.alloc(0));
    const st = await reply(NBD_OPT_STARTTLS);
    if (st.type === NBD_REP_ACK) {
      d.tlsStarted = true;
      r.rebind(await startTls(d.sock, tls.options));
    } else if (tls.mode === "require")
      throw new Error(`the server does not offer TLS (NBD_OPT_STARTTLS answered ${st.type & 0x7fffffff}); nothing was sent in clear text`);
  }
  // Structured replies, when offered (an unsupported option is answered ERR_UNSUP).
  option(NBD_OPT_STRUCTURED_REPLY, Buffer.alloc(0));
  const sr = await reply(NBD_OPT_STRUCTURED_REPLY);
  if (sr.type === NBD_REP_ERR_TLS_REQD) throw new Error(TLS_REQUIRED);
  const structured = sr.type === NBD_REP_ACK;
  // NBD_OPT_GO: the export, asking for its block size constraints.
  const nameBuf = Buffer.from(name);
  const go = Buffer.alloc(4 + nameBuf.length + 2 + 2);
  go.writeUInt32BE(nameBuf.length);
  nameBuf.copy(go, 4);
  go.writeUInt16BE(1, 4 + nameBuf.length);
  go.writeUInt16BE(NBD_INFO_BLOCK_SIZE, 6 + nameBuf.length);
  option(NBD_OPT_GO, go);
  const info: ExportInfo = { size: -1, flags: 0, minBlock: 1, maxPayload: 32 << 20, structured };
  for (;;) {
    const { type, data } = await reply(NBD_OPT_GO);
    if (type === NBD_REP_ACK) break;
    if (type === NBD_REP_INFO && data.length >= 2) {
      const it = data.readUInt16BE(0);
      if (it === NBD_INFO_EXPORT && data.length >= 12) {
        const size = data.readBigUInt64BE(2);
        if (size > BigInt(Number.MAX_SAFE_INTEGER)) throw new Error(`the export's size ${size} is beyond 2^53 - 1 bytes, more than this client addresses`);
        info.size = Number(size);
        info.flags = data.readUInt16BE(10);
      } else if (it === NBD_INFO_BLOCK_SIZE && data.length >= 14) {
        // NBD protocol, "Block size constraints": the minimum a power of two up to 64 KiB, the
        // preferred a power of two at least the minimum, the maximum payload at least the preferred.
        const [min, pref, max] = [data.readUInt32BE(2), data.readUInt32BE(6), data.readUInt32BE(10)];
        const pow2 = (n: number) => n > 0 && (n & (n - 1)) === 0;
        if (!pow2(min) || min > 65536 || !pow2(pref) || pref < min || max < pref) {
          throw new Error(`the server's block size constraints are invalid (minimum ${min}, preferred ${pref}, maximum payload ${max})`);
        }
        info.minBlock = min;
        info.maxPayload = max;
      }
      continue;
    }
    const msg = data.length ? `: ${data.toString()}` : "";
    if (type === NBD_REP_ERR_TLS_REQD) throw new Error(TLS_REQUIRED);
    if (type === NBD_REP_ERR_UNKNOWN) throw new Error(`the server has no export "${name}"${msg}`);
    if (type === NBD_REP_ERR_UNSUP) throw new Error("the server does not support NBD_OPT_GO");
    if (type & NBD_REP_FLAG_ERROR) throw new Error(`the server refused the export (error ${type & 0x7fffffff})${msg}`);
  }
  if (info.size < 0) throw new Error("the server did not tell the export's size");
  return info;
}

/** Bytes of a request header (magic, flags, type, cookie, offset, length). */
const REQUEST_HEADER = 28;

/**
 * A big-endian u64 as a number: exact below 2^53, and a larger one (only a hostile server's
 * offset or cookie) stays larger than anything in range, so the range checks refuse it.
 */
function readU64(b: Buffer, at: number): number {
  return b.readUInt32BE(at) * 2 ** 32 + b.readUInt32BE(at + 4);
}

/** Writes a number below 2^53 as a big-endian u64. */
function writeU64(b: Buffer, at: number, v: number): void {
  b.writeUInt32BE(Math.floor(v / 2 ** 32), at);
  b.writeUInt32BE(v >>> 0, at + 4);
}

/** One request on the wire. */
interface Pending {
  io: BackstoreIo;
  cookie: number;
  sentAt: number;
  /** READ: bytes of the request covered by data or holes so far; the error a chunk reported. */
  covered: number;
  error: number;
}

/** Writes `data` into the request's buffers at byte `pos` of the request (bounds checked by the caller). */
function scatter(buffers: readonly Uint8Array[], pos: number, data: Uint8Array | null, len: number): void {
  let at = 0;
  for (const b of buffers) {
    if (len === 0) return;
    if (pos >= at + b.length) {
      at += b.length;
      continue;
    }
    const off = pos - at;
    const n = Math.min(b.length - off, len);
    if (data) b.set(data.subarray(0, n), off);
    else b.fill(0, off, off + n);
    if (data) data = data.subarray(n);
    pos += n;
    len -= n;
    at += b.length;
  }
}

/**
 * One transmission-phase connection: sends requests, parses replies into the guest buffers,
 * and reports its end (a drop, a protocol error, a timeout) with the requests it still had.
 */
class NbdConnection {
  readonly pending = new Map<number, Pending>();
  private buf: Buffer = Buffer.alloc(0);
  /** A reply being received: its request and how many payload bytes are still to come. */
  private cur: { p: Pending; left: number; kind: "simple-data" | "chunk"; type: number; flags: number; pos: number; header: Buffer } | undefined;
  private closed = false;
  /** The guest buffer piece the socket's next read was given (a reply's data landing in place), if any. */
  private direct: Uint8Array | undefined;
  /** Reads of at least DIRECT_MIN in flight: while there are, a reply's header is read by itself, so that its data can land in place. */
  private largeReads = 0;
  private readonly headerBuf = Buffer.alloc(28);
  /** A soft disconnect is under way (the server is shutting down): no new requests, replies still taken. */
  private draining = false;
  private readonly timer: NodeJS.Timeout;

  private readonly sock: Socket;
  readonly info: ExportInfo;

  constructor(
    opened: Opened,
    private readonly onComplete: (p: Pending, result: number) => void,
    private readonly onEnd: (c: NbdConnection, why: Error, timedOut: boolean) => void,
    /** A request the server refused because it is shutting down (not carried out: send it again elsewhere). */
    private readonly onShutdown: (p: Pending) => void,
    timeoutMs: number,
  ) {
    const { d, info, leftover } = opened;
    const sock = (this.sock = d.sock);
    this.info = info;
    d.reader = (b) => this.receive(b);
    d.target = () => this.nextRead();
    // An idle connection does not keep the process alive (as an idle keep-alive socket); one with requests in flight does.
    sock.unref();
    sock.on("error", (e) => this.end(e, false));
    sock.on("close", () => this.end(new Error("the server closed the connection"), false));
    this.timer = setInterval(
      () => {
        const now = Date.now();
        for (const p of this.pending.values()) {
          if (now - p.sentAt > timeoutMs) return this.end(new Error(`no reply for ${timeoutMs} ms`), true);
        }
      },
      Math.max(10, Math.min(1000, timeoutMs / 4)),
    );
    this.timer.unref();
    if (leftover.length) this.receive(leftover);
  }

  /** It takes new requests: open, and not ending softly. */
  get alive(): boolean {
    return !this.closed && !this.draining;
  }

  /**
   * Sends requests (corked: one write for the batch where the socket allows). The batch's
   * headers share one buffer, and the headers of requests without a payload go out together.
   */
  send(ps: Pending[]): void {
    if (this.pending.size === 0 && ps.length) this.sock.ref();
    const now = Date.now();
    const hs = Buffer.allocUnsafe(REQUEST_HEADER * ps.length);
    let unsent = 0;
    this.sock.cork();
    for (const [i, p] of ps.entries()) {
      this.pending.set(p.cookie, p);
      if (isLargeRead(p.io)) this.largeReads++;
      p.sentAt = now;
      p.covered = 0;
      p.error = 0;
      const io = p.io;
      const at = REQUEST_HEADER * i;
      let type = NBD_CMD_READ;
      let flags = 0;
      if (io.op === BS_OP_WRITE) {
        type = NBD_CMD_WRITE;
        if (io.fua) flags |= NBD_CMD_FLAG_FUA;
      } else if (io.op === BS_OP_FLUSH) type = NBD_CMD_FLUSH;
      else if (io.op === BS_OP_DISCARD) type = NBD_CMD_TRIM;
      else if (io.op === BS_OP_WRITE_ZEROES) {
        type = NBD_CMD_WRITE_ZEROES;
        if (!io.unmap) flags |= NBD_CMD_FLAG_NO_HOLE;
      }
      hs.writeUInt32BE(NBD_REQUEST_MAGIC, at);
      hs.writeUInt16BE(flags, at + 4);
      hs.writeUInt16BE(type, at + 6);
      writeU64(hs, at + 8, p.cookie);
      writeU64(hs, at + 16, io.op === BS_OP_FLUSH ? 0 : io.offset);
      hs.writeUInt32BE(io.op === BS_OP_FLUSH ? 0 : io.length, at + 24);
      if (io.op !== BS_OP_WRITE) continue;
      // A payload follows its header: what is before it goes first.
      this.sock.write(hs.subarray(unsent, at + REQUEST_HEADER));
      unsent = at + REQUEST_HEADER;
      for (const b of io.buffers) this.sock.write(b);
    }
    if (unsent < hs.length) this.sock.write(hs.subarray(unsent));
    this.sock.uncork();
  }

  /** A protocol violation by the server: logged, and the connection is closed (hard disconnect). */
  private protocolError(what: string): void {
    this.end(new Error(`bad server input: ${what}`), false);
  }

  /**
   * Where the next socket read is to land: while a reply's data is due and nothing else is
   * buffered, the guest buffer piece it goes to (one copy fewer, and a 128 KiB reply in as few
   * reads as the socket allows); otherwise undefined (the connection's reused buffer).
   */
  private nextRead(): Uint8Array | undefined {
    const c = this.cur;
    this.direct = undefined;
    if (!c && !this.closed && this.buf.length === 0 && this.largeReads > 0) return this.headerBuf;
    if (!c || this.closed || this.buf.length !== 0 || c.left < DIRECT_MIN) return undefined;
    if (c.kind !== "simple-data" && !(c.type === NBD_REPLY_TYPE_OFFSET_DATA && c.header.length === 8)) return undefined;
    let at = 0;
    for (const b of c.p.io.buffers) {
      if (c.pos < at + b.length) {
        const from = c.pos - at;
        const n = Math.min(b.length - from, c.left);
        if (n < DIRECT_MIN) return undefined;
        this.direct = b.subarray(from, from + n);
        return this.direct;
      }
      at += b.length;
    }
    return undefined;
  }

  /** Parses a chunk read (a view of the socket's read buffer: what is left over is copied). */
  private receive(b: Buffer): void {
    const d = this.direct;
    this.direct = undefined;
    if (d && this.cur && b.buffer === d.buffer && b.byteOffset === d.byteOffset) {
      // The reply's data landed in the guest buffer: count it, then let the parser finish the reply.
      this.cur.pos += b.length;
      this.cur.left -= b.length;
      this.parse(EMPTY);
      return;
    }
    this.parse(b);
    if (this.buf.length) this.buf = Buffer.from(this.buf);
  }

  private parse(b: Buffer): void {
    this.buf = this.buf.length ? Buffer.concat([this.buf, b]) : b;
    while (!this.closed) {
      if (this.cur) {
        if (!this.payload()) return;
        continue;
      }
      if (this.buf.length < 4) return;
      const magic = this.buf.readUInt32BE(0);
      if (magic === NBD_SIMPLE_REPLY_MAGIC) {
        if (this.buf.length < 16) return;
        const error = this.buf.readUInt32BE(4);
        const cookie = readU64(this.buf, 8);
        this.buf = this.buf.subarray(16);
        const p = this.pending.get(cookie);
        if (!p) return this.protocolError(`a reply for cookie ${cookie}, which is not in flight`);
        if (this.info.structured && p.io.op === BS_OP_READ && error === 0)
          return this.protocolError("a simple reply to a read after structured replies were agreed");
        if (p.io.op === BS_OP_READ && error === 0) {
          this.cur = { p, left: p.io.length, kind: "simple-data", type: 0, flags: NBD_REPLY_FLAG_DONE, pos: 0, header: Buffer.alloc(0) };
          continue;
        }
        this.finish(p, error ? -error : p.io.length);
      } else if (magic === NBD_STRUCTURED_REPLY_MAGIC) {
        if (!this.info.structured) return this.protocolError("a structured reply that was not agreed");
        if (this.buf.length < 20) return;
        const flags = this.buf.readUInt16BE(4);
        const type = this.buf.readUInt16BE(6);
        const cookie = readU64(this.buf, 8);
        const length = this.buf.readUInt32BE(16);
        this.buf = this.buf.subarray(20);
        const p = this.pending.get(cookie);
        if (!p) return this.protocolError(`a reply chunk for cookie ${cookie}, which is not in flight`);
        const isRead = p.io.op === BS_OP_READ;
        if (type === NBD_REPLY_TYPE_NONE) {
          if (length !== 0 || !(flags & NBD_REPLY_FLAG_DONE)) return this.protocolError("a NONE chunk with a payload or without DONE");
        } else if (type === NBD_REPLY_TYPE_OFFSET_DATA) {
          if (!isRead || length < 9 || length - 8 > p.io.length)
            return this.protocolError(`an OFFSET_DATA chunk of ${length} bytes for a ${isRead ? `${p.io.length}-byte read` : "non-read"}`);
        } else if (type === NBD_REPLY_TYPE_OFFSET_HOLE) {
          if (!isRead || length !== 12) return this.protocolError("a malformed OFFSET_HOLE chunk");
        } else if (type & NBD_REPLY_TYPE_ERROR_BIT) {
          if (length < 6 || length > 65536 + 14) return this.protocolError(`an error chunk of ${length} bytes`);
        } else {
          return this.protocolError(`an unexpected chunk type ${type}`);
        }
        this.cur = { p, left: length, kind: "chunk", type, flags, pos: 0, header: Buffer.alloc(0) };
      } else {
        return this.protocolError(`reply magic 0x${magic.toString(16)}`);
      }
    }
  }

  /** Moves the data bytes at hand into the request's buffers; true once the reply's data is all in. */
  private takeData(c: NonNullable<NbdConnection["cur"]>): boolean {
    const n = Math.min(c.left, this.buf.length);
    scatter(c.p.io.buffers, c.pos, this.buf.subarray(0, n), n);
    c.pos += n;
    c.left -= n;
    this.buf = this.buf.subarray(n);
    return c.left === 0;
  }

  /** Consumes payload of the current reply; false when more bytes are needed. */
  private payload(): boolean {
    const c = this.cur!;
    const p = c.p;
    if (c.kind === "simple-data") {
      if (!this.takeData(c)) return false;
      this.cur = undefined;
      this.finish(p, p.io.length);
      return true;
    }
    if (c.type === NBD_REPLY_TYPE_OFFSET_DATA) {
      // The 8-byte offset first, then the data straight into the guest buffers.
      if (c.header.length < 8) {
        const take = Math.min(8 - c.header.length, this.buf.length);
        c.header = Buffer.concat([c.header, this.buf.subarray(0, take)]);
        this.buf = this.buf.subarray(take);
        c.left -= take;
        if (c.header.length < 8) return false;
        const start = readU64(c.header, 0) - p.io.offset;
        if (start < 0 || start + c.left > p.io.length) {
          this.protocolError("data outside the request's range");
          return false;
        }
        c.pos = start;
        p.covered += c.left;
      }
      if (!this.takeData(c)) return false;
    } else {
      if (this.buf.length < c.left) return false;
      const body = this.buf.subarray(0, c.left);
      this.buf = this.buf.subarray(c.left);
      if (c.type === NBD_REPLY_TYPE_OFFSET_HOLE) {
        const start = readU64(body, 0) - p.io.offset;
        const size = body.readUInt32BE(8);
        if (start < 0 || size === 0 || start + size > p.io.length) {
          this.protocolError("a hole outside the request's range");
          return false;
        }
        scatter(p.io.buffers, start, null, size);
        p.covered += size;
      } else if (c.type & NBD_REPLY_TYPE_ERROR_BIT) {
        const msgLen = body.readUInt16BE(4);
        if (msgLen > body.length - 6) {
          this.protocolError("an error message longer than its chunk");
          return false;
        }
        p.error = body.readUInt32BE(0) || EIO;
        if (msgLen) log("nbd: server error %d: %s", p.error, body.subarray(6, 6 + msgLen).toString());
      }
    }
    this.cur = undefined;
    if (c.flags & NBD_REPLY_FLAG_DONE) {
      if (p.error) this.finish(p, -p.error);
      else if (p.io.op === BS_OP_READ && p.covered !== p.io.length) {
        this.protocolError(`a read answered with ${p.covered} of ${p.io.length} bytes`);
        return false;
      } else this.finish(p, p.io.length);
    }
    return true;
  }

  private finish(p: Pending, result: number): void {
    this.pending.delete(p.cookie);
    if (isLargeRead(p.io)) this.largeReads--;
    if (this.pending.size === 0) this.sock.unref();
    if (result === -NBD_ESHUTDOWN) {
      this.softDisconnect();
      this.onShutdown(p);
    } else this.onComplete(p, result);
    // The last reply a softly ending connection waited for: it is done.
    if (this.draining && this.pending.size === 0) this.end(new Error("the server is shutting down (NBD_ESHUTDOWN)"), false);
  }

  /**
   * The server said it is shutting down: the protocol asks for a soft disconnect (NBD_CMD_DISC).
   * Nothing new is sent here; the requests in flight still get their replies, or go elsewhere
   * when the server closes first or has not answered them within ATTEMPT_MS (a server that is
   * going away is not waited for as long as one that is merely slow).
   */
  private softDisconnect(): void {
    if (this.draining || this.closed) return;
    this.draining = true;
    this.sock.write(discRequest());
    setTimeout(() => this.end(new Error(`no reply within ${ATTEMPT_MS} ms of the soft disconnect`), false), ATTEMPT_MS).unref();
  }

  private end(why: Error, timedOut: boolean): void {
    if (this.closed) return;
    this.closed = true;
    clearInterval(this.timer);
    this.cur = undefined;
    this.sock.destroy();
    this.onEnd(this, why, timedOut);
  }

  /** Ends the connection politely (NBD_CMD_DISC) once nothing is in flight. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    clearInterval(this.timer);
    // A softly ending connection sent its NBD_CMD_DISC already.
    if (this.draining) this.sock.end();
    else this.sock.end(discRequest());
  }
}

/** An NBD_CMD_DISC request: no cookie, offset or length. */
function discRequest(): Buffer {
  const h = Buffer.alloc(28);
  h.writeUInt32BE(NBD_REQUEST_MAGIC, 0);
  h.writeUInt16BE(NBD_CMD_DISC, 6);
  return h;
}

/** Opens a connection and negotiates within timeoutMs; throws with the reason it could not. */
async function openConnection(addr: NbdAddress, timeoutMs: number, tls: TlsPlan | undefined): Promise<Opened> {
  const d = await dial(addr, tls !== undefined);
  const r = new HandshakeReader(d);
  let timer: NodeJS.Timeout | undefined;
  try {
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`no answer to the handshake within ${timeoutMs} ms`)), timeoutMs);
    });
    const info = await Promise.race([handshake(d, r, addr.export, tls), timeout]);
    clearTimeout(timer);
    return { d, info, leftover: r.detach() };
  } catch (e) {
    clearTimeout(timer);
    // Tell the server we are going (NBD_OPT_ABORT) before closing, as the protocol asks.
    const h = Buffer.alloc(16);
    h.writeBigUInt64BE(IHAVEOPT);
    h.writeUInt32BE(NBD_OPT_ABORT, 8);
    r.detach();
    const sock = d.sock;
    sock.on("error", () => {}); // a reset while saying goodbye changes nothing
    // A TLS handshake that failed leaves nothing to speak NBD over.
    if (d.tlsStarted && !("encrypted" in sock)) sock.destroy();
    else sock.end(h);
    throw e;
  }
}

/** A negotiated connection: its socket, the export, and what the server sent beyond the handshake. */
interface Opened {
  d: Dialed;
  info: ExportInfo;
  leftover: Buffer;
}

/** How a client reaches the export: its address, limits and TLS plan, from the config. */
interface ClientSettings {
  addr: NbdAddress;
  full: { connections: number; timeoutMs: number; reconnectMs: number };
  tls: TlsPlan | undefined;
}

function clientSettings(cfg: NbdConfig): ClientSettings {
  const addr = parseNbdUri(cfg.uri);
  const full = { connections: cfg.connections ?? 2, timeoutMs: cfg.timeoutMs ?? 30_000, reconnectMs: cfg.reconnectMs ?? 15_000 };
  const t = tlsSettings(new URL(cfg.uri), cfg);
  return { addr, full, tls: t.tls === "off" ? undefined : { mode: t.tls, options: tlsOptions(t, addr.host) } };
}

/**
 * A LUN's blocks on an NBD server. Served where its sockets live: on the thread that opened it,
 * or, when the server allows several connections, in each vhost worker by a client of its own
 * (openInThread), served between the worker's passes (docs/design-notes.md, "NBD on the vhost
 * workers").
 */
export class NbdBackstore implements QueuedBackstore {
  readonly kind = "queued";
  readonly name = "nbd";
  readonly size: number;
  readonly readOnly: boolean;
  readonly features: BackstoreFeatures;
  /** The export's smallest I/O (NBD_INFO_BLOCK_SIZE minimum) and largest request payload. */
  readonly blockSize: number;
  readonly maxTransfer: number;
  private readonly conns: (NbdConnection | undefined)[];
  private next = 0;
  private cookie = 1;
  /** Requests waiting for a connection (a reconnect in progress). */
  private waiting: BackstoreIo[] = [];
  private reconnecting: Promise<void> | undefined;
  private closing = false;
  private readonly done = new Map<BackstoreIo, IoDone>();

  /** A client of the export `info` describes; its first connection, if open already. */
  private constructor(
    private readonly uri: string,
    private readonly addr: NbdAddress,
    private readonly cfg: { connections: number; timeoutMs: number; reconnectMs: number },
    private readonly tls: TlsPlan | undefined,
    info: ExportInfo,
    first: Opened | undefined,
    /** Set when the vhost workers serve the export, each with a client of its own. */
    readonly threaded?: ThreadedBackstore,
  ) {
    const f = info.flags;
    this.size = info.size;
    this.readOnly = (f & NBD_FLAG_READ_ONLY) !== 0;
    this.features = {
      flush: (f & NBD_FLAG_SEND_FLUSH) !== 0,
      fua: (f & NBD_FLAG_SEND_FUA) !== 0,
      discard: (f & NBD_FLAG_SEND_TRIM) !== 0,
      // NBD_CMD_TRIM leaves the contents undefined: no LBPRZ.
      discardZeroes: false,
      writeZeroes: (f & NBD_FLAG_SEND_WRITE_ZEROES) !== 0,
    };
    this.blockSize = Math.max(1, info.minBlock);
    this.maxTransfer = info.maxPayload;
    const n = f & NBD_FLAG_CAN_MULTI_CONN ? Math.max(1, cfg.connections) : 1;
    this.conns = Array(n).fill(undefined);
    if (first) this.conns[0] = this.wrap(first);
  }

  /** Connects (all connections) and negotiates: a client served on this thread. */
  static connect(cfg: NbdConfig): Promise<NbdBackstore> {
    return NbdBackstore.start(cfg, false);
  }

  /**
   * Opens the export for a LUN: as connect(), except that a server allowing several connections
   * is served by the vhost workers (NbdConfig.onWorkers), each with a client of its own; this
   * handle then keeps what the handshake told and lets its connection go.
   */
  static open(cfg: NbdConfig): Promise<NbdBackstore> {
    return NbdBackstore.start(cfg, cfg.onWorkers !== false);
  }

  private static async start(cfg: NbdConfig, onWorkers: boolean): Promise<NbdBackstore> {
    let s: ClientSettings;
    let first: Opened;
    try {
      s = clientSettings(cfg);
      first = await openConnection(s.addr, s.full.timeoutMs, s.tls);
    } catch (e) {
      throw new Error(`nbd ${cfg.uri}: ${(e as Error).message}`);
    }
    const { addr, full, tls } = s;
    if (onWorkers && first.info.flags & NBD_FLAG_CAN_MULTI_CONN) {
      const init: NbdThreadInit = { cfg, info: first.info };
      const module = compiledModule(new URL("./nbd.ts", import.meta.url)).href;
      const b = new NbdBackstore(cfg.uri, addr, full, tls, first.info, first, { module, init, ioThreads: 0 });
      await b.close();
      return b;
    }
    const b = new NbdBackstore(cfg.uri, addr, full, tls, first.info, first);
    try {
      for (let i = 1; i < b.conns.length; i++) b.conns[i] = b.wrap(await openConnection(addr, full.timeoutMs, tls));
    } catch (e) {
      await b.close();
      throw new Error(`nbd ${cfg.uri}: connection ${b.conns.filter(Boolean).length + 1}: ${(e as Error).message}`);
    }
    return b;
  }

  /**
   * A client for a vhost worker, from what the first handshake told: its connections are made
   * as a reconnect is (a server that is not there yet is waited for within reconnectMs, as after
   * a lost connection), so that the worker's passes over the rings never wait for a handshake.
   * @internal
   */
  static inThread(init: NbdThreadInit): NbdBackstore {
    const { addr, full, tls } = clientSettings(init.cfg);
    const b = new NbdBackstore(init.cfg.uri, addr, full, tls, init.info, undefined);
    void b.reconnect(new Error("not connected yet"), false);
    return b;
  }

  private wrap(c: Opened): NbdConnection {
    return new NbdConnection(
      c,
      (p, result) => this.complete(p.io, result),
      (conn, why, timedOut) => this.lost(conn, why, timedOut),
      (p) => this.refused(p.io),
      this.cfg.timeoutMs,
    );
  }

  /**
   * A request the server refused as it shuts down (NBD_ESHUTDOWN): it was not carried out, so it
   * goes again, on a live connection or on the next one made.
   */
  private refused(io: BackstoreIo): void {
    if (this.closing) return this.complete(io, -ENOTCONN);
    log("nbd %s: the server is shutting down (NBD_ESHUTDOWN); the request goes again on another connection", this.uri);
    if (this.reconnecting || !this.conns.some((c) => c?.alive)) {
      this.waiting.push(io);
      void this.reconnect(new Error("the server is shutting down"), false);
    } else this.dispatch([io]);
  }

  private complete(io: BackstoreIo, result: number): void {
    const done = this.done.get(io);
    if (!done) return;
    this.done.delete(io);
    done(io, result);
  }

  submit(batch: readonly BackstoreIo[], done: IoDone): void {
    for (const io of batch) this.done.set(io, done);
    if (this.reconnecting) {
      this.waiting.push(...batch);
      return;
    }
    this.dispatch(batch);
  }

  /** Sends operations over the live connections, round robin. */
  private dispatch(ios: readonly BackstoreIo[]): void {
    const live = this.conns.filter((c): c is NbdConnection => !!c?.alive);
    if (live.length === 0) {
      this.waiting.push(...ios);
      void this.reconnect(new Error("no connection"), false);
      return;
    }
    const per = live.map(() => [] as Pending[]);
    for (const io of ios) per[this.next++ % live.length].push({ io, cookie: this.cookie++, sentAt: 0, covered: 0, error: 0 });
    live.forEach((c, i) => per[i].length && c.send(per[i]));
  }

  /** A connection ended: its requests wait for a new one, which is opened with backoff. */
  private lost(conn: NbdConnection, why: Error, timedOut: boolean): void {
    const i = this.conns.indexOf(conn);
    if (i >= 0) this.conns[i] = undefined;
    const retry = [...conn.pending.values()].map((p) => p.io);
    conn.pending.clear();
    if (this.closing) {
      for (const io of retry) this.complete(io, -ENOTCONN);
      return;
    }
    log("nbd %s: connection lost (%s); %d requests will be sent again", this.uri, why.message, retry.length);
    this.waiting.push(...retry);
    void this.reconnect(why, timedOut);
  }

  /**
   * Reconnects until reconnectMs has passed, then fails what waits. Each attempt may take
   * ATTEMPT_MS at most, and attempts are BACKOFF_FIRST_MS apart, doubling up to BACKOFF_MAX_MS:
   * a server that comes back is reached within about one such step. What waits is sent (or
   * failed) in a continuation, so always after `reconnecting` is set, even when every slot
   * already holds a live connection (a softly ending one that another reconnect replaced).
   */
  private reconnect(why: Error, timedOut: boolean): Promise<void> {
    if (this.reconnecting) return this.reconnecting;
    this.reconnecting = this.reopen(why).then((last) => {
      this.reconnecting = undefined;
      const waiting = this.waiting;
      this.waiting = [];
      if (this.conns.some((c) => c?.alive) && !this.closing) {
        this.dispatch(waiting);
      } else {
        log("nbd %s: giving up reconnecting (%s); %d requests fail", this.uri, last.message, waiting.length);
        for (const io of waiting) this.complete(io, timedOut ? -ETIMEDOUT : -ENOTCONN);
      }
    });
    return this.reconnecting;
  }

  /** Fills every slot without a live connection, with backoff, until reconnectMs; returns the last error. */
  private async reopen(why: Error): Promise<Error> {
    const deadline = Date.now() + this.cfg.reconnectMs;
    let delay = BACKOFF_FIRST_MS;
    let last = why;
    for (let attempt = 1; !this.closing && Date.now() < deadline; attempt++) {
      try {
        for (let i = 0; i < this.conns.length; i++) {
          if (this.conns[i]?.alive) continue;
          const c = await openConnection(this.addr, Math.max(1, Math.min(this.cfg.timeoutMs, ATTEMPT_MS, deadline - Date.now())), this.tls);
          if (c.info.size !== this.size) log("nbd: the export's size changed from %d to %d", this.size, c.info.size);
          this.conns[i] = this.wrap(c);
        }
        log("nbd %s: reconnected (attempt %d)", this.uri, attempt);
        return last;
      } catch (e) {
        last = e as Error;
        log("nbd %s: reconnect attempt %d failed (%s); next in %d ms", this.uri, attempt, last.message, delay);
        await new Promise((r) => setTimeout(r, Math.min(delay, Math.max(1, deadline - Date.now()))));
        delay = Math.min(delay * 2, BACKOFF_MAX_MS);
      }
    }
    return last;
  }

  /** Closes the connections (the LUN has no request in flight any more). */
  async close(): Promise<void> {
    this.closing = true;
    await this.reconnecting;
    for (const c of this.conns) c?.close();
    for (const io of [...this.done.keys()]) this.complete(io, -ENOTCONN);
  }
}

/** What a vhost worker needs to serve the export with a client of its own: the config, and what the first handshake told. */
interface NbdThreadInit {
  cfg: NbdConfig;
  info: ExportInfo;
}

/** In a vhost worker: a client of its own for the export (NbdBackstore.inThread). */
export function openInThread(init: NbdThreadInit): QueuedBackstore {
  return NbdBackstore.inThread(init);
}

export const nbdBackstoreType: BackstoreType<"nbd"> = {
  name: "nbd",
  aliases: ["nbd+unix", "nbds", "nbds+unix"],
  usage: "nbd[s]://HOST[:PORT]/EXPORT, nbd[s]+unix:///EXPORT?socket=PATH (nbds: TLS, with ?tls-certificates=DIR or ?tls-psk-file=FILE)",
  uri: true,
  parseArg(arg) {
    parseNbdUri(arg);
    tlsSettings(new URL(arg), {});
    return { uri: arg };
  },
  opensAsync: true,
  open: (cfg) => NbdBackstore.open(cfg),
};
