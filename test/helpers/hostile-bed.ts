import { SharedMemory } from "../../src/memory/shared-memory.js";
import { GuestMemory } from "../../src/guest/guest-memory.js";
import { VhostMemTable, vhostRegionsOf } from "../../src/vhost/mem-table.js";
import { DeviceQueue } from "../../src/virtio/device-queue.js";
import { SplitRingView, VRING_DESC_F_NEXT, VRING_DESC_F_WRITE, vringAvailSize, vringDescSize, vringUsedSize } from "../../src/virtio/ring.js";
import { createDataplane, dataplaneTestModule, type DataplaneTestExports } from "../../src/wasm/dataplane.js";
import { TargetRegistry } from "../../src/target/registry.js";
import { processPollTable } from "../../src/sys/eventfd.js";
import { BS_OP_READ, BS_OP_WRITE, BS_OP_WRITE_ZEROES, BS_OP_DISCARD, RingPort } from "../../src/backstore/ring.js";
import { RamBackstore } from "../../src/backstore/backstore.js";
import { openBackstoreSync } from "../../src/backstore/index.js";
import type { LunOptions } from "../../src/target/lun.js";
import { BLK_F_DISCARD, BLK_F_WRITEBACK, BLK_F_WRITE_ZEROES, BS_QUEUED, BS_RAM } from "../../src/wasm/abi.generated.js";

const CHUNK = 4096;

/** Calls fn(start, end) for each CHUNK-sized piece where a and b differ (a native compare per chunk). */
function eachChangedChunk(a: Uint8Array, b: Uint8Array, fn: (start: number, end: number) => void): void {
  const n = a.length;
  const A = Buffer.from(a.buffer, a.byteOffset, n);
  const B = Buffer.from(b.buffer, b.byteOffset, n);
  // Whole runs of equal memory are skipped in one compare; only runs that differ are split.
  const walk = (s: number, e: number): void => {
    if (A.compare(B, s, e, s, e) === 0) return;
    if (e - s <= CHUNK) return fn(s, e);
    const mid = s + Math.ceil((e - s) / 2 / CHUNK) * CHUNK;
    walk(s, mid);
    walk(mid, e);
  };
  walk(0, n);
}

/** A guest-physical range the fuzzer may point at, with the shared-memory offset behind it. */
export interface Span {
  gpa: number;
  hva: number;
  size: number;
}

export const RAM_A = 0;
export const RAM_B = 0x1_0000_0000;
export const REGION = 1 << 20;
/** The RAM virtio-blk device's bytes, and both devices' DISCARD / WRITE_ZEROES limit in sectors. */
export const BLK_RAM_BYTES = 128 << 10;
export const BLK_MAX_DWZ_SECTORS = 64;
const CANARY = 0xa5;

/** One queue the fuzzer drives: its ring in region A and its device-side struct. */
export interface FuzzQueue {
  num: number;
  ring: SplitRingView;
  descGpa: number;
  dq: DeviceQueue;
  /** Shared-memory ranges of the used ring (device-writable by design), and its guest-physical address. */
  used: [number, number];
  usedGpa: number;
}

/**
 * A device under attack: one shared memory with two guest RAM regions separated by unmapped
 * guest-zone gaps full of canaries, a SCSI device (with and without T10-PI) with a target, a
 * request, a control and an event queue, and a snapshot of the whole memory to return to
 * before every case. It knows which device bytes may legitimately change.
 */
/** A descriptor as a case writes it. */
export type Desc = { addr: bigint; len: number; flags: number; next: number };

/**
 * A request's buffers (guest addresses) as a chain of descriptors, each buffer split into
 * pieces of at most `frag` bytes (0: whole); `next` links are the caller's to set.
 */
export function chainOf(bufs: { gpa: number; len: number; write: boolean }[], frag: number): Desc[] {
  const parts = frag
    ? bufs.flatMap((b) =>
        Array.from({ length: Math.max(1, Math.ceil(b.len / frag)) }, (_, k) => ({
          ...b,
          gpa: b.gpa + k * frag,
          len: Math.min(frag, b.len - k * frag),
        })),
      )
    : bufs;
  return parts.map((p, k) => ({
    addr: BigInt(p.gpa),
    len: p.len,
    flags: (p.write ? VRING_DESC_F_WRITE : 0) | (k + 1 < parts.length ? VRING_DESC_F_NEXT : 0),
    next: 0,
  }));
}

