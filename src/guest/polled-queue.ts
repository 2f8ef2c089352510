import { EventFd, type EventFdHandle } from "../sys/eventfd.js";
import { VRING_DESC_F_NEXT, VRING_DESC_F_WRITE, vringNeedEvent } from "../virtio/ring.js";
import { VIRTIO_SCSI_CMD_REQ_SIZE, VIRTIO_SCSI_CMD_RESP_SIZE } from "../virtio/virtio-scsi.js";

/** A request queue handed over by VirtioScsiDriver.releaseQueue(), with its notifiers. */
export interface ReleasedQueue {
  /** Ring layout in shared-memory offsets (the guest's GPAs translated once). */
  num: number;
  desc: number;
  avail: number;
  used: number;
  availIdx: number;
  usedIdx: number;
  eventIdx: boolean;
  kick: EventFdHandle;
  call: EventFdHandle;
}

export interface PolledQueueOptions {
  /** Target and LUN the requests go to. */
  target: number;
  lun: number;
  /** Requests kept in flight; the ring must hold 3 descriptors for each. */
  depth: number;
  /** Bytes per request. */
  bytes: number;
  /** Logical block size of the LUN. */
  blockSize: number;
  /** Guest RAM for the slots: depth * slotSize(bytes) bytes at this GPA / shared-memory offset. */
  bufferGpa: number;
  bufferHva: number;
}

const HDR = 0;
const RESP = 64;
const DATA = 4096;

/** Bytes of guest RAM one slot needs for requests of `bytes` bytes. */
export const polledSlotSize = (bytes: number) => DATA + ((bytes + 4095) & ~4095);

/**
 * A polled virtio-scsi request queue for load generation, the guest side of the benchmark (in
 * the manner of an io_uring/fio engine on a polled queue): `depth` slots, each a fixed chain of
 * three descriptors (request header, response, data) whose data direction is set per request;
 * READ(16)/WRITE(16) built in place; avail->idx published once per batch with event-idx kick
 * suppression; completions reaped by polling the used ring, with used_event left behind so the
 * device does not interrupt while the guest polls. wait() arms the interrupt and sleeps on the
 * call eventfd when there is nothing to reap. No allocation per request.
 */
export class PolledScsiQueue {
  private readonly u8: Uint8Array;
  private readonly u16: Uint16Array;
  private readonly u32: Uint32Array;
  private readonly dv: DataView;
  private readonly kick: EventFd;
  private readonly call: EventFd;
  private readonly mask: number;
  private availShadow: number;
  private kicked: number;
  private lastUsed: number;
  /** Per slot: whether the chain is laid out for a read. */
  private readonly layoutRead: Uint8Array;
  private readonly availIdxAt: number;
  private readonly availRing: number;
  private readonly usedEventAt: number;
  private readonly usedIdxAt: number;
  private readonly usedRing: number;
  private readonly availEventAt: number;
  private nextTag = 1;
  kicks = 0;

  constructor(
    buffer: SharedArrayBuffer,
    private readonly q: ReleasedQueue,
    private readonly o: PolledQueueOptions,
  ) {
    if (q.num < 3 * o.depth) throw new RangeError(`queue of ${q.num} cannot hold ${o.depth} three-descriptor chains`);
    // Kick and interrupt suppression here are the event-idx kind (avail_event, used_event).
    if (!q.eventIdx) throw new RangeError("a polled queue needs VIRTIO_RING_F_EVENT_IDX");
    this.u8 = new Uint8Array(buffer);
    this.u16 = new Uint16Array(buffer);
    this.u32 = new Uint32Array(buffer);
    this.dv = new DataView(buffer);
    this.kick = EventFd.fromHandle(q.kick);
    this.call = EventFd.fromHandle(q.call);
    this.mask = q.num - 1;
    this.availShadow = this.kicked = q.availIdx;
    this.lastUsed = q.usedIdx;
    this.layoutRead = new Uint8Array(o.depth).fill(2);
    this.availIdxAt = (q.avail + 2) >>> 1;
    this.availRing = this.availIdxAt + 1;
    this.usedEventAt = this.availRing + q.num;
    this.usedIdxAt = (q.used + 2) >>> 1;
    this.usedRing = (q.used + 4) >>> 2;
    this.availEventAt = (q.used + 4 + 8 * q.num) >>> 1;
    for (let s = 0; s < o.depth; s++) {
      const hdr = this.slotHva(s) + HDR;
      this.u8.fill(0, hdr, hdr + DATA);
      this.u8[hdr] = 1;
      this.u8[hdr + 1] = o.target;
      this.u8[hdr + 2] = (o.lun >> 8) | 0x40;
      this.u8[hdr + 3] = o.lun & 0xff;
    }
    // used_event far behind: no interrupts while polling.
    Atomics.store(this.u16, this.usedEventAt, (this.lastUsed - 1) & 0xffff);
  }

  slotHva(slot: number): number {
    return this.o.bufferHva + slot * polledSlotSize(this.o.bytes);
  }

  private slotGpa(slot: number): number {
    return this.o.bufferGpa + slot * polledSlotSize(this.o.bytes);
  }

  /** The virtio-scsi response of a slot's last request (virtio_scsi_cmd_resp: sense length, residual, status, response, sense). */
  response(slot: number): Uint8Array {
    const at = this.slotHva(slot) + RESP;
    return this.u8.subarray(at, at + VIRTIO_SCSI_CMD_RESP_SIZE);
  }

