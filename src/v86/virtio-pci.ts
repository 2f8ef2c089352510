// A modern virtio PCI function (VIRTIO 1.2, 4.1) on v86's PCI bus in front of a VirtioTransport
// (the vhost-scsi device model): the vendor capabilities point into one I/O BAR holding the
// common configuration, the ISR, the notification area and the device configuration; the
// interrupt is INTx. v86's own VirtIO class is not used (it never lets DRIVER_OK through).
//
// Port I/O is synchronous while the device model's setStatus() is not: the transport keeps its
// own status register, and after a reset the status reads as before until the device model
// has stopped. A driver may reset and set the device up again back to back, as SeaBIOS does, so
// status changes and enabled queues reach the device model in the order the driver wrote them.
import type { V86Cpu } from "./emulator.js";
import { VIRTIO_CONFIG_S_DRIVER_OK, VIRTIO_CONFIG_S_FEATURES_OK, VIRTIO_CONFIG_S_NEEDS_RESET, type VirtioTransport } from "../virtio/transport.js";
import { VRING_DESC_F_INDIRECT, VRING_DESC_F_NEXT, VRING_DESC_F_WRITE } from "../virtio/ring.js";

/** PCI vendor, device (0x1040 + virtio device id) and class of a modern virtio device. */
const PCI_VENDOR_VIRTIO = 0x1af4;
const PCI_DEVICE_MODERN_BASE = 0x1040;
const PCI_SUBSYSTEM_MODERN = 0x1100;

/** virtio_pci_cap cfg_type values (VIRTIO 1.2, 4.1.4). */
const VIRTIO_PCI_CAP_COMMON_CFG = 1;
const VIRTIO_PCI_CAP_NOTIFY_CFG = 2;
const VIRTIO_PCI_CAP_ISR_CFG = 3;
const VIRTIO_PCI_CAP_DEVICE_CFG = 4;
const PCI_CAP_ID_VNDR = 0x09;

/** The BAR's layout. */
const BAR_SIZE = 256;
const COMMON = 0x00;
const COMMON_SIZE = 0x38;
const ISR = 0x38;
const NOTIFY = 0x40;
const NOTIFY_MULTIPLIER = 2;
const DEVICE_CFG = 0x80;
const DEVICE_CFG_SIZE = BAR_SIZE - DEVICE_CFG;
/** Queues a notification area of this size can name. */
const MAX_QUEUES = (DEVICE_CFG - NOTIFY) / NOTIFY_MULTIPLIER;

/** Common configuration registers (struct virtio_pci_common_cfg). */
const CC = {
  deviceFeatureSelect: 0x00,
  deviceFeature: 0x04,
  driverFeatureSelect: 0x08,
  driverFeature: 0x0c,
  msixConfig: 0x10,
  numQueues: 0x12,
  deviceStatus: 0x14,
  configGeneration: 0x15,
  queueSelect: 0x16,
  queueSize: 0x18,
  queueMsixVector: 0x1a,
  queueEnable: 0x1c,
  queueNotifyOff: 0x1e,
  queueDesc: 0x20,
  queueDriver: 0x28,
  queueDevice: 0x30,
} as const;
const VIRTIO_MSI_NO_VECTOR = 0xffff;

/** One queue's registers in the common configuration (and the used index already shown to v86's JIT). */
export interface QueueRegs {
  size: number;
  enable: number;
  desc: number;
  driver: number;
  device: number;
  /** The used ring position already made visible to v86's JIT. */
  seen: number;
}

/** The transport's registers in a snapshot (v86 keeps the PCI config space and the BAR's place itself). */
export interface V86VirtioPciState {
  status: number;
  isr: number;
  deviceFeatureSelect: number;
  driverFeatureSelect: number;
  /** Hex. */
  driverFeatures: string;
  queueSelect: number;
  queues: QueueRegs[];
}

export interface VirtioPciOptions {
  /** PCI bus/device/function number (device << 3). */
  pciId: number;
  /** I/O port where the BAR starts until the firmware moves it. */
  ioBase: number;
  /** PCI subclass and class code (mass storage, SCSI: 0x00, 0x01). */
  classCode: [subclass: number, base: number];
}

