import type { DataplaneExports } from "../wasm/dataplane.js";
import type { SharedMemory } from "../memory/shared-memory.js";
import type { Backstore } from "../backstore/backstore.js";
import type { WorkerServedBackstore } from "../backstore/service.js";
import { BackstoreQueue } from "../backstore/queue.js";
import { VIRTIO_SCSI_MAX_SECTORS } from "../virtio/virtio-scsi.js";
import {
  LUN_F_READ_ONLY,
  LUN_F_UNMAP,
  LUN_F_DSENSE,
  LUN_F_WCE,
  LUN_F_LBPRZ,
  LUN_F_STOPPED,
  LUN_F_PREVENT,
  UA_POWER_ON,
  UA_CAPACITY_CHANGED,
  BS_RAM,
  BS_NULL,
  BS_QUEUED,
  IDENT_VENDOR,
  IDENT_PRODUCT,
  IDENT_REVISION,
  IDENT_SERIAL,
  IDENT_NAA,
  IDENT_TARGET,
  LUN_F_RESERVED,
  LUN_F_COMPARE_WRITE,
  PR_GENERATION,
  PR_HOLDER,
  PR_KEYS,
  PR_REGISTERED,
  PR_SPC2,
  PR_TYPE,
  SCSI_MAX_NEXUS,
} from "../wasm/abi.generated.js";
export { UA_POWER_ON, UA_NEXUS_LOSS, UA_LUN_RESET, UA_CAPACITY_CHANGED, UA_LUNS_CHANGED } from "../wasm/abi.generated.js";

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

/** The flag bits the guest's commands change (START STOP UNIT, PREVENT ALLOW, mode pages): a LUN's state, not its configuration. */
const LUN_STATE_FLAGS = LUN_F_STOPPED | LUN_F_PREVENT | LUN_F_DSENSE | LUN_F_WCE;

/** What the guest has changed in a LUN: the state a saved device carries over (device-state.ts). */
export interface LunState {
  /** LUN_F_* bits among STOPPED, PREVENT, DSENSE and WCE that are set. */
  flags: number;
  /** UA_* bits pending for the device's I_T nexus. */
  unitAttentions: number;
}

/** A LUN's reservations (SPC-4 5.13), by nexus number (ScsiTarget.nexusOf). */
export interface LunReservations {
  /** PRgeneration. */
  generation: number;
  /** Each registered nexus with its reservation key and initiator SAS address. */
  registrations: { nexus: number; key: bigint; port: bigint }[];
  /** The persistent reservation: its holder's nexus (any registrant's for the all-registrants types) and type. */
  reservation: { holder: number; type: number } | undefined;
  /** The nexus holding an SPC-2 RESERVE, if one does. */
  spc2: number | undefined;
}

/**
 * One logical unit: its struct in the device heap (the data plane reads it) and its backstore.
 * Created and changed only by the target configuration (src/target/tpg.ts).
 */
export class Lun {
  readonly ptr: number;
  readonly blockSize: number;
  private store: Backstore;
  /** A queued backstore: its submission queue and the service taking requests from it. */
  private readonly queue: BackstoreQueue | undefined;

