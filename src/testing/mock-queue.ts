import { SplitRingView, isValidQueueSize, vringAvailSize, vringDescSize, vringUsedSize, VRING_DESC_SIZE } from "../virtio/ring.js";
import type { GuestMemory } from "../guest/guest-memory.js";

/** A raw descriptor as a hostile guest may write it: any 64-bit address, any flags and next. */
export interface RawDesc {
  addr: bigint | number;
  len: number;
  flags: number;
  next?: number;
}

/**
 * A driver for tests that writes whatever it is told: descriptors with any address, length,
 * flags and next link, indirect tables anywhere, avail entries and avail->idx of any value.
 * It checks nothing; that is the device's job. (In the manner of rust-vmm's MockSplitQueue.)
 */
export class MockSplitQueue {
  readonly descAddr: number;
  readonly availAddr: number;
  readonly usedAddr: number;
  readonly ring: SplitRingView;
  private availNext = 0;

  constructor(
    readonly mem: GuestMemory,
    readonly num: number,
  ) {
    if (!isValidQueueSize(num)) throw new RangeError(`queue size ${num}`);
    this.descAddr = mem.alloc(vringDescSize(num) + vringAvailSize(num) + 2 + vringUsedSize(num), 4096);
    this.availAddr = this.descAddr + vringDescSize(num);
    this.usedAddr = this.availAddr + ((vringAvailSize(num) + 3) & ~3); // avail starts 16-aligned
    mem.bytes(this.descAddr, this.usedAddr + vringUsedSize(num) - this.descAddr).fill(0);
    this.ring = new SplitRingView(mem.shm.buffer, num, mem.hva(this.descAddr), mem.hva(this.availAddr), mem.hva(this.usedAddr));
  }

  /** Writes descriptor i of the ring's table. */
  setDesc(i: number, d: RawDesc): void {
    const a = BigInt.asUintN(64, BigInt(d.addr));
    this.ring.setDesc(i, Number(a & 0xffffffffn), Number(a >> 32n), d.len >>> 0, d.flags, d.next ?? 0);
  }

  /** Writes descs as an indirect table at guest address gpa (which must be guest RAM). */
  writeTable(gpa: number, descs: readonly RawDesc[]): void {
    const dv = this.mem.shm.view;
    const hva = this.mem.hva(gpa, descs.length * VRING_DESC_SIZE);
    descs.forEach((d, k) => {
      const p = hva + k * VRING_DESC_SIZE;
      dv.setBigUint64(p, BigInt.asUintN(64, BigInt(d.addr)), true);
      dv.setUint32(p + 8, d.len >>> 0, true);
      dv.setUint16(p + 12, d.flags, true);
      dv.setUint16(p + 14, d.next ?? 0, true);
    });
  }

  /** Writes heads into the avail ring after the last published entry and publishes them. */
  publish(...heads: number[]): void {
    for (const h of heads) {
      this.ring.setAvailRing(this.availNext, h);
      this.availNext = (this.availNext + 1) & 0xffff;
    }
    this.ring.availIdx = this.availNext;
  }

  /** Sets avail->idx to any value (the next publish continues from it). */
  setAvailIdx(idx: number): void {
    this.availNext = idx & 0xffff;
    this.ring.availIdx = idx;
  }

  /** Used element at used-ring position slot. */
  used(slot: number): { id: number; len: number } {
    return { id: this.ring.usedId(slot), len: this.ring.usedLen(slot) };
  }

  get usedIdx(): number {
    return this.ring.usedIdx;
  }
}
