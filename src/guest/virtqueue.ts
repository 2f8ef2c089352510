import {
  SplitRingView,
  VRING_AVAIL_F_NO_INTERRUPT,
  VRING_DESC_F_INDIRECT,
  VRING_DESC_F_NEXT,
  VRING_DESC_F_WRITE,
  VRING_DESC_SIZE,
  VRING_USED_F_NO_NOTIFY,
  isValidQueueSize,
  vringAvailSize,
  vringDescSize,
  vringNeedEvent,
  vringUsedSize,
} from "../virtio/ring.js";
import type { GuestMemory, GuestRegion } from "./guest-memory.js";

/** A guest buffer: guest-physical address and length. */
export interface GuestBuffer {
  addr: number;
  len: number;
}

/** A used element handed back by the device. */
export interface UsedElem<T> {
  token: T;
  len: number;
}

export interface GuestVirtqueueOptions {
  /** Queue size, a power of two up to 32768. */
  num: number;
  /** VIRTIO_RING_F_EVENT_IDX was negotiated. */
  eventIdx?: boolean;
  /** Called when a kick must reach the device (the queue notify register / kick eventfd). */
  notify?: () => void;
  /** Place the rings in this region (default: the first with room). */
  region?: GuestRegion;
  /** Entries of each preallocated indirect table (default 64); longer chains get their own. */
  indirectEntries?: number;
}

/** Split ring driver-side ring alignment: the used ring starts on a 4-byte boundary. */
const align4 = (n: number) => (n + 3) & ~3;
const HI = 2 ** 32;

/**
 * The driver side of one split virtqueue (VIRTIO 1.2, 2.7.13), in the manner of Linux's
 * virtio_ring.c: rings in guest RAM, a free list of descriptors, direct and indirect chains,
 * batched publication of avail->idx with kick suppression, used-buffer reaping with
 * interrupt suppression (VRING_AVAIL_F_NO_INTERRUPT / used_event).
 */
export class GuestVirtqueue<T = unknown> {
  readonly num: number;
  readonly eventIdx: boolean;
  readonly descAddr: number;
  readonly availAddr: number;
  readonly usedAddr: number;
  private view: SplitRingView;
  notify: () => void;

  private readonly next: Uint16Array; // shadow of desc.next for the free list
  private readonly chainLen: Uint16Array; // descriptors held by each head
  private readonly tokens: (T | undefined)[];
  private readonly indirectTables: number[]; // per head: gpa of its indirect table, 0 if none yet
  private readonly indirectCap: number[];
  private readonly indirectEntries: number;
  private freeHead = 0;
  private freeCount: number;
  private availShadow = 0; // avail idx including entries not yet published
  private kickedIdx = 0; // avail idx at the last publication
  private lastUsed = 0;
  private availFlagsShadow = 0;

  constructor(
    private memory: GuestMemory,
    opts: GuestVirtqueueOptions,
  ) {
    if (!isValidQueueSize(opts.num)) throw new RangeError(`queue size ${opts.num} is not a power of two in 1..32768`);
    const num = opts.num;
    this.num = num;
    this.eventIdx = opts.eventIdx ?? false;
    this.notify = opts.notify ?? (() => {});
    this.indirectEntries = opts.indirectEntries ?? 64;
    const availOff = vringDescSize(num);
    const usedOff = align4(availOff + vringAvailSize(num));
    const base = memory.alloc(usedOff + vringUsedSize(num), 4096, opts.region);
    memory.bytes(base, usedOff + vringUsedSize(num)).fill(0);
    this.descAddr = base;
    this.availAddr = base + availOff;
    this.usedAddr = base + usedOff;
    this.view = this.ringView();
    this.next = new Uint16Array(num);
    for (let i = 0; i < num; i++) this.next[i] = (i + 1) & 0xffff;
    this.chainLen = new Uint16Array(num);
    this.tokens = new Array(num).fill(undefined);
    this.indirectTables = new Array(num).fill(0);
    this.indirectCap = new Array(num).fill(0);
    this.freeCount = num;
  }

  /** The guest RAM the queue lives in. */
  get mem(): GuestMemory {
    return this.memory;
  }