export class HostileBed {
  readonly shm: SharedMemory;
  readonly dp: DataplaneTestExports;
  readonly mem: GuestMemory;
  readonly regions: Span[];
  readonly gaps: Span[];
  readonly req: FuzzQueue;
  readonly ctl: FuzzQueue;
  readonly evt: FuzzQueue;
  /** A virtio-blk request queue, and two devices to drain it through: blocks in RAM, and queued (LUN 9's submission queue). */
  readonly blk: FuzzQueue;
  readonly blkRam: number;
  readonly blkQueued: number;
  readonly blkRamBlocks: number;
  /** The queues' dirty log (VHOST_F_LOG_ALL): a bitmap over guest-physical memory up to the end of RAM B. */
  readonly log: number;
  readonly logBytes = Math.ceil((RAM_B + REGION) / 4096 / 8);
  readonly dev: number;
  readonly devPi: number;
  readonly table: number;
  /** LUN 9: a backstore served elsewhere, here by the bed itself (serveQueued()) from `queuedBlocks`. */
  readonly queuedSq: number;
  readonly queuedBlocks = new Uint8Array(256 << 10);
  private readonly port: RingPort;
  readonly luns: { id: number; ptr: number; ram: number; size: number; blockSize: number; blocks: number }[];
  /** Device-zone ranges the data plane may write (its own state, RAM disks); everything else there is fixed. */
  readonly deviceWritable: [number, number][] = [];
  /** The whole memory after construction, and as it was when a case was laid out (mark()). */
  private readonly snapshot: Uint8Array;
  private readonly marked: Uint8Array;

