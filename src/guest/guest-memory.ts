import { RangeAllocator } from "../memory/range-allocator.js";
import type { SharedMemory } from "../memory/shared-memory.js";

/** One guest RAM region: guest-physical [gpa, gpa + size) backed by shared-memory [hva, hva + size). */
export interface GuestRegion {
  readonly gpa: number;
  readonly size: number;
  readonly hva: number;
}

/**
 * Called when guest RAM regions are added or removed (the device model's memory listener); a
 * returned promise tells when the listener is done with the change (its memory table updated).
 */
export type GuestMemoryListener = (regions: readonly GuestRegion[]) => undefined | Promise<unknown>;

/** Guest RAM regions are placed on 4 KiB boundaries (VHOST_PAGE_SIZE). */
const REGION_ALIGN = 4096;

/**
 * The guest's physical address space: RAM regions backed by the guest zone of the shared
 * memory, with an allocator per region for the guest driver's rings and buffers. This is the
 * guest's own view; the device sees the same regions only through the vhost memory table.
 */
export class GuestMemory {
  private readonly list: GuestRegion[] = [];
  private readonly allocators = new Map<GuestRegion, RangeAllocator>();
  /** Regions whose backing belongs to someone else (an emulator's RAM): never allocated from nor freed. */
  private readonly external = new Set<GuestRegion>();
  private readonly listeners: GuestMemoryListener[] = [];
  /** While tracking: the 4 KiB guest pages the guest wrote since the last takeWritten(). */
  private written: Set<number> | undefined;
  private pending: Promise<unknown>[] = [];

  constructor(readonly shm: SharedMemory) {}

  /**
   * The same guest RAM seen from another thread: regions another GuestMemory created, taken
   * over (this thread then allocates the guest's buffers in them; the other must not).
   */
  static adopt(shm: SharedMemory, regions: readonly GuestRegion[]): GuestMemory {
    const m = new GuestMemory(shm);
    for (const r of regions) {
      const region = { ...r };
      m.list.push(region);
      m.allocators.set(region, new RangeAllocator(r.gpa, r.gpa + r.size));
    }
    m.list.sort((a, b) => a.gpa - b.gpa);
    return m;
  }

  /**
   * The guest's RAM in another shared memory (a migration's destination, a restored snapshot):
   * the same regions at the same guest-physical addresses, backed there, with the guest's
   * allocations as they are here; `copy` brings the bytes as well (a migration copies them
   * page by page itself). RAM someone else owns (addExternalRegion) moves with its owner: refused.
   */
  cloneTo(shm: SharedMemory, copy = true): GuestMemory {
    if (this.external.size) throw new Error("guest RAM owned by an emulator moves with the emulator, not with cloneTo()");
    const m = new GuestMemory(shm);
    for (const r of this.list) {
      const region = m.addRegion(r.gpa, r.size);
      if (copy) shm.bytes.set(this.shm.bytes.subarray(r.hva, r.hva + r.size), region.hva);
    }
    m.adoptAllocations(this);
    return m;
  }

  /**
   * Takes over the guest's allocations from `from`, whose regions this memory mirrors (cloneTo):
   * the driver's bookkeeping of its RAM moves with it at a migration's switchover.
   */
  adoptAllocations(from: GuestMemory): void {
    for (const r of this.list) {
      const twin = from.list.find((x) => x.gpa === r.gpa && x.size === r.size);
      const a = twin && from.allocators.get(twin);
      if (!a) throw new RangeError(`guest region ${r.gpa}+${r.size} has no twin to take allocations from`);
      this.allocators.set(r, a.clone());
    }
  }

  /**
   * Starts recording the pages the guest writes (what KVM's dirty log does for a vCPU): every
   * view handed out by bytes() and every write() counts as written (over-marking is safe), and
   * code that writes through a view it keeps says so with markWritten().
   */
  trackWrites(): void {
    this.written ??= new Set();
  }

  /** Stops recording. */
  stopTracking(): void {
    this.written = undefined;
  }

  /** Records [gpa, gpa + len) as written by the guest (while tracking). */
  markWritten(gpa: number, len: number): void {
    const w = this.written;
    if (!w || len <= 0) return;
    for (let p = Math.floor(gpa / 4096), last = Math.floor((gpa + len - 1) / 4096); p <= last; p++) w.add(p);
  }

  /** The guest page numbers (gpa / 4096) written since tracking began or the last call, each once; cleared. */
  takeWritten(): number[] {
    const w = this.written;
    if (!w) return [];
    const pages = [...w];
    w.clear();
    return pages;
  }

  /** The current regions, in ascending gpa order. */
  get regions(): readonly GuestRegion[] {
    return this.list;
  }

  private checkNew(gpa: number, size: number): void {
    if (!Number.isSafeInteger(gpa) || gpa < 0 || gpa % REGION_ALIGN || !(size > 0) || size % REGION_ALIGN) {
      throw new RangeError(`guest region ${gpa}+${size} must be 4 KiB aligned and non-empty`);
    }
    if (this.list.some((r) => gpa < r.gpa + r.size && r.gpa < gpa + size)) {
      throw new RangeError(`guest region ${gpa}+${size} overlaps an existing region`);
    }
  }

  private insert(region: GuestRegion): GuestRegion {
    this.list.push(region);
    this.list.sort((a, b) => a.gpa - b.gpa);
    this.changed();
    return region;
  }