  /** The rings, seen through the shared memory behind the guest's RAM. */
  get ring(): SplitRingView {
    return this.view;
  }

  private ringView(): SplitRingView {
    const m = this.memory;
    const bytes = this.usedAddr + vringUsedSize(this.num) - this.descAddr;
    const hva = m.hva(this.descAddr, bytes);
    return new SplitRingView(m.shm.buffer, this.num, hva, hva + this.availAddr - this.descAddr, hva + this.usedAddr - this.descAddr);
  }

  /** The guest's RAM moved (GuestMemory.cloneTo): the queue continues there, kicking through `notify`. */
  moveTo(mem: GuestMemory, notify: () => void): void {
    this.memory = mem;
    this.view = this.ringView();
    this.notify = notify;
  }

  /** Free descriptors. */
  get numFree(): number {
    return this.freeCount;
  }

  /** Whether a chain of n buffers (or one indirect descriptor) fits now. */
  canAdd(n: number, indirect = false): boolean {
    return this.freeCount >= (indirect ? 1 : n);
  }

  /**
   * Adds a chain: device-readable `out` buffers then device-writable `inb` buffers, as direct
   * descriptors or as one indirect table. Returns the head index. The device sees it after kick().
   */
  add(out: readonly GuestBuffer[], inb: readonly GuestBuffer[], token: T, indirect = false): number {
    const total = out.length + inb.length;
    if (total === 0) throw new RangeError("a chain needs at least one buffer");
    if (indirect) return this.addIndirect(out, inb, total, token);
    if (total > this.freeCount) throw new RangeError(`no room: ${total} descriptors needed, ${this.freeCount} free`);
    const head = this.freeHead;
    let i = head;
    for (let k = 0; k < total; k++) {
      const b = k < out.length ? out[k] : inb[k - out.length];
      const flags = (k < out.length ? 0 : VRING_DESC_F_WRITE) | (k + 1 < total ? VRING_DESC_F_NEXT : 0);
      const nxt = this.next[i];
      this.view.setDesc(i, b.addr >>> 0, Math.floor(b.addr / HI), b.len, flags, nxt);
      i = nxt;
    }
    this.freeHead = i;
    this.freeCount -= total;
    this.chainLen[head] = total;
    return this.publishEntry(head, token);
  }

  private addIndirect(out: readonly GuestBuffer[], inb: readonly GuestBuffer[], total: number, token: T): number {
    if (this.freeCount < 1) throw new RangeError("no room: no free descriptor");
    const head = this.freeHead;
    if (this.indirectCap[head] < total) {
      if (this.indirectTables[head]) this.mem.free(this.indirectTables[head]);
      const cap = Math.max(total, this.indirectEntries);
      this.indirectTables[head] = this.mem.alloc(cap * VRING_DESC_SIZE, 16);
      this.indirectCap[head] = cap;
    }
    const table = this.indirectTables[head];
    const dv = this.mem.shm.view;
    const hva = this.mem.hva(table, total * VRING_DESC_SIZE);
    for (let k = 0; k < total; k++) {
      const b = k < out.length ? out[k] : inb[k - out.length];
      const p = hva + k * VRING_DESC_SIZE;
      dv.setUint32(p, b.addr >>> 0, true);
      dv.setUint32(p + 4, Math.floor(b.addr / HI), true);
      dv.setUint32(p + 8, b.len, true);
      dv.setUint16(p + 12, (k < out.length ? 0 : VRING_DESC_F_WRITE) | (k + 1 < total ? VRING_DESC_F_NEXT : 0), true);
      dv.setUint16(p + 14, k + 1 < total ? k + 1 : 0, true);
    }
    this.mem.markWritten(table, total * VRING_DESC_SIZE);
    this.view.setDesc(head, table >>> 0, Math.floor(table / HI), total * VRING_DESC_SIZE, VRING_DESC_F_INDIRECT, 0);
    this.freeHead = this.next[head];
    this.freeCount -= 1;
    this.chainLen[head] = 1;
    return this.publishEntry(head, token);
  }

  /** The driver's part of the rings (descriptor table, avail ring with used_event) was written: counted while the guest's writes are tracked. */
  private wroteRings(): void {
    this.memory.markWritten(this.descAddr, this.usedAddr - this.descAddr);
  }

