import { RingTestbed } from "./ring-testbed.js";
import { MockSplitQueue } from "./mock-queue.js";
import { TargetRegistry } from "../target/registry.js";
import type { DeviceQueue } from "../virtio/device-queue.js";
import type { LunConfig } from "../target/tpg.js";
import { openBackstoreSync } from "#backstores";
import { VRING_DESC_F_NEXT, VRING_DESC_F_WRITE } from "../virtio/ring.js";
import { VIRTIO_SCSI_VQ_REQUEST } from "../virtio/virtio-scsi.js";

/**
 * The data plane's SCSI request path without threads, for micro-benchmarks: one request queue
 * over a ring whose chains are written once (header, response, data); each batch only moves
 * avail->idx, so what is measured is the device side: chain walk, header parsing, dispatch,
 * the copy, the response and the used ring, one scsi_req_drain call per batch.
 */
export class ScsiBench {
  readonly tb: RingTestbed;
  readonly ring: MockSplitQueue;
  readonly dq: DeviceQueue;
  readonly dev: number;
  private idx = 0;

  constructor(
    readonly batch: number,
    dataBytes: number,
    cdb: (i: number) => Uint8Array,
    lun: LunConfig,
    opts: { write?: boolean } = {},
  ) {
    this.tb = new RingTestbed({
      regions: [{ gpa: 0, size: Math.max(8 << 20, 4 * batch * (256 + dataBytes) + (1 << 20)) }],
      deviceBytes: (lun.backstore === "ram" ? lun.size : 0) + (4 << 20),
    });
    const { tb } = this;
    const dp = tb.dp;
    const targets = new TargetRegistry(tb.shm, dp);
    const tpg = targets.create().addTpg(1);
    tpg.attachLun(0, openBackstoreSync(lun, tb.shm, lun.readOnly), lun);
    this.dev = tb.shm.device.alloc(dp.scsi_device_size(), 16);
    tb.shm.bytes.fill(0, this.dev, this.dev + dp.scsi_device_size());
    dp.scsi_dev_set_features(this.dev, 0);
    dp.scsi_dev_set_tpg(this.dev, 1, tpg.ptr);
    const q = this.addQueue(batch, dataBytes, cdb, opts);
    this.ring = q.ring;
    this.dq = q.dq;
    this.resp = q.resp;
    this.cdbs = q.cdbs;
    // The first command takes the LUN's power-on unit attention; the measured ones do not meet it.
    this.run();
  }

  private readonly resp: (c: number) => Uint8Array;
  private readonly cdbs: DataView[];

  /** Another request queue over the same device and LUN, with the same kind of chains. */
  addQueue(batch: number, dataBytes: number, cdb: (i: number) => Uint8Array, opts: { write?: boolean } = {}) {
    const { tb } = this;
    const slot = 256 + dataBytes;
    const num = 2 ** Math.ceil(Math.log2(3 * batch * 2));
    const ring = new MockSplitQueue(tb.mem, num);
    const dq = tb.deviceQueue(ring);
    const bufs = tb.mem.alloc(batch * slot, 4096);
    const resp = (c: number) => tb.mem.bytes(bufs + c * slot + 64, 108);
    const heads: number[] = [];
    const cdbs: DataView[] = [];
    for (let c = 0; c < batch; c++) {
      const base = bufs + c * slot;
      const hdr = tb.mem.bytes(base, 51);
      hdr.fill(0);
      hdr.set([1, 1, 0x40, 0]);
      hdr.set(cdb(c), 19);
      cdbs.push(new DataView(hdr.buffer, hdr.byteOffset + 19, 16));
      const d = 3 * c;
      heads.push(d);
      ring.setDesc(d, { addr: base, len: 51, flags: VRING_DESC_F_NEXT, next: d + 1 });
      if (opts.write) {
        ring.setDesc(d + 1, { addr: base + 256, len: dataBytes, flags: VRING_DESC_F_NEXT, next: d + 2 });
        ring.setDesc(d + 2, { addr: base + 64, len: 108, flags: VRING_DESC_F_WRITE });
      } else {
        ring.setDesc(d + 1, { addr: base + 64, len: 108, flags: VRING_DESC_F_WRITE | (dataBytes ? VRING_DESC_F_NEXT : 0), next: d + 2 });
        if (dataBytes) ring.setDesc(d + 2, { addr: base + 256, len: dataBytes, flags: VRING_DESC_F_WRITE });
      }
    }
    for (let s = 0; s < num; s++) ring.ring.setAvailRing(s, heads[s % batch]);
    return { ring, dq, resp, cdbs };
  }

  /** Points chain c's READ(16)/WRITE(16) at another LBA (below 2^32; CDB bytes 2..9, big-endian). */
  setLba16(c: number, lba: number): void {
    this.cdbs[c].setUint32(2, 0);
    this.cdbs[c].setUint32(6, lba);
  }

  /** One batch: publish `batch` requests, one drain. */
  run = (): void => {
    this.ring.ring.availIdx = this.idx = (this.idx + this.batch) & 0xffff;
    this.tb.dp.scsi_req_drain(this.dq.ptr, this.dev, VIRTIO_SCSI_VQ_REQUEST, 1 << 16, false);
  };

  /** Checks that every request of the last batch completed, GOOD and with VIRTIO_SCSI_S_OK. */
  check(): void {
    if (this.ring.usedIdx !== this.idx) throw new Error(`batch not fully served: used ${this.ring.usedIdx} avail ${this.idx}`);
    if (this.dq.error) throw new Error(`queue error ${this.dq.error.name}`);
    for (let c = 0; c < this.batch; c++) {
      const r = this.resp(c);
      if (r[10] !== 0 || r[11] !== 0) throw new Error(`request ${c}: response ${r[11]} status ${r[10]}`);
    }
  }
}