/** A modern virtio-pci function on v86's bus serving `dev`. */
export class V86VirtioPci {
  private status = 0;
  private isr = 0;
  private deviceFeatureSelect = 0;
  private driverFeatureSelect = 0;
  private driverFeatures = 0n;
  private queueSelect = 0;
  private queues: QueueRegs[];
  /** The status changes, resets and enabled queues handed to the device model, one after the other. */
  private pending: Promise<void> = Promise.resolve();
  /**
   * The queues of resets the device model has not finished: it still answers the requests in
   * flight on them, into guest memory v86's JIT must hear of.
   */
  private readonly retiring = new Set<QueueRegs[]>();

  constructor(
    private readonly cpu: V86Cpu,
    private readonly dev: VirtioTransport,
    private readonly opts: VirtioPciOptions,
  ) {
    const n = dev.numQueues();
    if (n > MAX_QUEUES) throw new RangeError(`${n} queues: the notification area holds ${MAX_QUEUES}`);
    this.queues = Array.from({ length: n }, (_, i) => this.freshQueue(i));
    for (let off = 0; off < BAR_SIZE; off++) {
      cpu.io.register_read(
        opts.ioBase + off,
        this,
        () => this.read(off, 1),
        () => this.read(off, 2),
        () => this.read(off, 4),
      );
      cpu.io.register_write(
        opts.ioBase + off,
        this,
        (v) => this.write(off, 1, v),
        (v) => this.write(off, 2, v),
        (v) => this.write(off, 4, v),
      );
    }
    cpu.devices.pci.register_device({
      pci_id: opts.pciId,
      pci_space: this.configSpace(),
      pci_bars: [{ size: BAR_SIZE }],
      name: "virtio-scsi (vhost-scsi-wasm)",
    });
    dev.onInterrupt(() => this.interrupt());
  }

  /** Queue index's registers as a reset leaves them: disabled, its size the largest the device offers for it. */
  private freshQueue(index: number): QueueRegs {
    return { size: this.dev.queueMaxSize(index), enable: 0, desc: 0, driver: 0, device: 0, seen: 0 };
  }

  /** PCI configuration space: header, then the four vendor capabilities (VIRTIO 1.2, 4.1.4). */
  private configSpace(): number[] {
    const s = new Uint8Array(256);
    const v = new DataView(s.buffer);
    v.setUint16(0x00, PCI_VENDOR_VIRTIO, true);
    v.setUint16(0x02, PCI_DEVICE_MODERN_BASE + this.dev.deviceId, true);
    v.setUint16(0x06, 0x0010, true); // status: capabilities list
    s[0x08] = 1; // revision 1: a modern device
    s[0x0a] = this.opts.classCode[0];
    s[0x0b] = this.opts.classCode[1];
    v.setUint32(0x10, this.opts.ioBase | 1, true); // BAR0: I/O space
    v.setUint16(0x2c, PCI_VENDOR_VIRTIO, true);
    v.setUint16(0x2e, PCI_SUBSYSTEM_MODERN, true);
    s[0x34] = 0x40;
    s[0x3d] = 1; // INTA#
    const cap = (at: number, next: number, type: number, offset: number, length: number, extra?: number) => {
      s[at] = PCI_CAP_ID_VNDR;
      s[at + 1] = next;
      s[at + 2] = extra === undefined ? 16 : 20;
      s[at + 3] = type;
      s[at + 4] = 0; // BAR0
      v.setUint32(at + 8, offset, true);
      v.setUint32(at + 12, length, true);
      if (extra !== undefined) v.setUint32(at + 16, extra, true);
    };
    cap(0x40, 0x50, VIRTIO_PCI_CAP_COMMON_CFG, COMMON, COMMON_SIZE);
    cap(0x50, 0x64, VIRTIO_PCI_CAP_NOTIFY_CFG, NOTIFY, DEVICE_CFG - NOTIFY, NOTIFY_MULTIPLIER);
    cap(0x64, 0x74, VIRTIO_PCI_CAP_ISR_CFG, ISR, 4);
    cap(0x74, 0x00, VIRTIO_PCI_CAP_DEVICE_CFG, DEVICE_CFG, DEVICE_CFG_SIZE);
    return [...s];
  }