  constructor() {
    this.shm = SharedMemory.create({ deviceBytes: 3 << 20, guestBytes: 2 * REGION + (256 << 10) });
    const { shm } = this;
    const guard = () => {
      const at = shm.device.alloc(4096, 16);
      shm.bytes.fill(CANARY, at, at + 4096);
    };
    guard();
    const inst = createDataplane<DataplaneTestExports>(shm, dataplaneTestModule());
    this.dp = inst.dp;
    this.deviceWritable.push([inst.area, inst.area + this.dp.instance_area_size()]);
    guard();
    // Guest RAM: A, an unmapped gap, B, another gap; gaps hold canaries.
    this.mem = new GuestMemory(shm);
    const a = this.mem.addRegion(RAM_A, REGION);
    const gap1 = shm.guest.alloc(64 << 10, 4096);
    const b = this.mem.addRegion(RAM_B, REGION);
    const gap2 = shm.guest.alloc(64 << 10, 4096);
    for (const g of [gap1, gap2]) shm.bytes.fill(CANARY, g, g + (64 << 10));
    this.regions = [a, b].map((r) => ({ gpa: r.gpa, hva: r.hva, size: r.size }));
    this.gaps = [gap1, gap2].map((hva) => ({ gpa: -1, hva, size: 64 << 10 }));
    const mt = new VhostMemTable(shm, this.dp);
    mt.set(vhostRegionsOf(this.mem.regions));
    guard();
    // Target: TPG 1 with a RAM LUN, a read-only RAM LUN, a 4K-block null LUN, a flat-addressed LUN.
    const tpg = new TargetRegistry(shm, this.dp).create().addTpg(1);
    const specs = [
      [0, { backstore: "ram", size: 256 << 10 }],
      [2, { backstore: "ram", size: 64 << 10, readOnly: true }],
      [5, { backstore: "null", size: 1 << 30, blockSize: 4096 }],
      [300, { backstore: "ram", size: 64 << 10, blockSize: 4096 }],
    ] as const;
    this.luns = specs.map(([id, cfg]) => {
      const l = tpg.attachLun(id, openBackstoreSync(cfg, shm), cfg as LunOptions);
      const ram = l.backstore instanceof RamBackstore ? l.backstore.ram : 0;
      if (ram) this.deviceWritable.push([ram, ram + l.backstore.size]);
      // Its state words (flags, unit attentions, in-flight count) change; identity is checked by the probe.
      this.deviceWritable.push([l.ptr, l.ptr + this.dp.scsi_lun_size()]);
      return { id, ptr: l.ptr, ram, size: l.backstore.size, blockSize: l.blockSize, blocks: l.blocks };
    });
    guard();
    const device = (pi: boolean) => {
      const d = shm.device.alloc(this.dp.scsi_device_size(), 16);
      shm.bytes.fill(0, d, d + this.dp.scsi_device_size());
      this.dp.scsi_dev_set_features(d, pi ? 1 : 0);
      this.dp.scsi_dev_set_tpg(d, 1, tpg.ptr);
      this.deviceWritable.push([d, d + this.dp.scsi_device_size()]);
      return d;
    };
    this.dev = device(false);
    this.devPi = device(true);
    guard();
    // The request queue's contexts, completion queue and bounce buffer; LUN 9's submission queue.
    const contexts = this.dp.io_area_size(16);
    this.table = shm.device.alloc(contexts, 16);
    this.dp.io_area_init(this.table, 16);
    this.deviceWritable.push([this.table, this.table + contexts]);
    for (const d of [this.dev, this.devPi]) this.dp.scsi_dev_set_ctx_table(d, 0, this.table);
    this.queuedSq = shm.device.alloc(this.dp.io_sq_size(64), 16);
    this.dp.io_sq_init(this.queuedSq, 64);
    this.deviceWritable.push([this.queuedSq, this.queuedSq + this.dp.io_sq_size(64)]);
    const q = shm.device.alloc(this.dp.scsi_lun_size(), 16);
    shm.bytes.fill(0, q, q + this.dp.scsi_lun_size());
    const LUN_F_UNMAP_LBPRZ = 2 | 64;
    this.dp.scsi_lun_init(q, 9, 2, 9, this.queuedBlocks.length / 512, this.queuedSq, LUN_F_UNMAP_LBPRZ, 2);
    this.dp.scsi_lun_set_limits(q, 65535, 1 << 17, this.dp.scsi_remote_max_ranges(), 1 << 17);
    this.dp.scsi_tpg_set_lun(tpg.ptr, 9, q);
    this.deviceWritable.push([q, q + this.dp.scsi_lun_size()]);
    this.luns.push({ id: 9, ptr: q, ram: 0, size: this.queuedBlocks.length, blockSize: 512, blocks: this.queuedBlocks.length / 512 });
    this.port = new RingPort(shm.buffer, processPollTable());
    guard();
    const queue = (num: number, at: number): FuzzQueue => {
      const desc = RAM_A + at;
      const avail = desc + vringDescSize(num);
      const used = avail + ((vringAvailSize(num) + 3) & ~3);
      const hva = (g: number) => this.mem.hva(g);
      const ring = new SplitRingView(shm.buffer, num, hva(desc), hva(avail), hva(used));
      const dq = new DeviceQueue(shm, this.dp);
      dq.setup({ num, desc: hva(desc), avail: hva(avail), used: hva(used) }, 1, mt.address);
      this.deviceWritable.push([dq.ptr, dq.ptr + this.dp.vq_size()]);
      return { num, ring, descGpa: desc, dq, used: [hva(used), hva(used) + vringUsedSize(num)], usedGpa: used };
    };
    this.req = queue(16, 0);
    this.dp.vq_set_private(this.req.dq.ptr, this.table);
    this.ctl = queue(8, 0x1000);
    this.evt = queue(8, 0x2000);
    this.blk = queue(16, 0x3000);
    const blkContexts = shm.device.alloc(contexts, 16);
    this.dp.io_area_init(blkContexts, 16);
    this.deviceWritable.push([blkContexts, blkContexts + contexts]);
    this.dp.vq_set_private(this.blk.dq.ptr, blkContexts);
    guard();
    // virtio-blk devices: 128 KiB in RAM (512-byte blocks), and 256 KiB behind the submission queue (4096-byte blocks).
    this.blkRamBlocks = shm.device.alloc(BLK_RAM_BYTES, 4096);
    shm.bytes.fill(0, this.blkRamBlocks, this.blkRamBlocks + BLK_RAM_BYTES);
    this.deviceWritable.push([this.blkRamBlocks, this.blkRamBlocks + BLK_RAM_BYTES]);
    const blkDevice = (backing: number, at: number, bytes: number, shift: number) => {
      const d = shm.device.alloc(this.dp.blk_device_size(), 16);
      shm.bytes.fill(0, d, d + this.dp.blk_device_size());
      this.dp.blk_dev_init(d, backing, at, bytes / 512, shift, BLK_F_WRITEBACK | BLK_F_DISCARD | BLK_F_WRITE_ZEROES, BLK_MAX_DWZ_SECTORS, BLK_MAX_DWZ_SECTORS);
      shm.bytes.set(new TextEncoder().encode("hostile"), this.dp.blk_dev_id(d));
      this.deviceWritable.push([d, d + this.dp.blk_device_size()]);
      return d;
    };
    this.log = shm.device.alloc(this.logBytes, 8);
    shm.bytes.fill(0, this.log, this.log + this.logBytes);
    this.deviceWritable.push([this.log, this.log + this.logBytes]);
    // Every queue logs its writes and its used ring (VHOST_VRING_F_LOG at the ring's guest address).
    for (const q of [this.req, this.ctl, this.evt, this.blk]) this.dp.vq_set_log(q.dq.ptr, this.log, this.logBytes, q.usedGpa, 0);
    this.blkRam = blkDevice(BS_RAM, this.blkRamBlocks, BLK_RAM_BYTES, 9);
    this.blkQueued = blkDevice(BS_QUEUED, this.queuedSq, this.queuedBlocks.length, 12);
    guard();
    this.snapshot = shm.bytes.slice();
    this.marked = shm.bytes.slice();
  }

