import type { GuestVirtqueue } from "./virtqueue.js";
import type { GuestMemory } from "./guest-memory.js";
import type { VirtioTransport } from "../virtio/transport.js";
import { VirtioDriver, bit, type Pending } from "./virtio-driver.js";
import { VIRTIO_F_VERSION_1, VIRTIO_RING_F_EVENT_IDX, VIRTIO_RING_F_INDIRECT_DESC } from "../virtio/ring.js";
import {
  VIRTIO_SCSI_CMD_REQ_PI_SIZE,
  VIRTIO_SCSI_CMD_REQ_SIZE,
  VIRTIO_SCSI_CMD_RESP_SIZE,
  VIRTIO_SCSI_CTRL_AN_REQ_SIZE,
  VIRTIO_SCSI_CTRL_AN_RESP_SIZE,
  VIRTIO_SCSI_CTRL_TMF_REQ_SIZE,
  VIRTIO_SCSI_EVENT_SIZE,
  VIRTIO_SCSI_F_CHANGE,
  VIRTIO_SCSI_F_HOTPLUG,
  VIRTIO_SCSI_F_T10_PI,
  VIRTIO_SCSI_T_TMF,
  VIRTIO_SCSI_S_SIMPLE,
  virtioScsiLun,
} from "../virtio/virtio-scsi.js";
import { decodeSense, type SenseInfo } from "./sense.js";

/** One SCSI command as a guest issues it. */
export interface ScsiCommand {
  lun: number;
  cdb: Uint8Array;
  /** Target number (the TPG tag); default: the driver's default target. */
  target?: number;
  dataOut?: Uint8Array;
  dataInLength?: number;
  /**
   * Where the data-in goes: a guest buffer of the caller's (a page cache that outlives the
   * command) instead of a temporary one; `dataIn` is then a copy of it. Not with piIn.
   */
  dataInAt?: number;
  /** Request queue (0-based among request queues); default round robin. */
  queue?: number;
  tag?: bigint;
  taskAttr?: number;
  /** Split every buffer into descriptors of at most this many bytes (headers included). */
  fragment?: number;
  /** Put the chain in an indirect table. */
  indirect?: boolean;
  /** T10-PI bytes preceding the data (only with VIRTIO_SCSI_F_T10_PI). */
  piOut?: number;
  piIn?: number;
}

/** A command's completion (struct virtio_scsi_cmd_resp plus the data). */
export interface ScsiResult {
  response: number;
  status: number;
  sense: Uint8Array;
  residual: number;
  dataIn: Uint8Array;
  /** The used element's length. */
  usedLen: number;
  /** sense decoded, when there is any. */
  senseInfo: SenseInfo | undefined;
}

/** A virtio_scsi_event as received. */
export interface ScsiEvent {
  event: number;
  lun: Uint8Array;
  reason: number;
}

export interface VirtioScsiDriverOptions {
  /** Target number commands go to by default. */
  target?: number;
  /** Features the driver accepts (default: all it knows: VERSION_1, EVENT_IDX, INDIRECT_DESC, HOTPLUG, CHANGE). */
  features?: bigint;
  /** Queue size to use (default: the device's maximum). */
  queueSize?: number;
  /** Event buffers kept posted (Linux posts 8). */
  eventBuffers?: number;
}

export type { Pending } from "./virtio-driver.js";

const align16 = (n: number) => (n + 15) & ~15;

/**
 * A virtio-scsi guest driver in the manner of Linux's drivers/scsi/virtio_scsi.c: device
 * initialization (VIRTIO 1.2, 3.1.1), a control, an event and N request queues, commands with
 * their headers and data in guest RAM, TMF and AN requests, and event buffers kept posted.
 * It reaches the device only through the transport and the rings.
 */
export class VirtioScsiDriver extends VirtioDriver {
  readonly control: GuestVirtqueue<Pending>;
  readonly event: GuestVirtqueue<number>;
  readonly requests: GuestVirtqueue<Pending>[];
  defaultTarget: number;
  readonly events: ScsiEvent[] = [];
  private eventListeners: ((e: ScsiEvent) => void)[] = [];
  private nextQueue = 0;
  private nextTag = 1n;
  private readonly eventBlock: number;

