// Split virtqueue layout (VIRTIO 1.2, 2.7) with the names of include/uapi/linux/virtio_ring.h,
// and a typed view of one ring in the shared memory, used by the guest driver and the mock driver.
export { VRING_DESC_F_NEXT, VRING_DESC_F_WRITE, VRING_DESC_F_INDIRECT, VRING_USED_F_NO_NOTIFY, VRING_AVAIL_F_NO_INTERRUPT } from "../wasm/abi.generated.js";

export const VIRTIO_F_NOTIFY_ON_EMPTY = 24;
export const VIRTIO_F_ANY_LAYOUT = 27;
export const VIRTIO_RING_F_INDIRECT_DESC = 28;
export const VIRTIO_RING_F_EVENT_IDX = 29;
export const VIRTIO_F_VERSION_1 = 32;

/** VIRTIO 1.2, 2.7: alignment of the descriptor table, avail ring and used ring. */
const VRING_DESC_ALIGN_SIZE = 16;
const VRING_AVAIL_ALIGN_SIZE = 2;
const VRING_USED_ALIGN_SIZE = 4;
/** Largest split-ring queue size (VIRTIO 1.2, 2.7). */
export const VIRTQUEUE_MAX_SIZE = 32768;
/** Size of struct virtq_desc. */
export const VRING_DESC_SIZE = 16;

/** Bytes of the descriptor table of a queue of num entries. */
export const vringDescSize = (num: number): number => VRING_DESC_SIZE * num;
/** Bytes of struct virtq_avail with used_event (VIRTIO 1.2, 2.7.6). */
export const vringAvailSize = (num: number): number => 6 + 2 * num;
/** Bytes of struct virtq_used with avail_event (VIRTIO 1.2, 2.7.8). */
export const vringUsedSize = (num: number): number => 6 + 8 * num;

/** vring_need_event(): has new_idx passed event_idx since old? (VIRTIO 1.2, 2.7.10) */
export function vringNeedEvent(eventIdx: number, newIdx: number, old: number): boolean {
  return ((newIdx - eventIdx - 1) & 0xffff) < ((newIdx - old) & 0xffff);
}

/** Whether num is a valid split-ring queue size: a power of two from 1 to 32768. */
export function isValidQueueSize(num: number): boolean {
  return Number.isInteger(num) && num >= 1 && num <= VIRTQUEUE_MAX_SIZE && (num & (num - 1)) === 0;
}

/**
 * Typed access to one split ring at shared-memory offsets desc/avail/used (aligned 16/2/4).
 * Index fields go through Atomics so that their stores publish what was written before them.
 */
export class SplitRingView {
  private readonly u16: Uint16Array;
  private readonly u32: Uint32Array;
  private readonly availIdx16: number;
  private readonly usedIdx16: number;

  constructor(
    buffer: SharedArrayBuffer,
    readonly num: number,
    readonly desc: number,
    readonly avail: number,
    readonly used: number,
  ) {
    if (desc % VRING_DESC_ALIGN_SIZE || avail % VRING_AVAIL_ALIGN_SIZE || used % VRING_USED_ALIGN_SIZE) {
      throw new RangeError("misaligned ring");
    }
    this.u16 = new Uint16Array(buffer);
    this.u32 = new Uint32Array(buffer);
    this.availIdx16 = (avail + 2) >>> 1;
    this.usedIdx16 = (used + 2) >>> 1;
  }

  /** Writes descriptor i: a 64-bit address given as two 32-bit halves. */
  setDesc(i: number, addrLo: number, addrHi: number, len: number, flags: number, next: number): void {
    const w = (this.desc + i * VRING_DESC_SIZE) >>> 2;
    this.u32[w] = addrLo;
    this.u32[w + 1] = addrHi;
    this.u32[w + 2] = len;
    this.u32[w + 3] = (flags & 0xffff) | ((next & 0xffff) << 16);
  }
  /** Descriptor i's address, all 64 bits (a number would round those above 2^53). */
  descAddr(i: number): bigint {
    const w = (this.desc + i * VRING_DESC_SIZE) >>> 2;
    return BigInt(this.u32[w]) | (BigInt(this.u32[w + 1]) << 32n);
  }
  descLen(i: number): number {
    return this.u32[((this.desc + i * VRING_DESC_SIZE) >>> 2) + 2];
  }
  descFlags(i: number): number {
    return this.u16[((this.desc + i * VRING_DESC_SIZE) >>> 1) + 6];
  }
  descNext(i: number): number {
    return this.u16[((this.desc + i * VRING_DESC_SIZE) >>> 1) + 7];
  }

  get availFlags(): number {
    return Atomics.load(this.u16, this.avail >>> 1);
  }
  set availFlags(v: number) {
    Atomics.store(this.u16, this.avail >>> 1, v);
  }
  get availIdx(): number {
    return Atomics.load(this.u16, this.availIdx16);
  }
  /** Publishes avail->idx (release: ring entries written before it are visible first). */
  set availIdx(v: number) {
    Atomics.store(this.u16, this.availIdx16, v & 0xffff);
  }
  setAvailRing(slot: number, head: number): void {
    this.u16[this.availIdx16 + 1 + (slot & (this.num - 1))] = head;
  }
  availRing(slot: number): number {
    return this.u16[this.availIdx16 + 1 + (slot & (this.num - 1))];
  }
  /** used_event, after avail->ring[num]. */
  get usedEvent(): number {
    return Atomics.load(this.u16, this.availIdx16 + 1 + this.num);
  }
  set usedEvent(v: number) {
    Atomics.store(this.u16, this.availIdx16 + 1 + this.num, v & 0xffff);
  }

  get usedFlags(): number {
    return Atomics.load(this.u16, this.used >>> 1);
  }
  get usedIdx(): number {
    return Atomics.load(this.u16, this.usedIdx16);
  }
  set usedIdx(v: number) {
    Atomics.store(this.u16, this.usedIdx16, v & 0xffff);
  }
  usedId(slot: number): number {
    return this.u32[((this.used + 4) >>> 2) + 2 * (slot & (this.num - 1))];
  }
  usedLen(slot: number): number {
    return this.u32[((this.used + 4) >>> 2) + 2 * (slot & (this.num - 1)) + 1];
  }
  /** avail_event, after used->ring[num]. */
  get availEvent(): number {
    return Atomics.load(this.u16, ((this.used + 4) >>> 1) + 4 * this.num);
  }
}
