import type { GuestMemory } from "./guest-memory.js";
import type { GuestVirtqueue } from "./virtqueue.js";
import type { VirtioTransport } from "../virtio/transport.js";
import { VIRTIO_F_VERSION_1, VIRTIO_RING_F_EVENT_IDX, VIRTIO_RING_F_INDIRECT_DESC } from "../virtio/ring.js";
import {
  VIRTIO_BLK_CFG_BLK_SIZE,
  VIRTIO_BLK_CFG_CAPACITY,
  VIRTIO_BLK_CFG_WRITEBACK,
  VIRTIO_BLK_F_BLK_SIZE,
  VIRTIO_BLK_F_CONFIG_WCE,
  VIRTIO_BLK_IMPLEMENTED_FEATURES,
  VIRTIO_BLK_OUTHDR_SIZE,
} from "../virtio/virtio-blk.js";
import { VirtioDriver, bit, type Pending } from "./virtio-driver.js";

/** One virtio-blk request as a guest issues it (struct virtio_blk_req). */
export interface BlkRequest {
  /** VIRTIO_BLK_T_*. */
  type: number;
  /** In 512-byte sectors, whatever the block size. */
  sector?: bigint | number;
  /** Data after the header (OUT; DISCARD and WRITE_ZEROES segments). */
  dataOut?: Uint8Array;
  /** Writable bytes before the status byte (IN, GET_ID). */
  dataInLength?: number;
  /** Request queue (0-based); default round robin. */
  queue?: number;
  /** Split every buffer into descriptors of at most this many bytes (header and status included). */
  fragment?: number;
  /** Put the chain in an indirect table. */
  indirect?: boolean;
}

/** A request's completion: its status byte, the data-in and the used length. */
export interface BlkResult {
  status: number;
  dataIn: Uint8Array;
  usedLen: number;
}

export interface VirtioBlkDriverOptions {
  /** Features the driver accepts (default: all it knows). */
  features?: bigint;
  /** Queue size to use (default: the device's maximum). */
  queueSize?: number;
}

const align16 = (n: number) => (n + 15) & ~15;
/** Written into the status byte before a request is posted, so that an unanswered one shows. */
const STATUS_UNANSWERED = 0xff;

/**
 * A virtio-blk guest driver in the manner of Linux's drivers/block/virtio_blk.c: initialization
 * with the features it knows, N request queues (VIRTIO_BLK_F_MQ), requests laid out as the
 * header, the data and the status byte in guest RAM, and the config space read as the driver
 * reads it (capacity, block size, writeback toggled through CONFIG_WCE).
 */
export class VirtioBlkDriver extends VirtioDriver {
  readonly requests: GuestVirtqueue<Pending>[];
  private nextQueue = 0;

  private constructor(mem: GuestMemory, transport: VirtioTransport, features: bigint, queues: GuestVirtqueue<unknown>[]) {
    super(mem, transport, features);
    this.requests = queues as GuestVirtqueue<Pending>[];
  }

  protected get virtqueues(): readonly GuestVirtqueue<unknown>[] {
    return this.requests;
  }

  static async probe(mem: GuestMemory, t: VirtioTransport, opts: VirtioBlkDriverOptions = {}): Promise<VirtioBlkDriver> {
    const wanted =
      opts.features ??
      [VIRTIO_F_VERSION_1, VIRTIO_RING_F_EVENT_IDX, VIRTIO_RING_F_INDIRECT_DESC, ...VIRTIO_BLK_IMPLEMENTED_FEATURES].reduce((m, b) => m | bit(b), 0n);
    const { features, queues } = await VirtioDriver.negotiate(mem, t, wanted, opts.queueSize);
    const driver = new VirtioBlkDriver(mem, t, features, queues);
    await driver.start();
    return driver;
  }

  private config(offset: number, length: number): DataView {
    const b = this.transport.readConfig(offset, length);
    return new DataView(b.buffer, b.byteOffset, b.byteLength);
  }

  /** Capacity in 512-byte sectors. */
  get capacity(): bigint {
    return this.config(VIRTIO_BLK_CFG_CAPACITY, 8).getBigUint64(0, true);
  }

  /** The logical block size (512 without VIRTIO_BLK_F_BLK_SIZE). */
  get blockSize(): number {
    return this.has(VIRTIO_BLK_F_BLK_SIZE) ? this.config(VIRTIO_BLK_CFG_BLK_SIZE, 4).getUint32(0, true) : 512;
  }

  /** The config space's writeback field (VIRTIO_BLK_F_CONFIG_WCE). */
  get writeback(): boolean {
    return this.config(VIRTIO_BLK_CFG_WRITEBACK, 1).getUint8(0) !== 0;
  }

  /** Turns the volatile write cache on or off (the driver writes `writeback`, VIRTIO 1.2, 5.2.5). */
  setWriteback(on: boolean): void {
    if (!this.has(VIRTIO_BLK_F_CONFIG_WCE)) throw new Error("VIRTIO_BLK_F_CONFIG_WCE was not negotiated");
    this.transport.writeConfig(VIRTIO_BLK_CFG_WRITEBACK, Uint8Array.of(on ? 1 : 0));
  }

  /** Sends a request and resolves with its completion. */
  async request(r: BlkRequest): Promise<BlkResult> {
    const outLen = r.dataOut?.length ?? 0;
    const inLen = r.dataInLength ?? 0;
    const data = align16(VIRTIO_BLK_OUTHDR_SIZE);
    const din = data + align16(outLen);
    const status = din + align16(inLen);
    const size = status + 16;
    const block = this.mem.alloc(size, 16);
    const bytes = this.mem.bytes(block, size);
    bytes.fill(0);
    const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    dv.setUint32(0, r.type, true);
    dv.setBigUint64(8, BigInt(r.sector ?? 0), true);
    if (r.dataOut) bytes.set(r.dataOut, data);
    bytes[status] = STATUS_UNANSWERED;
    const qi = r.queue ?? this.nextQueue++ % this.requests.length;
    const { usedLen } = await this.submit(
      this.requests[qi],
      qi,
      [
        { addr: block, len: VIRTIO_BLK_OUTHDR_SIZE },
        { addr: block + data, len: outLen },
      ],
      [
        { addr: block + din, len: inLen },
        { addr: block + status, len: 1 },
      ],
      r.fragment,
      r.indirect,
    );
    const after = this.mem.bytes(block, size);
    const result = { status: after[status], dataIn: after.slice(din, din + inLen), usedLen };
    this.mem.free(block);
    return result;
  }

  /**
   * Hands request queue `queue` over to another driver instance, such as a polled I/O engine in
   * another thread: this driver stops reaping it. The queue must be idle.
   */
  releaseQueue(queue: number): ReturnType<VirtioDriver["releaseVirtqueue"]> {
    return this.releaseVirtqueue(queue, this.requests[queue]);
  }

  interrupt(index: number): void {
    const q = this.requests[index];
    if (q && !this.isReleased(index)) this.reap(q);
  }
}