  constructor(
    private readonly shm: SharedMemory,
    private readonly dp: DataplaneExports,
    readonly id: number,
    backstore: Backstore,
    readonly options: LunOptions,
    identity: { naa: Uint8Array; port: number; targetName: string },
  ) {
    const minBlock = backstore.kind === "queued" ? (backstore.blockSize ?? 1) : 1;
    const bs = options.blockSize ?? (minBlock > 512 ? 4096 : 512);
    if (bs % minBlock !== 0) throw new RangeError(`backstore ${backstore.name} needs I/O in multiples of ${minBlock} bytes; block size ${bs} is not`);
    if (bs !== 512 && bs !== 4096) throw new RangeError(`block size ${bs}: 512 or 4096`);
    if (backstore.size % bs !== 0 || backstore.size < bs) throw new RangeError(`backstore size ${backstore.size} is not a positive multiple of ${bs}`);
    this.blockSize = bs;
    this.store = backstore;
    const size = dp.scsi_lun_size();
    this.ptr = shm.device.alloc(size, 16, `lun ${id}`);
    shm.bytes.fill(0, this.ptr, this.ptr + size);
    let flags = LUN_F_WCE;
    if (options.writeCache === false) flags &= ~LUN_F_WCE;
    if (options.readOnly || backstore.readOnly) flags |= LUN_F_READ_ONLY;
    if (options.descriptorSense) flags |= LUN_F_DSENSE;
    if (backstore.kind === "ram") flags |= LUN_F_UNMAP | LUN_F_LBPRZ;
    // COMPARE AND WRITE: in place (caw.ts holds the LUN), or on a queue the service can hold.
    if (backstore.kind !== "queued" || backstore.features.synchronous) flags |= LUN_F_COMPARE_WRITE;
    let kind = BS_NULL;
    let at = 0;
    let maxUnmapDescs = 128;
    if (backstore.kind === "ram") {
      kind = BS_RAM;
      at = backstore.ram;
    } else if (backstore.kind === "queued") {
      kind = BS_QUEUED;
      if (backstore.features.discard) flags |= LUN_F_UNMAP | (backstore.features.discardZeroes ? LUN_F_LBPRZ : 0);
      maxUnmapDescs = Math.min(maxUnmapDescs, dp.scsi_remote_max_ranges());
      this.queue = new BackstoreQueue(shm, dp, backstore, `lun ${id}`);
      at = this.queue.sq;
    }
    dp.scsi_lun_init(this.ptr, id, kind, Math.log2(bs), backstore.size / bs, at, flags, identity.port);
    // Block limits VPD: never more per command than the HBA's max_sectors lets a guest send.
    const backstoreMax = backstore.kind === "queued" && backstore.maxTransfer ? Math.floor(backstore.maxTransfer / bs) : Infinity;
    const maxXfer = Math.min(options.maxTransferBlocks ?? (32 << 20) / bs, Math.floor((VIRTIO_SCSI_MAX_SECTORS * 512) / bs), backstoreMax);
    dp.scsi_lun_set_limits(this.ptr, maxXfer, (64 << 20) / bs, maxUnmapDescs, (64 << 20) / bs);
    this.setIdent(IDENT_VENDOR, pad(options.vendor ?? "LIO-ORG", 8));
    this.setIdent(IDENT_PRODUCT, pad(options.product ?? `vhost-wasm-${backstore.name}`, 16));
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

  get readOnly(): boolean {
    return (this.flags & LUN_F_READ_ONLY) !== 0;
  }

  /** Unit attention bits pending for I_T nexus n. */
  unitAttentionsOf(n: number): number {
    return this.dp.scsi_lun_ua(this.ptr, n) >>> 0;
  }

  /** When the vhost workers are to serve the backstore: its submission queue and how to open it. */
  get workerServed(): WorkerServedBackstore | undefined {
    return this.queue?.workerServed;
  }

  /** CPU time the backstore's dedicated I/O threads used so far, ms (undefined: none, or not known). */
  async ioThreadCpu(): Promise<{ user: number; system: number } | undefined> {
    return this.queue?.ioThreadCpu();
  }

  /** Requests handed to a backstore served elsewhere and not answered yet. */
  get inflight(): number {
    return this.dp.scsi_lun_inflight(this.ptr) >>> 0;
  }

  /** The guest-made state as I_T nexus n sees it (flags its commands change, its pending unit attentions). */
  stateOf(n: number): LunState {
    return { flags: this.flags & LUN_STATE_FLAGS, unitAttentions: this.unitAttentionsOf(n) };
  }

  /** Sets the guest-made state exactly as saved, for nexus n (no POWER ON unit attention the guest never had). */
  restoreState(s: LunState, n: number): void {
    this.dp.scsi_lun_update_flags(this.ptr, s.flags & LUN_STATE_FLAGS, LUN_STATE_FLAGS & ~s.flags);
    this.dp.scsi_lun_set_ua(this.ptr, n, s.unitAttentions);
  }

  /** The reservation state (read while no worker changes it: the devices stopped, or a snapshot of a moment). */
  get reservations(): LunReservations {
    const at = this.dp.scsi_lun_pr(this.ptr);
    const v = this.shm.view;
    const mask = v.getUint32(at + PR_REGISTERED, true);
    const registrations: LunReservations["registrations"] = [];
    for (let n = 0; n < SCSI_MAX_NEXUS; n++) {
      if (((mask >>> n) & 1) === 0) continue;
      const key = v.getBigUint64(at + PR_KEYS + n * 8, true);
      registrations.push({ nexus: n, key, port: v.getBigUint64(at + PR_KEYS + (SCSI_MAX_NEXUS + n) * 8, true) });
    }
    const holder = v.getUint32(at + PR_HOLDER, true);
    const spc2 = v.getUint32(at + PR_SPC2, true);
    return {
      generation: v.getUint32(at + PR_GENERATION, true),
      registrations,
      reservation: holder ? { holder: holder - 1, type: v.getUint32(at + PR_TYPE, true) } : undefined,
      spc2: spc2 ? spc2 - 1 : undefined,
    };
  }

  /** Sets the reservation state as saved (the LUN's workers stopped). */
  restoreReservations(r: LunReservations): void {
    const at = this.dp.scsi_lun_pr(this.ptr);
    const v = this.shm.view;
    let mask = 0;
    for (let n = 0; n < SCSI_MAX_NEXUS * 2; n++) v.setBigUint64(at + PR_KEYS + n * 8, 0n, true);
    for (const g of r.registrations) {
      mask |= 1 << g.nexus;
      v.setBigUint64(at + PR_KEYS + g.nexus * 8, g.key, true);
      v.setBigUint64(at + PR_KEYS + (SCSI_MAX_NEXUS + g.nexus) * 8, g.port, true);
    }
    v.setUint32(at + PR_REGISTERED, mask >>> 0, true);
    v.setUint32(at + PR_GENERATION, r.generation >>> 0, true);
    v.setUint32(at + PR_HOLDER, r.reservation ? r.reservation.holder + 1 : 0, true);
    v.setUint32(at + PR_TYPE, r.reservation?.type ?? 0, true);
    v.setUint32(at + PR_SPC2, r.spc2 === undefined ? 0 : r.spc2 + 1, true);
    const reserved = r.reservation !== undefined || r.spc2 !== undefined;
    this.dp.scsi_lun_update_flags(this.ptr, reserved ? LUN_F_RESERVED : 0, reserved ? 0 : LUN_F_RESERVED);
  }

  /** Nexus numbers with a persistent registration here. */
  get registeredNexuses(): number[] {
    return this.reservations.registrations.map((g) => g.nexus);
  }

  /** I_T nexus n is gone (its device unbound): an SPC-2 reservation it held ends. */
  nexusLost(n: number): void {
    this.dp.scsi_lun_nexus_lost(this.ptr, n);
  }

  /** Raises a unit attention condition for every I_T nexus. */
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
  async resize(bytes: number, paused: (fn: () => void | Promise<void>) => Promise<void>): Promise<void> {
    if (bytes % this.blockSize !== 0 || bytes < this.blockSize) throw new RangeError(`size ${bytes} is not a positive multiple of ${this.blockSize}`);
    const store = this.store;
    if (store.kind === "queued" && !store.resize) throw new Error(`backstore ${store.name} cannot change its size`);
    await paused(() => {
      if (store.kind === "queued") {
        store.resize!(bytes);
        this.dp.scsi_lun_set_backing(this.ptr, bytes / this.blockSize, 0);
        return;
      }
      this.store = store.resize(bytes);
      this.dp.scsi_lun_set_backing(this.ptr, bytes / this.blockSize, this.store.kind === "ram" ? this.store.ram : 0);
      store.close();
    });
    this.raiseUnitAttention(UA_CAPACITY_CHANGED);
  }

  /** Stops serving and closes the backstore, frees the structs (the LUN must be unpublished and idle). */
  async dispose(): Promise<void> {
    if (this.queue) await this.queue.dispose();
    else await this.store.close();
    this.shm.device.release(this.ptr);
  }
}
