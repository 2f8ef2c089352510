import type { DataplaneExports } from "../wasm/dataplane.js";
import type { SharedMemory } from "../memory/shared-memory.js";
import { BackstoreKind, type Backstore } from "./backstore.js";
import { VIRTIO_SCSI_MAX_SECTORS } from "../scsi/virtio-scsi.js";

/** LUN flags (assembly/scsi/lun.ts LUN_F_*). */
export const LUN_F_READ_ONLY = 1;
export const LUN_F_UNMAP = 2;
export const LUN_F_STOPPED = 4;
export const LUN_F_PREVENT = 8;
export const LUN_F_DSENSE = 16;
export const LUN_F_WCE = 32;
export const LUN_F_LBPRZ = 64;

/** Unit attention conditions (assembly/scsi/lun.ts UA_*). */
export const UA_POWER_ON = 1;
export const UA_NEXUS_LOSS = 2;
export const UA_LUN_RESET = 4;
export const UA_CAPACITY_CHANGED = 8;
export const UA_LUNS_CHANGED = 16;

/** Identification fields (assembly/scsi/lun.ts IDENT_*). */
const IDENT_VENDOR = 0;
const IDENT_PRODUCT = 1;
const IDENT_REVISION = 2;
const IDENT_SERIAL = 3;
const IDENT_NAA = 4;
const IDENT_TARGET = 5;

/** How a LUN presents itself; everything but the backstore has a default. */
export interface LunOptions {
  /** Logical block size: 512 (default) or 4096. */
  blockSize?: 512 | 4096;
  readOnly?: boolean;
  /** INQUIRY vendor (8), product (16), revision (4); VPD 80h serial. */
  vendor?: string;
  product?: string;
  revision?: string;
  serial?: string;
  /** Report a volatile write cache (caching mode page WCE). Default true. */
  writeCache?: boolean;
  /** Descriptor-format sense by default (control mode page D_SENSE). */
  descriptorSense?: boolean;
  /** Block limits: maximum blocks per transfer, per UNMAP descriptor, per WRITE SAME. */
  maxTransferBlocks?: number;
}

const pad = (s: string, n: number) => s.slice(0, n).padEnd(n, " ");

/**
 * One logical unit: its struct in the device heap (the data plane reads it) and its backstore.
 * Created and changed only by the target configuration (src/target/tpg.ts).
 */
export class Lun {
  readonly ptr: number;
  readonly blockSize: number;
  private store: Backstore;

  constructor(
    private readonly shm: SharedMemory,
    private readonly dp: DataplaneExports,
    readonly id: number,
    backstore: Backstore,
    readonly options: LunOptions,
    identity: { naa: Uint8Array; port: number; targetName: string },
  ) {
    const bs = options.blockSize ?? 512;
    if (bs !== 512 && bs !== 4096) throw new RangeError(`block size ${bs}: 512 or 4096`);
    if (backstore.size % bs !== 0 || backstore.size < bs) throw new RangeError(`backstore size ${backstore.size} is not a positive multiple of ${bs}`);
    this.blockSize = bs;
    this.store = backstore;
    const size = dp.scsi_lun_size();
    this.ptr = shm.device.alloc(size, 16, `lun ${id}`);
    shm.bytes.fill(0, this.ptr, this.ptr + size);
    let flags = LUN_F_WCE;
    if (options.writeCache === false) flags &= ~LUN_F_WCE;
    if (options.readOnly) flags |= LUN_F_READ_ONLY;
    if (options.descriptorSense) flags |= LUN_F_DSENSE;
    if (backstore.kind === "ram") flags |= LUN_F_UNMAP | LUN_F_LBPRZ;
    dp.scsi_lun_init(this.ptr, id, BackstoreKind[backstore.kind], Math.log2(bs), backstore.size / bs, backstore.ram, flags, identity.port);
    // Block limits VPD: never more per command than the HBA's max_sectors lets a guest send.
    const maxXfer = Math.min(options.maxTransferBlocks ?? (32 << 20) / bs, Math.floor((VIRTIO_SCSI_MAX_SECTORS * 512) / bs));
    dp.scsi_lun_set_limits(this.ptr, maxXfer, (64 << 20) / bs, 128, (64 << 20) / bs);
    this.setIdent(IDENT_VENDOR, pad(options.vendor ?? "LIO-ORG", 8));
    this.setIdent(IDENT_PRODUCT, pad(options.product ?? `vhost-wasm-${backstore.kind}`, 16));
    this.setIdent(IDENT_REVISION, pad(options.revision ?? "4.0", 4));
    this.setIdent(IDENT_SERIAL, options.serial ?? Array.from(identity.naa.subarray(8), (b) => b.toString(16).padStart(2, "0")).join(""));
    this.setIdentBytes(IDENT_NAA, identity.naa);
    this.setIdent(IDENT_TARGET, identity.targetName);
    dp.scsi_lun_raise_ua(this.ptr, UA_POWER_ON);
  }

  private setIdentBytes(field: number, bytes: Uint8Array): void {
    const at = this.dp.scsi_lun_ident(this.ptr, field);
    const len = this.dp.scsi_lun_ident_len(field);
    this.shm.bytes.fill(0, at, at + len);
    this.shm.bytes.set(bytes.subarray(0, len), at);
  }

  private setIdent(field: number, text: string): void {
    this.setIdentBytes(field, new TextEncoder().encode(text));
  }

  get backstore(): Backstore {
    return this.store;
  }

  /** Capacity in logical blocks. */
  get blocks(): number {
    return this.store.size / this.blockSize;
  }

  get flags(): number {
    return this.dp.scsi_lun_flags(this.ptr) >>> 0;
  }

  /** Pending unit attention bits. */
  get unitAttentions(): number {
    return this.dp.scsi_lun_ua(this.ptr) >>> 0;
  }

  /** Requests held by an asynchronous backstore. */
  get inflight(): number {
    return this.dp.scsi_lun_inflight(this.ptr) >>> 0;
  }

  raiseUnitAttention(bits: number): void {
    this.dp.scsi_lun_raise_ua(this.ptr, bits);
  }

  setReadOnly(ro: boolean): void {
    this.dp.scsi_lun_update_flags(this.ptr, ro ? LUN_F_READ_ONLY : 0, ro ? 0 : LUN_F_READ_ONLY);
  }

  /**
   * Changes the capacity (SBC-4 4.10: CAPACITY DATA HAS CHANGED unit attention). `paused` runs
   * its callback while no worker serves the device, so that no request sees half the change
   * and a RAM LUN's blocks can move to a new allocation.
   */
  async resize(bytes: number, paused: (fn: () => void) => Promise<void>): Promise<void> {
    if (bytes % this.blockSize !== 0 || bytes < this.blockSize) throw new RangeError(`size ${bytes} is not a positive multiple of ${this.blockSize}`);
    await paused(() => {
      const old = this.store;
      this.store = old.resize(bytes);
      this.dp.scsi_lun_set_backing(this.ptr, bytes / this.blockSize, this.store.ram);
      if (this.store.ram !== old.ram) old.dispose();
    });
    this.raiseUnitAttention(UA_CAPACITY_CHANGED);
  }

  /** Frees the struct and the backstore (the LUN must be unpublished and idle). */
  dispose(): void {
    this.store.dispose();
    this.shm.device.release(this.ptr);
  }
}