  /** Plugs in size bytes of zeroed RAM at guest-physical gpa. */
  addRegion(gpa: number, size: number): GuestRegion {
    this.checkNew(gpa, size);
    const hva = this.shm.guest.alloc(size, REGION_ALIGN);
    this.shm.bytes.fill(0, hva, hva + size);
    const region: GuestRegion = { gpa, size, hva };
    this.allocators.set(region, new RangeAllocator(gpa, gpa + size));
    return this.insert(region);
  }

  /**
   * Maps RAM someone else owns (an emulator's guest RAM, in the guest zone of the shared memory)
   * at guest-physical gpa: [hva, hva + size) is the guest's as it is; nothing is allocated in it.
   */
  addExternalRegion(gpa: number, hva: number, size: number): GuestRegion {
    this.checkNew(gpa, size);
    if (hva % REGION_ALIGN || !this.shm.isGuestRange(hva, size)) throw new RangeError(`backing ${hva}+${size} is not a 4 KiB aligned range of the guest zone`);
    const region: GuestRegion = { gpa, size, hva };
    this.external.add(region);
    return this.insert(region);
  }

  /**
   * Unplugs the region that starts at gpa. Its backing returns to the shared memory only once
   * every listener is done (the device no longer maps it and its I/O into it has completed).
   */
  async removeRegion(gpa: number): Promise<void> {
    const i = this.list.findIndex((r) => r.gpa === gpa);
    if (i < 0) throw new RangeError(`no guest region at ${gpa}`);
    const [region] = this.list.splice(i, 1);
    this.allocators.delete(region);
    this.changed();
    await this.settled();
    if (!this.external.delete(region)) this.shm.guest.release(region.hva);
  }

  /** Resolves when the listeners have finished with every change so far. */
  async settled(): Promise<void> {
    while (this.pending.length) await Promise.allSettled(this.pending.splice(0));
  }

  /** Registers a listener called with the new region list after every change. */
  listen(fn: GuestMemoryListener): () => void {
    this.listeners.push(fn);
    return () => this.listeners.splice(this.listeners.indexOf(fn), 1);
  }

  private changed(): void {
    for (const fn of this.listeners) {
      const p = fn(this.list);
      if (p) this.pending.push(p);
    }
  }

  private regionOf(gpa: number): GuestRegion | undefined {
    return this.list.find((r) => gpa >= r.gpa && gpa < r.gpa + r.size);
  }

  /** Shared-memory offset of [gpa, gpa + len), which must lie in one region. */
  hva(gpa: number, len = 1): number {
    const r = this.regionOf(gpa);
    if (!r || gpa + len > r.gpa + r.size) throw new RangeError(`guest range ${gpa}+${len} is not in one RAM region`);
    return r.hva + (gpa - r.gpa);
  }

  /** A view of guest memory [gpa, gpa + len) (one region); the guest may write it (counted as written while tracking). */
  bytes(gpa: number, len: number): Uint8Array {
    const at = this.hva(gpa, len);
    this.markWritten(gpa, len);
    return this.shm.bytes.subarray(at, at + len);
  }

  /**
   * Calls fn(hva, offset, len) for each piece of guest range [gpa, gpa + len) in region order;
   * the range may span adjacent regions but not a hole (RangeError before anything is visited).
   */
  private pieces(gpa: number, len: number, fn: (hva: number, offset: number, len: number) => void): void {
    const parts: [number, number, number][] = [];
    for (let done = 0; done < len; ) {
      const r = this.regionOf(gpa + done);
      if (!r) throw new RangeError(`guest range ${gpa}+${len} is not RAM at ${gpa + done}`);
      const n = Math.min(len - done, r.gpa + r.size - (gpa + done));
      parts.push([r.hva + (gpa + done - r.gpa), done, n]);
      done += n;
    }
    for (const [hva, off, n] of parts) fn(hva, off, n);
  }

  /** A copy of guest memory [gpa, gpa + len), which may span adjacent regions (a driver's scatter read). */
  read(gpa: number, len: number): Uint8Array {
    const out = new Uint8Array(len);
    this.pieces(gpa, len, (hva, off, n) => out.set(this.shm.bytes.subarray(hva, hva + n), off));
    return out;
  }

  /** Copies data into guest memory at gpa, across adjacent regions if need be. */
  write(gpa: number, data: Uint8Array): void {
    this.markWritten(gpa, data.length);
    this.pieces(gpa, data.length, (hva, off, n) => this.shm.bytes.set(data.subarray(off, off + n), hva));
  }

  /** Allocates size bytes of guest RAM (in the given region, else the first with room). */
  alloc(size: number, align = 16, inRegion?: GuestRegion): number {
    const candidates = inRegion ? [inRegion] : this.list;
    for (const r of candidates) {
      const a = this.allocators.get(r);
      if (!a) continue;
      try {
        return a.alloc(size, align);
      } catch (e) {
        if (!(e instanceof RangeError)) throw e;
      }
    }
    throw new RangeError(`guest RAM exhausted: no ${size} bytes free`);
  }

  /** Frees an allocation made by alloc(). */
  free(gpa: number): void {
    const r = this.regionOf(gpa);
    const a = r && this.allocators.get(r);
    if (!a) throw new RangeError(`guest address ${gpa} is not in a RAM region`);
    a.release(gpa);
  }
}