  /** The common configuration as the driver would read it now. */
  private commonImage(): DataView {
    const v = new DataView(new ArrayBuffer(COMMON_SIZE));
    const features = this.dev.deviceFeatures();
    v.setUint32(CC.deviceFeatureSelect, this.deviceFeatureSelect, true);
    v.setUint32(CC.deviceFeature, this.deviceFeatureSelect < 2 ? Number((features >> BigInt(32 * this.deviceFeatureSelect)) & 0xffffffffn) : 0, true);
    v.setUint32(CC.driverFeatureSelect, this.driverFeatureSelect, true);
    v.setUint32(
      CC.driverFeature,
      this.driverFeatureSelect < 2 ? Number((this.driverFeatures >> BigInt(32 * this.driverFeatureSelect)) & 0xffffffffn) : 0,
      true,
    );
    v.setUint16(CC.msixConfig, VIRTIO_MSI_NO_VECTOR, true);
    v.setUint16(CC.numQueues, this.queues.length, true);
    v.setUint8(CC.deviceStatus, this.status);
    v.setUint16(CC.queueSelect, this.queueSelect, true);
    const q = this.queues[this.queueSelect];
    if (q) {
      v.setUint16(CC.queueSize, q.size, true);
      v.setUint16(CC.queueMsixVector, VIRTIO_MSI_NO_VECTOR, true);
      v.setUint16(CC.queueEnable, q.enable, true);
      v.setUint16(CC.queueNotifyOff, this.queueSelect, true);
      v.setUint32(CC.queueDesc, q.desc, true);
      v.setUint32(CC.queueDriver, q.driver, true);
      v.setUint32(CC.queueDevice, q.device, true);
    }
    return v;
  }

  private read(off: number, size: 1 | 2 | 4): number {
    if (off + size <= COMMON_SIZE) return readLe(this.commonImage(), off, size);
    if (off >= ISR && off < NOTIFY) {
      // Reading the ISR acknowledges the interrupt (VIRTIO 1.2, 4.1.4.5).
      const v = off === ISR ? this.isr : 0;
      this.isr = 0;
      this.cpu.devices.pci.lower_irq(this.opts.pciId);
      return v;
    }
    if (off >= DEVICE_CFG) {
      const cfg = this.dev.readConfig(off - DEVICE_CFG, size);
      return readLe(new DataView(cfg.buffer, cfg.byteOffset, cfg.length), 0, size);
    }
    return 0;
  }

  private write(off: number, size: 1 | 2 | 4, value: number): void {
    if (off >= NOTIFY && off < DEVICE_CFG) {
      const index = (off - NOTIFY) / NOTIFY_MULTIPLIER;
      if (Number.isInteger(index) && index < this.queues.length) this.dev.notify(index);
      return;
    }
    if (off >= DEVICE_CFG) {
      const b = new Uint8Array(size);
      writeLe(new DataView(b.buffer), 0, size, value);
      try {
        this.dev.writeConfig(off - DEVICE_CFG, b);
      } catch {
        // The device model marked itself NEEDS_RESET; the driver sees it in the status.
      }
      return;
    }
    const q = this.queues[this.queueSelect];
    const lo = (x: number) => x >>> 0;
    switch (off) {
      case CC.deviceFeatureSelect:
        this.deviceFeatureSelect = lo(value);
        return;
      case CC.driverFeatureSelect:
        this.driverFeatureSelect = lo(value);
        return;
      case CC.driverFeature: {
        if (this.driverFeatureSelect > 1) return;
        const shift = BigInt(32 * this.driverFeatureSelect);
        this.driverFeatures = (this.driverFeatures & ~(0xffffffffn << shift)) | (BigInt(lo(value)) << shift);
        return;
      }
      case CC.deviceStatus:
        return this.writeStatus(value & 0xff);
      case CC.queueSelect:
        this.queueSelect = value & 0xffff;
        return;
      // A size the device does not offer is ignored, as QEMU's virtio_queue_set_num does.
      case CC.queueSize: {
        const size = value & 0xffff;
        if (q && size >= 1 && size <= this.dev.queueMaxSize(this.queueSelect)) q.size = size;
        return;
      }
      case CC.queueEnable:
        if (q && value & 1) {
          q.enable = 1;
          const index = this.queueSelect;
          const config = { num: q.size, desc: q.desc, avail: q.driver, used: q.device };
          // After a reset still under way, which would forget it.
          this.inOrder(() => this.dev.setQueue(index, config));
        }
        return;
      // 32-bit queue addresses: the high halves must be 0 (guest RAM is below 4 GiB).
      case CC.queueDesc:
        if (q) q.desc = lo(value);
        return;
      case CC.queueDriver:
        if (q) q.driver = lo(value);
        return;
      case CC.queueDevice:
        if (q) q.device = lo(value);
        return;
    }
  }