  private publishEntry(head: number, token: T): number {
    this.wroteRings();
    this.tokens[head] = token;
    this.view.setAvailRing(this.availShadow, head);
    this.availShadow = (this.availShadow + 1) & 0xffff;
    return head;
  }

  /**
   * Publishes the chains added since the last call (one avail->idx store) and notifies the device
   * unless it suppressed notifications (VRING_USED_F_NO_NOTIFY, or avail_event with event-idx).
   * Returns whether it notified.
   */
  kick(): boolean {
    const old = this.kickedIdx;
    const now = this.availShadow;
    if (old === now) return false;
    this.view.availIdx = now;
    this.wroteRings();
    this.kickedIdx = now;
    const needed = this.eventIdx ? vringNeedEvent(this.view.availEvent, now, old) : (this.view.usedFlags & VRING_USED_F_NO_NOTIFY) === 0;
    if (needed) this.notify();
    return needed;
  }

  /** Whether the device returned buffers not yet reaped. */
  hasUsed(): boolean {
    return this.lastUsed !== this.view.usedIdx;
  }

  /** Reaps one used buffer, freeing its descriptors; undefined when none is pending. */
  getUsed(): UsedElem<T> | undefined {
    if (this.lastUsed === this.view.usedIdx) return undefined;
    const slot = this.lastUsed;
    const head = this.view.usedId(slot);
    const len = this.view.usedLen(slot);
    if (head >= this.num || this.chainLen[head] === 0) throw new Error(`device returned bad used id ${head}`);
    this.lastUsed = (slot + 1) & 0xffff;
    const token = this.tokens[head] as T;
    this.tokens[head] = undefined;
    this.freeChain(head);
    // VIRTIO 1.2, 2.7.10: with event-idx, ask for an interrupt after the next used entry.
    if (this.eventIdx && (this.availFlagsShadow & VRING_AVAIL_F_NO_INTERRUPT) === 0) this.view.usedEvent = this.lastUsed;
    this.wroteRings();
    return { token, len };
  }

  private freeChain(head: number): void {
    const n = this.chainLen[head];
    this.chainLen[head] = 0;
    let last = head;
    for (let k = 1; k < n; k++) last = this.next[last];
    this.next[last] = this.freeHead;
    this.freeHead = head;
    this.freeCount += n;
  }

  /** Asks the device not to interrupt (VRING_AVAIL_F_NO_INTERRUPT; with event-idx a hint only). */
  disableCb(): void {
    this.availFlagsShadow |= VRING_AVAIL_F_NO_INTERRUPT;
    if (!this.eventIdx) this.view.availFlags = this.availFlagsShadow;
    this.wroteRings();
  }

  /**
   * Asks the device to interrupt again; returns false when used buffers arrived meanwhile (the
   * caller must reap before sleeping), as Linux's virtqueue_enable_cb().
   */
  enableCb(): boolean {
    this.availFlagsShadow &= ~VRING_AVAIL_F_NO_INTERRUPT;
    if (this.eventIdx) this.view.usedEvent = this.lastUsed;
    else this.view.availFlags = this.availFlagsShadow;
    this.wroteRings();
    return !this.hasUsed();
  }

  /** Index of the next avail entry the driver will fill (not yet published ones included). */
  get availIndex(): number {
    return this.availShadow;
  }

  /** Index of the next used entry the driver will reap. */
  get usedIndex(): number {
    return this.lastUsed;
  }

  /** Frees the rings and indirect tables (the queue must not be in use by the device any more). */
  dispose(): void {
    for (const t of this.indirectTables) if (t) this.mem.free(t);
    this.indirectTables.fill(0);
    this.mem.free(this.descAddr);
  }

  /**
   * Starts the ring at index base for both avail and used (a device restored with
   * VHOST_SET_VRING_BASE, or a test of index wrap-around). Only on an idle, empty queue.
   */
  setBase(base: number): void {
    if (this.freeCount !== this.num) throw new Error("setBase on a queue with buffers in flight");
    this.availShadow = this.kickedIdx = this.lastUsed = base & 0xffff;
    this.view.availIdx = base;
    this.view.usedIdx = base;
  }
}