  /**
   * Back to the state after construction (rings empty, LUNs with their power-on unit attention).
   * Only the chunks a case changed are copied back, so a case costs what it touched plus one
   * native compare of the memory, not two full copies.
   */
  reset(): void {
    eachChangedChunk(this.shm.bytes, this.snapshot, (s, e) => this.shm.bytes.set(this.snapshot.subarray(s, e), s));
    this.queuedBlocks.fill(0);
  }

  /** Remembers the memory as it is now (the case laid out), for forbiddenChanges(). */
  mark(): void {
    eachChangedChunk(this.shm.bytes, this.marked, (s, e) => this.marked.set(this.shm.bytes.subarray(s, e), s));
  }

  /**
   * Serves LUN 9's submission queue as a backstore would: every operation taken is done on
   * `queuedBlocks` straight through the guest-buffer views the context lists, and completed in
   * reverse order of taking (out of order); an operation at an offset that is 3 modulo 7 blocks
   * fails with EIO. Returns how many were served.
   */
  serveQueued(): number {
    const taken: number[] = [];
    for (let ctx = this.port.take(this.queuedSq); ctx !== 0; ctx = this.port.take(this.queuedSq)) taken.push(ctx);
    for (const ctx of taken.reverse()) {
      const r = this.port.request(ctx);
      let result = r.length;
      if (r.aborted) result = -125;
      else if ((r.offset / 512) % 7 === 3) result = -5;
      else if (r.offset + r.length > this.queuedBlocks.length) throw new Error(`operation past the end: ${r.offset}+${r.length}`);
      else if (r.op === BS_OP_READ || r.op === BS_OP_WRITE) {
        let at = r.offset;
        for (const b of r.buffers) {
          if (r.op === BS_OP_READ) b.set(this.queuedBlocks.subarray(at, at + b.length));
          else this.queuedBlocks.set(b, at);
          at += b.length;
        }
        if (at - r.offset !== r.length) throw new Error(`extents cover ${at - r.offset} of ${r.length} bytes`);
      } else if (r.op === BS_OP_WRITE_ZEROES || r.op === BS_OP_DISCARD) {
        this.queuedBlocks.fill(0, r.offset, r.offset + r.length);
      }
      this.port.complete(ctx, result);
    }
    return taken.length;
  }

  /** GPA -> shared-memory offset of a byte of guest RAM, or -1. */
  hvaOf(gpa: number): number {
    for (const r of this.regions) if (gpa >= r.gpa && gpa < r.gpa + r.size) return r.hva + (gpa - r.gpa);
    return -1;
  }

  /**
   * Byte offsets that changed between `before` and now and may not have: in the device zone
   * outside deviceWritable, in the guest zone outside mapped RAM, or in guest RAM outside
   * `guestWritable` (shared-memory ranges) and the used rings. Returns the first few.
   */
  forbiddenChanges(guestWritable: [number, number][]): number[] {
    const now = this.shm.bytes;
    const before = this.marked;
    const allowed = [...this.deviceWritable, ...guestWritable, this.req.used, this.ctl.used, this.evt.used, this.blk.used];
    const ok = (off: number) => {
      for (const [s, e] of allowed) if (off >= s && off < e) return true;
      return false;
    };
    const bad: number[] = [];
    eachChangedChunk(now, before, (s, e) => {
      for (let off = s; off < e && bad.length < 8; off++) if (before[off] !== now[off] && !ok(off)) bad.push(off);
    });
    return bad;
  }

  /**
   * Guest-physical addresses of bytes in guest RAM that changed since mark() while the dirty log
   * has their page unmarked (the log's oracle: every byte the device wrote is covered). The first few.
   */
  unlogged(): number[] {
    const bits = this.shm.bytes.subarray(this.log, this.log + this.logBytes);
    const bad: number[] = [];
    for (const r of this.regions) {
      const now = this.shm.bytes.subarray(r.hva, r.hva + r.size);
      const before = this.marked.subarray(r.hva, r.hva + r.size);
      eachChangedChunk(now, before, (s, e) => {
        for (let off = s; off < e && bad.length < 8; off++) {
          if (now[off] === before[off]) continue;
          const page = Math.floor((r.gpa + off) / 4096);
          if (!(bits[page >> 3] & (1 << (page & 7)))) bad.push(r.gpa + off);
        }
      });
    }
    return bad;
  }

  /** What a shared-memory offset is, for failure messages. */
  describe(off: number): string {
    for (const r of this.regions) if (off >= r.hva && off < r.hva + r.size) return `guest RAM gpa 0x${(r.gpa + off - r.hva).toString(16)}`;
    for (const g of this.gaps) if (off >= g.hva && off < g.hva + g.size) return `unmapped guest-zone gap +${off - g.hva}`;
    return off < this.shm.deviceEnd ? `device memory offset ${off}` : `guest zone offset ${off}`;
  }
}