  /** Device status (VIRTIO 1.2, 2.1, 3.1.1): 0 resets; FEATURES_OK only for features offered. */
  private writeStatus(value: number): void {
    const dev = this.dev;
    if (value === 0) {
      const before = this.status;
      const old = this.queues;
      if (before & VIRTIO_CONFIG_S_DRIVER_OK) this.retiring.add(old);
      this.inOrder(async () => {
        try {
          await dev.setStatus(0);
        } finally {
          this.retiring.delete(old);
        }
        // A status written after the reset while it ran is kept.
        if (this.status === before) this.status = 0;
      });
      this.driverFeatures = 0n;
      this.isr = 0;
      this.queues = this.queues.map((_, i) => this.freshQueue(i));
      return;
    }
    if (value & VIRTIO_CONFIG_S_FEATURES_OK && !(this.status & VIRTIO_CONFIG_S_FEATURES_OK) && this.driverFeatures & ~dev.deviceFeatures()) {
      value &= ~VIRTIO_CONFIG_S_FEATURES_OK;
    }
    this.status = value;
    const features = this.driverFeatures;
    this.inOrder(async () => {
      dev.setDriverFeatures(features);
      await dev.setStatus(value);
      // The device model may add NEEDS_RESET (its backend would not start).
      this.status |= dev.status() & ~value & VIRTIO_CONFIG_S_NEEDS_RESET;
    });
  }

  /**
   * Hands a step to the device model after those before it. A step that fails leaves the device
   * NEEDS_RESET (VIRTIO 1.2, 2.1) and the steps after it still run.
   */
  private inOrder(step: () => void | Promise<void>): void {
    this.pending = this.pending.then(step).catch(() => {
      this.status |= VIRTIO_CONFIG_S_NEEDS_RESET;
    });
  }

  /** A queue's used-buffer notification: ISR bit 0 and INTx. */
  private interrupt(): void {
    this.isr |= 1;
    this.cpu.devices.pci.raise_irq(this.opts.pciId);
  }

  /** The registers as the driver left them (the device model's changes settled first). */
  async saveState(): Promise<V86VirtioPciState> {
    await this.settled();
    const { status, isr, deviceFeatureSelect, driverFeatureSelect, queueSelect } = this;
    return {
      status,
      isr,
      deviceFeatureSelect,
      driverFeatureSelect,
      driverFeatures: this.driverFeatures.toString(16),
      queueSelect,
      queues: this.queues.map((q) => ({ ...q })),
    };
  }

  /** Takes saved registers (a restored snapshot; the device model loads its own state). */
  loadState(s: V86VirtioPciState): void {
    if (s.queues.length !== this.queues.length) throw new RangeError(`${s.queues.length} queues saved, this function has ${this.queues.length}`);
    this.status = s.status;
    this.isr = s.isr;
    this.deviceFeatureSelect = s.deviceFeatureSelect;
    this.driverFeatureSelect = s.driverFeatureSelect;
    this.driverFeatures = BigInt(`0x${s.driverFeatures}`);
    this.queueSelect = s.queueSelect;
    this.queues = s.queues.map((q) => ({ ...q }));
  }