  private constructor(mem: GuestMemory, transport: VirtioTransport, features: bigint, queues: GuestVirtqueue<unknown>[], opts: VirtioScsiDriverOptions) {
    super(mem, transport, features);
    this.defaultTarget = opts.target ?? 0;
    this.control = queues[0] as GuestVirtqueue<Pending>;
    this.event = queues[1] as GuestVirtqueue<number>;
    this.requests = queues.slice(2) as GuestVirtqueue<Pending>[];
    const n = opts.eventBuffers ?? 8;
    this.eventBlock = n > 0 ? mem.alloc(n * VIRTIO_SCSI_EVENT_SIZE, 16) : 0;
    for (let k = 0; k < n; k++) this.postEventBuffer(k);
    this.event.kick();
  }

  protected get virtqueues(): readonly GuestVirtqueue<unknown>[] {
    return [this.control, this.event, ...this.requests];
  }

  /** Probes the device: reset, negotiate, set up the queues, DRIVER_OK (VIRTIO 1.2, 3.1.1). */
  static async probe(mem: GuestMemory, t: VirtioTransport, opts: VirtioScsiDriverOptions = {}): Promise<VirtioScsiDriver> {
    const wanted =
      opts.features ??
      bit(VIRTIO_F_VERSION_1) | bit(VIRTIO_RING_F_EVENT_IDX) | bit(VIRTIO_RING_F_INDIRECT_DESC) | bit(VIRTIO_SCSI_F_HOTPLUG) | bit(VIRTIO_SCSI_F_CHANGE);
    const { features, queues } = await VirtioDriver.negotiate(mem, t, wanted, opts.queueSize);
    const driver = new VirtioScsiDriver(mem, t, features, queues, opts);
    await driver.start();
    return driver;
  }

  private get pi(): boolean {
    return (this.features & bit(VIRTIO_SCSI_F_T10_PI)) !== 0n;
  }

  private postEventBuffer(k: number): void {
    const addr = this.eventBlock + k * VIRTIO_SCSI_EVENT_SIZE;
    this.mem.bytes(addr, VIRTIO_SCSI_EVENT_SIZE).fill(0);
    this.event.add([], [{ addr, len: VIRTIO_SCSI_EVENT_SIZE }], k);
  }

  /** Calls fn for every event received from now on. */
  onEvent(fn: (e: ScsiEvent) => void): void {
    this.eventListeners.push(fn);
  }

  /** Sends a SCSI command and resolves with its completion. */
  async command(c: ScsiCommand): Promise<ScsiResult> {
    if (c.cdb.length > 32) throw new RangeError("CDB longer than cdb_size (32)");
    const reqSize = this.pi ? VIRTIO_SCSI_CMD_REQ_PI_SIZE : VIRTIO_SCSI_CMD_REQ_SIZE;
    const outLen = (c.piOut ?? 0) + (c.dataOut?.length ?? 0);
    const inLen = (c.piIn ?? 0) + (c.dataInLength ?? 0);
    if (c.dataInAt !== undefined && c.piIn) throw new RangeError("dataInAt and piIn do not go together");
    const own = c.dataInAt === undefined ? inLen : 0;
    const hdr = 0;
    const data = align16(reqSize);
    const resp = data + align16(outLen);
    const din = resp + align16(VIRTIO_SCSI_CMD_RESP_SIZE);
    const size = din + align16(own) + 16;
    const block = this.mem.alloc(size, 16);
    const bytes = this.mem.bytes(block, size);
    bytes.fill(0);
    const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    bytes.set(virtioScsiLun(c.target ?? this.defaultTarget, c.lun), hdr);
    const tag = c.tag ?? this.nextTag++;
    dv.setBigUint64(hdr + 8, tag, true);
    bytes[hdr + 16] = c.taskAttr ?? VIRTIO_SCSI_S_SIMPLE;
    if (this.pi) {
      dv.setUint32(hdr + 19, c.piOut ?? 0, true);
      dv.setUint32(hdr + 23, c.piIn ?? 0, true);
      bytes.set(c.cdb, hdr + 27);
    } else {
      bytes.set(c.cdb, hdr + 19);
    }
    if (c.dataOut) bytes.set(c.dataOut, data + (c.piOut ?? 0));
    const qi = c.queue ?? this.nextQueue++ % this.requests.length;
    const q = this.requests[qi];
    const { usedLen } = await this.submit(
      q,
      2 + qi,
      [
        { addr: block + hdr, len: reqSize },
        { addr: block + data, len: outLen },
      ],
      [
        { addr: block + resp, len: VIRTIO_SCSI_CMD_RESP_SIZE },
        { addr: c.dataInAt ?? block + din, len: inLen },
      ],
      c.fragment,
      c.indirect,
    );
    const after = this.mem.bytes(block, size);
    const rv = new DataView(after.buffer, after.byteOffset, after.byteLength);
    const senseLen = Math.min(rv.getUint32(resp, true), 96);
    const sense = after.slice(resp + 12, resp + 12 + senseLen);
    const result: ScsiResult = {
      response: after[resp + 11],
      status: after[resp + 10],
      sense,
      residual: rv.getUint32(resp + 4, true),
      dataIn: c.dataInAt === undefined ? after.slice(din + (c.piIn ?? 0), din + inLen) : this.mem.read(c.dataInAt, inLen),
      usedLen,
      senseInfo: decodeSense(sense),
    };
    this.mem.free(block);
    return result;
  }

