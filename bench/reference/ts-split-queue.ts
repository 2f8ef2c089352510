// A plain-TypeScript device side of the split ring: the same loop as the data plane's
// vq_drain() with the null device (same checks: avail index jump, head and next range, loop
// guard, translation through the memory table, readable-before-writable, indirect tables),
// run over the same shared memory. It exists only as the reference the ring benchmark
// compares the WASM path against.
import { VRING_DESC_F_INDIRECT, VRING_DESC_F_NEXT, VRING_DESC_F_WRITE, VRING_USED_F_NO_NOTIFY, vringNeedEvent } from "../../src/virtio/ring.js";
import type { VhostMemoryRegion } from "../../src/vhost/mem-table.js";

const MAX_IOV = 1024;
const HI = 2 ** 32;

export class TsSplitQueue {
  private readonly u8: Uint8Array;
  private readonly u16: Uint16Array;
  private readonly u32: Uint32Array;
  private readonly regions: { gpa: number; size: number; hva: number }[];
  private readonly iovBase = new Uint32Array(MAX_IOV);
  private readonly iovLen = new Uint32Array(MAX_IOV);
  private iovCount = 0;
  private outCount = 0;
  private lastAvail = 0;
  private availIdx = 0;
  private lastUsed = 0;
  private usedFlags = 0;
  private signalledUsed = 0;
  private signalledValid = false;
  error = "";

  constructor(
    buffer: SharedArrayBuffer,
    regions: readonly VhostMemoryRegion[],
    private readonly num: number,
    private readonly desc: number,
    private readonly avail: number,
    private readonly used: number,
    private readonly eventIdx = false,
  ) {
    this.u8 = new Uint8Array(buffer);
    this.u16 = new Uint16Array(buffer);
    this.u32 = new Uint32Array(buffer);
    this.regions = regions.map((r) => ({ gpa: Number(r.guest_phys_addr), size: Number(r.memory_size), hva: Number(r.userspace_addr) }));
  }

  private translate(gpa: number, len: number): boolean {
    while (len > 0) {
      const r = this.regions.find((x) => gpa >= x.gpa && gpa - x.gpa < x.size);
      if (!r || this.iovCount >= MAX_IOV) return false;
      const chunk = Math.min(len, r.size - (gpa - r.gpa));
      this.iovBase[this.iovCount] = r.hva + (gpa - r.gpa);
      this.iovLen[this.iovCount++] = chunk;
      gpa += chunk;
      len -= chunk;
    }
    return true;
  }

  /** Walks the chain at head into the iovec arrays; false on a malformed chain. */
  private walk(head: number): boolean {
    this.iovCount = 0;
    this.outCount = 0;
    let sawWritable = false;
    let i = head;
    let found = 0;
    let table = -1; // hva of the indirect table being walked
    let count = this.num;
    for (;;) {
      if (i >= count || ++found > count) return false;
      const w = ((table < 0 ? this.desc : table) + 16 * i) >>> 2;
      const addr = this.u32[w] + this.u32[w + 1] * HI;
      const len = this.u32[w + 2];
      const flags = this.u32[w + 3] & 0xffff;
      const next = this.u32[w + 3] >>> 16;
      if (flags & VRING_DESC_F_INDIRECT) {
        if (table >= 0 || flags & VRING_DESC_F_NEXT || len === 0 || len % 16) return false;
        const r = this.regions.find((x) => addr >= x.gpa && addr + len <= x.gpa + x.size);
        if (!r) return false;
        table = r.hva + (addr - r.gpa);
        count = len / 16;
        i = 0;
        found = 0;
        continue;
      }
      if (flags & VRING_DESC_F_WRITE) sawWritable = true;
      else if (sawWritable) return false;
      if (!this.translate(addr, len)) return false;
      if (!sawWritable) this.outCount = this.iovCount;
      if (!(flags & VRING_DESC_F_NEXT)) return true;
      i = next;
    }
  }

  private fillReply(replyLen: number): number {
    let left = replyLen;
    for (let k = this.outCount; k < this.iovCount && left > 0; k++) {
      const n = Math.min(left, this.iovLen[k]);
      this.u8.fill(0, this.iovBase[k], this.iovBase[k] + n);
      left -= n;
    }
    return replyLen - left;
  }

  /** Drains up to weight null requests; returns true when the driver should be interrupted. */
  drainNull(replyLen: number, weight: number): boolean {
    const availIdxAt = (this.avail + 2) >>> 1;
    const ring16 = availIdxAt + 1;
    const usedIdxAt = (this.used + 2) >>> 1;
    const usedRing32 = (this.used + 4) >>> 2;
    this.usedFlags |= VRING_USED_F_NO_NOTIFY;
    if (!this.eventIdx) Atomics.store(this.u16, this.used >>> 1, this.usedFlags);
    let served = 0;
    let added = false;
    while (served < weight) {
      if (this.lastAvail === this.availIdx) {
        const idx = Atomics.load(this.u16, availIdxAt);
        if (((idx - this.lastAvail) & 0xffff) > this.num) {
          this.error = "InvalidAvailRingIndex";
          break;
        }
        this.availIdx = idx;
        if (idx === this.lastAvail) break;
      }
      const head = this.u16[ring16 + (this.lastAvail & (this.num - 1))];
      if (head >= this.num || !this.walk(head)) {
        this.error = "InvalidChain";
        break;
      }
      this.lastAvail = (this.lastAvail + 1) & 0xffff;
      const len = this.fillReply(replyLen);
      const slot = usedRing32 + 2 * (this.lastUsed & (this.num - 1));
      this.u32[slot] = head;
      this.u32[slot + 1] = len;
      this.lastUsed = (this.lastUsed + 1) & 0xffff;
      added = true;
      served++;
    }
    this.usedFlags &= ~VRING_USED_F_NO_NOTIFY;
    if (!this.eventIdx) Atomics.store(this.u16, this.used >>> 1, this.usedFlags);
    else Atomics.store(this.u16, usedRing32 * 2 + 4 * this.num, this.availIdx);
    if (!added) return false;
    Atomics.store(this.u16, usedIdxAt, this.lastUsed);
    if (!this.eventIdx) return (Atomics.load(this.u16, this.avail >>> 1) & 1) === 0;
    const old = this.signalledUsed;
    const valid = this.signalledValid;
    this.signalledUsed = this.lastUsed;
    this.signalledValid = true;
    return !valid || vringNeedEvent(this.u16[ring16 + this.num], this.lastUsed, old);
  }
}