  /** Resolves once the status changes written so far have reached the device model. */
  settled(): Promise<void> {
    return this.pending;
  }

  /**
   * Makes what the device wrote into guest memory visible to v86's JIT: for every used entry
   * published since the last call, the chain's device-writable buffers (direct or in an
   * indirect table) and the used ring itself are invalidated (cpu.jit_dirty_cache), so that no
   * code compiled from their old contents runs; also on the queues of a reset under way, whose
   * requests in flight are still answered. Must run on v86's thread after each pass of the
   * vhost workers, before the guest runs again.
   */
  invalidateUsed(): void {
    for (const queues of this.retiring) this.invalidate(queues);
    if (this.status & VIRTIO_CONFIG_S_DRIVER_OK) this.invalidate(this.queues);
  }

  private invalidate(queues: readonly QueueRegs[]): void {
    const mem = this.cpu.mem8;
    const dv = new DataView(mem.buffer, mem.byteOffset, mem.byteLength);
    const inRam = (gpa: number, len: number) => gpa + len <= mem.byteLength;
    const dirty = (gpa: number, len: number) => {
      if (len > 0 && inRam(gpa, 0)) this.cpu.jit_dirty_cache(gpa, Math.min(gpa + len, mem.byteLength));
    };
    queues.forEach((q) => {
      if (!q.enable || !inRam(q.device, 4 + 8 * q.size) || !inRam(q.desc, 16 * q.size)) return;
      const idx = dv.getUint16(q.device + 2, true);
      let seen = q.seen;
      if (seen === idx) return;
      dirty(q.device, 4 + 8 * q.size + 2);
      for (let n = 0; seen !== idx && n < q.size; n++, seen = (seen + 1) & 0xffff) {
        const head = dv.getUint32(q.device + 4 + 8 * (seen % q.size), true);
        walkChain(dv, q.desc, q.size, head, (gpa, len, flags) => flags & VRING_DESC_F_WRITE && dirty(gpa, len));
      }
      q.seen = idx;
    });
  }
}

/** Visits the buffers of the chain at `head` (following one level of indirection), bounded by the table sizes. */
function walkChain(dv: DataView, descGpa: number, num: number, head: number, visit: (gpa: number, len: number, flags: number) => void): void {
  const desc = (table: number, i: number) => ({
    addr: Number(dv.getBigUint64(table + 16 * i, true)),
    len: dv.getUint32(table + 16 * i + 8, true),
    flags: dv.getUint16(table + 16 * i + 12, true),
    next: dv.getUint16(table + 16 * i + 14, true),
  });
  const inRam = (gpa: number, len: number) => gpa >= 0 && gpa + len <= dv.byteLength;
  let i = head;
  for (let n = 0; n < num && i < num; n++) {
    const d = desc(descGpa, i);
    if (d.flags & VRING_DESC_F_INDIRECT) {
      const count = Math.floor(d.len / 16);
      if (!inRam(d.addr, 16 * count)) return;
      for (let k = 0, j = 0; k < count && j < count; k++) {
        const e = desc(d.addr, j);
        visit(e.addr, e.len, e.flags);
        if (!(e.flags & VRING_DESC_F_NEXT)) break;
        j = e.next;
      }
      return;
    }
    visit(d.addr, d.len, d.flags);
    if (!(d.flags & VRING_DESC_F_NEXT)) return;
    i = d.next;
  }
}

function readLe(v: DataView, off: number, size: number): number {
  return size === 1 ? v.getUint8(off) : size === 2 ? v.getUint16(off, true) : v.getUint32(off, true);
}

function writeLe(v: DataView, off: number, size: number, value: number): void {
  if (size === 1) v.setUint8(off, value);
  else if (size === 2) v.setUint16(off, value, true);
  else v.setUint32(off, value >>> 0, true);
}