  /**
   * Sends a control-queue request: `build` fills the request bytes, the response (respLen bytes,
   * preset to `preset` so an unanswered request is visible) comes back as a copy.
   */
  private async controlRequest(reqLen: number, respLen: number, preset: number, build: (b: Uint8Array, dv: DataView) => void): Promise<Uint8Array> {
    const block = this.mem.alloc(64, 16);
    const b = this.mem.bytes(block, 64);
    b.fill(0);
    b.fill(preset, 32, 32 + respLen);
    build(b, new DataView(b.buffer, b.byteOffset, 64));
    await this.submit(this.control, 0, [{ addr: block, len: reqLen }], [{ addr: block + 32, len: respLen }]);
    const resp = this.mem.bytes(block + 32, respLen).slice();
    this.mem.free(block);
    return resp;
  }

  /** Sends a task management function; resolves with the response code. */
  async tmf(subtype: number, opts: { lun: number; target?: number; tag?: bigint }): Promise<number> {
    const r = await this.controlRequest(VIRTIO_SCSI_CTRL_TMF_REQ_SIZE, 1, 0xff, (b, dv) => {
      dv.setUint32(0, VIRTIO_SCSI_T_TMF, true);
      dv.setUint32(4, subtype, true);
      b.set(virtioScsiLun(opts.target ?? this.defaultTarget, opts.lun), 8);
      dv.setBigUint64(16, opts.tag ?? 0n, true);
    });
    return r[0];
  }

  /** Sends an asynchronous-notification query or subscribe; resolves with response and event_actual. */
  async an(type: number, opts: { lun: number; target?: number; events: number }): Promise<{ response: number; eventActual: number }> {
    const r = await this.controlRequest(VIRTIO_SCSI_CTRL_AN_REQ_SIZE, VIRTIO_SCSI_CTRL_AN_RESP_SIZE, 0, (b, dv) => {
      dv.setUint32(0, type, true);
      b.set(virtioScsiLun(opts.target ?? this.defaultTarget, opts.lun), 4);
      dv.setUint32(12, opts.events, true);
    });
    return { response: r[4], eventActual: new DataView(r.buffer).getUint32(0, true) };
  }

  /**
   * Hands request queue `queue` (0-based) over to another driver instance, such as a polled
   * I/O engine in another thread: this driver stops reaping it. The queue must be idle.
   */
  releaseQueue(queue: number): ReturnType<VirtioDriver["releaseVirtqueue"]> {
    return this.releaseVirtqueue(2 + queue, this.requests[queue]);
  }

  /** The interrupt handler of queue index: reaps used buffers, re-posts event buffers, refills from the backlog. */
  interrupt(index: number): void {
    if (index === 1) {
      for (let u = this.event.getUsed(); u; u = this.event.getUsed()) {
        const addr = this.eventBlock + u.token * VIRTIO_SCSI_EVENT_SIZE;
        const b = this.mem.bytes(addr, VIRTIO_SCSI_EVENT_SIZE);
        const dv = new DataView(b.buffer, b.byteOffset, 16);
        const e = { event: dv.getUint32(0, true), lun: b.slice(4, 12), reason: dv.getUint32(12, true) };
        this.events.push(e);
        for (const fn of this.eventListeners) fn(e);
        this.postEventBuffer(u.token);
      }
      this.event.kick();
      return;
    }
    if (this.isReleased(index)) return;
    const q = index === 0 ? this.control : this.requests[index - 2];
    if (!q) return;
    this.reap(q);
  }
}