  /** The data buffer of a slot (for writes to fill and reads to check). */
  data(slot: number): Uint8Array {
    const at = this.slotHva(slot) + DATA;
    return this.u8.subarray(at, at + this.o.bytes);
  }

  private setDesc(i: number, gpa: number, len: number, flags: number, next: number): void {
    const w = (this.q.desc >>> 2) + 4 * i;
    this.u32[w] = gpa >>> 0;
    this.u32[w + 1] = (gpa / 4294967296) >>> 0;
    this.u32[w + 2] = len;
    this.u32[w + 3] = flags | (next << 16);
  }

  /** Lays a slot's three descriptors out for reading (header, response, data-in) or writing (header, data-out, response). */
  private layout(slot: number, read: boolean): void {
    const d = 3 * slot;
    const g = this.slotGpa(slot);
    this.setDesc(d, g + HDR, VIRTIO_SCSI_CMD_REQ_SIZE, VRING_DESC_F_NEXT, d + 1);
    if (read) {
      this.setDesc(d + 1, g + RESP, VIRTIO_SCSI_CMD_RESP_SIZE, VRING_DESC_F_WRITE | VRING_DESC_F_NEXT, d + 2);
      this.setDesc(d + 2, g + DATA, this.o.bytes, VRING_DESC_F_WRITE, 0);
    } else {
      this.setDesc(d + 1, g + DATA, this.o.bytes, VRING_DESC_F_NEXT, d + 2);
      this.setDesc(d + 2, g + RESP, VIRTIO_SCSI_CMD_RESP_SIZE, VRING_DESC_F_WRITE, 0);
    }
    this.layoutRead[slot] = read ? 1 : 0;
  }

  /** Queues a READ(16) or WRITE(16) of the slot's buffer at byte offset `offset` of the LUN. */
  submit(slot: number, read: boolean, offset: number): void {
    if (this.layoutRead[slot] !== (read ? 1 : 0)) this.layout(slot, read);
    const h = this.slotHva(slot) + HDR;
    const dv = this.dv;
    const lba = offset / this.o.blockSize;
    dv.setUint32(h + 8, this.nextTag++, true);
    const cdb = h + 19;
    this.u8[cdb] = read ? 0x88 : 0x8a;
    dv.setUint32(cdb + 2, (lba / 4294967296) >>> 0);
    dv.setUint32(cdb + 6, lba >>> 0);
    dv.setUint32(cdb + 10, this.o.bytes / this.o.blockSize);
    this.u16[this.availRing + (this.availShadow & this.mask)] = 3 * slot;
    this.availShadow = (this.availShadow + 1) & 0xffff;
  }

  /** Publishes what was submitted and kicks the device if it asked for it (event-idx rule). */
  publish(): void {
    const old = this.kicked;
    const now = this.availShadow;
    if (old === now) return;
    Atomics.store(this.u16, this.availIdxAt, now);
    this.kicked = now;
    if (vringNeedEvent(Atomics.load(this.u16, this.availEventAt), now, old)) {
      this.kick.write(1n);
      this.kicks++;
    }
  }

  /**
   * Calls done(slot, ok) for every completed request; ok means VIRTIO_SCSI_S_OK with GOOD status
   * and no residual. Returns how many were reaped.
   */
  reap(done: (slot: number, ok: boolean) => void): number {
    const end = Atomics.load(this.u16, this.usedIdxAt);
    let n = 0;
    let last = this.lastUsed;
    while (last !== end) {
      const id = this.u32[this.usedRing + 2 * (last & this.mask)];
      last = (last + 1) & 0xffff;
      const slot = (id / 3) | 0;
      // status, response (bytes 10, 11) zero and no residual (bytes 4..7): one word and one half.
      const r = (this.slotHva(slot) + RESP) >>> 1;
      done(slot, this.u16[r + 5] === 0 && this.u16[r + 2] === 0 && this.u16[r + 3] === 0);
      n++;
    }
    this.lastUsed = last;
    return n;
  }

  /**
   * Sleeps until the device signals a completion or timeoutMs passes (a worker thread only): arms
   * the interrupt (used_event = next entry), re-checks the ring, waits on the call eventfd.
   */
  wait(timeoutMs: number): void {
    const seq = this.call.seq;
    if (!this.arm()) this.call.waitChange(seq, timeoutMs);
    this.call.tryRead();
    this.disarm();
  }

  /**
   * Asks for an interrupt at the next used entry (used_event, VIRTIO 1.2, 2.7.10) and returns
   * whether one is there already (then do not sleep). For a thread that sleeps on several queues.
   */
  arm(): boolean {
    Atomics.store(this.u16, this.usedEventAt, this.lastUsed);
    return this.ready;
  }

  /** The device has put used entries on the ring that were not reaped yet. */
  get ready(): boolean {
    return Atomics.load(this.u16, this.usedIdxAt) !== this.lastUsed;
  }

  /** Puts used_event far behind again: no interrupts while polling. */
  disarm(): void {
    Atomics.store(this.u16, this.usedEventAt, (this.lastUsed - 1) & 0xffff);
  }

  /** Requests the device has not completed yet are still listed in the avail ring. */
  get outstanding(): number {
    return (this.availShadow - this.lastUsed) & 0xffff;
  }
}
