import type { GuestMemory } from "../guest/guest-memory.js";
import type { VhostProcess } from "../vhost/process.js";
import { VhostScsi, VHOST_SCSI_MAX_IO_VQ, VHOST_SCSI_VQ_IO, type VirtioScsiEventRecord } from "../vhost/vhost-scsi.js";
import type { Lun, LunReservations, LunState } from "../target/lun.js";
import { isNaaName, type ScsiTarget } from "../target/target.js";
import { expectState } from "./device-state.js";
import {
  PR_TYPE_EXCLUSIVE_ACCESS,
  PR_TYPE_EXCLUSIVE_ACCESS_ALL_REG,
  PR_TYPE_EXCLUSIVE_ACCESS_REG_ONLY,
  PR_TYPE_WRITE_EXCLUSIVE,
  PR_TYPE_WRITE_EXCLUSIVE_ALL_REG,
  PR_TYPE_WRITE_EXCLUSIVE_REG_ONLY,
} from "../wasm/abi.generated.js";
import { VHOST_SCSI_ABI_VERSION } from "../vhost/uapi.js";
import {
  VIRTIO_ID_SCSI,
  VIRTIO_SCSI_CDB_SIZE,
  VIRTIO_SCSI_MAX_SECTORS,
  VIRTIO_SCSI_CONFIG_SIZE,
  VIRTIO_SCSI_EVENT_SIZE,
  VIRTIO_SCSI_SENSE_SIZE,
} from "../virtio/virtio-scsi.js";
import { VhostVirtioDevice, type VhostVirtioDeviceOptions } from "./vhost-virtio-device.js";

export type { QueueErrorEvent } from "./vhost-virtio-device.js";

/** QEMU's limits for virtio-scsi: max_channel 0, max_target 255, max_lun 16383. */
const VIRTIO_SCSI_MAX_CHANNEL = 0;
const VIRTIO_SCSI_MAX_TARGET = 255;
const VIRTIO_SCSI_MAX_LUN = 16383;

export interface VhostScsiDeviceOptions extends VhostVirtioDeviceOptions {
  /** The target's WWPN (vhost-scsi-pci,wwpn=...). */
  wwpn: string;
  /** Request queues (num_queues). Default 1. */
  numQueues?: number;
  /** Target number passed to SET_ENDPOINT (boot_tpgt). Default 0. */
  bootTpgt?: number;
  /**
   * The initiator port name (naa. and 16 hex digits) the device is on its target: its I_T nexus
   * for reservations and unit attentions when several devices share a TPG. Default: generated.
   */
  initiator?: string;
}

/** A LUN as a saved vhost-scsi device records it: what must match on load, and the guest-made state. */
export interface SavedLun {
  id: number;
  blockSize: number;
  blocks: number;
  backstore: string;
  readOnly: boolean;
  /** The LUN's state as this device's I_T nexus sees it. */
  state: LunState;
  /** The LUN's reservations, by initiator port name (keys and SAS addresses as hex). */
  reservations: SavedReservations;
}

/** LunReservations with initiator port names for nexus numbers, which another target numbers its own way. */
export interface SavedReservations {
  generation: number;
  registrations: { initiator: string; key: string; port: string }[];
  reservation: { holder: string; type: number } | undefined;
  spc2: string | undefined;
}

/** vhost-scsi's part of a saved device state: the endpoint's target and LUNs, and undelivered events. */
export interface ScsiDeviceState {
  wwpn: string;
  /** The device's initiator port name. */
  initiator: string;
  tpgs: { tag: number; luns: SavedLun[] }[];
  events: { missed: boolean; events: VirtioScsiEventRecord[] };
}

/** A LUN's reservations with nexus numbers named (a registered or holding nexus always has a name). */
function namedReservations(target: ScsiTarget, r: LunReservations): SavedReservations {
  const name = (n: number) => target.initiatorOf(n) ?? `nexus ${n}`;
  return {
    generation: r.generation,
    registrations: r.registrations.map((g) => ({ initiator: name(g.nexus), key: g.key.toString(16), port: g.port.toString(16) })),
    reservation: r.reservation && { holder: name(r.reservation.holder), type: r.reservation.type },
    spc2: r.spc2 === undefined ? undefined : name(r.spc2),
  };
}

/** A reservation key or SAS address as saved: 1 to 16 lowercase hex digits. */
const HEX64 = /^[0-9a-f]{1,16}$/;
/** The persistent reservation types (SPC-4 6.16.4). */
const PR_TYPES: number[] = [
  PR_TYPE_WRITE_EXCLUSIVE,
  PR_TYPE_EXCLUSIVE_ACCESS,
  PR_TYPE_WRITE_EXCLUSIVE_REG_ONLY,
  PR_TYPE_EXCLUSIVE_ACCESS_REG_ONLY,
  PR_TYPE_WRITE_EXCLUSIVE_ALL_REG,
  PR_TYPE_EXCLUSIVE_ACCESS_ALL_REG,
];

/** Throws a DeviceStateError unless `r` is a well-formed SavedReservations (checked before anything changes). */
function checkReservations(where: string, r: unknown): asserts r is SavedReservations {
  const v = r as Partial<SavedReservations> | null;
  expectState(
    typeof v === "object" &&
      v !== null &&
      Number.isInteger(v.generation) &&
      v.generation! >= 0 &&
      v.generation! <= 0xffffffff &&
      Array.isArray(v.registrations),
    `${where}: malformed reservations`,
  );
  const seen = new Set<string>();
  for (const g of v.registrations!) {
    const ok = typeof g === "object" && g !== null && isNaaName(g.initiator) && HEX64.test(g.key) && /[1-9a-f]/.test(g.key) && HEX64.test(g.port);
    expectState(ok && !seen.has(g.initiator), `${where}: a malformed or repeated registration`);
    seen.add(g.initiator);
  }
  const res = v.reservation;
  if (res !== undefined)
    expectState(typeof res === "object" && res !== null && isNaaName(res.holder) && PR_TYPES.includes(res.type), `${where}: a malformed reservation`);
  if (v.spc2 !== undefined) expectState(typeof v.spc2 === "string" && isNaaName(v.spc2), `${where}: a malformed RESERVE holder`);
}

/** The initiator port names a LUN's saved reservations name. */
function reservationNames(r: SavedReservations): string[] {
  return [...r.registrations.map((g) => g.initiator), ...(r.reservation ? [r.reservation.holder] : []), ...(r.spc2 ? [r.spc2] : [])];
}

/** Whether a LUN has no reservation state at all (nothing registered or reserved, generation 0). */
function noReservations(r: LunReservations): boolean {
  return r.generation === 0 && r.registrations.length === 0 && !r.reservation && r.spc2 === undefined;
}

/**
 * The QEMU-side vhost-scsi device (hw/scsi/vhost-scsi.c and vhost-scsi-common.c): the
 * virtio-scsi config space over /dev/vhost-scsi; serving starts with SET_ENDPOINT and ends with
 * CLEAR_ENDPOINT.
 */
export class VhostScsiDevice extends VhostVirtioDevice<VhostScsi> {
  /** Request queues (num_queues in the config space). */
  readonly requestQueues: number;
  protected readonly config = new Uint8Array(VIRTIO_SCSI_CONFIG_SIZE);

  constructor(
    proc: VhostProcess,
    mem: GuestMemory,
    private readonly scsi: VhostScsiDeviceOptions,
  ) {
    const n = scsi.numQueues ?? 1;
    if (!(n >= 1 && n <= VHOST_SCSI_MAX_IO_VQ)) throw new RangeError(`num_queues ${n}: 1..${VHOST_SCSI_MAX_IO_VQ}`);
    const requestQueues = Array.from({ length: n }, (_, i) => VHOST_SCSI_VQ_IO + i);
    super(
      proc,
      mem,
      { name: "vhost-scsi", deviceId: VIRTIO_ID_SCSI, path: "/dev/vhost-scsi", queues: VHOST_SCSI_VQ_IO + n, requestQueues, queueSize: 128 },
      scsi,
      VhostScsi,
    );
    this.requestQueues = n;
    const dv = new DataView(this.config.buffer);
    dv.setUint32(0, n, true);
    dv.setUint32(4, Math.min(this.queueSize - 2, 126), true); // seg_max
    dv.setUint32(8, VIRTIO_SCSI_MAX_SECTORS, true);
    dv.setUint32(12, 128, true); // cmd_per_lun
    dv.setUint32(16, VIRTIO_SCSI_EVENT_SIZE, true); // event_info_size
    dv.setUint32(20, VIRTIO_SCSI_SENSE_SIZE, true);
    dv.setUint32(24, VIRTIO_SCSI_CDB_SIZE, true);
    dv.setUint16(28, VIRTIO_SCSI_MAX_CHANNEL, true);
    dv.setUint16(30, VIRTIO_SCSI_MAX_TARGET, true);
    dv.setUint32(32, VIRTIO_SCSI_MAX_LUN, true);
  }

  /** The ABI version must be one this model speaks; the initiator port is set before any endpoint. */
  protected async realizeDevice(d: VhostScsi): Promise<void> {
    const abi = await d.SCSI_GET_ABI_VERSION();
    if (abi > VHOST_SCSI_ABI_VERSION) throw new Error(`vhost-scsi ABI ${abi} is newer than ${VHOST_SCSI_ABI_VERSION}`);
    if (this.scsi.initiator !== undefined) d.setInitiator(this.scsi.initiator);
  }

  /** The initiator port name the device is on its target. */
  get initiator(): string {
    return this.vhost.initiator;
  }

  private get endpoint() {
    return { abi_version: VHOST_SCSI_ABI_VERSION, vhost_wwpn: this.scsi.wwpn, vhost_tpgt: this.scsi.bootTpgt ?? 0 };
  }

  protected async startServing(d: VhostScsi): Promise<void> {
    await d.SCSI_SET_ENDPOINT(this.endpoint);
  }

  protected async stopServing(d: VhostScsi): Promise<void> {
    await d.SCSI_CLEAR_ENDPOINT(this.endpoint);
  }

  /** The target the device's endpoint names (VHOST_SCSI_SET_ENDPOINT's WWPN). */
  private get target() {
    const t = this.proc.targets.get(this.scsi.wwpn);
    if (!t) throw new Error(`vhost-scsi: no target ${this.scsi.wwpn}`);
    return t;
  }

  /** This device's nexus number on the target (the one its initiator port had, or a new one). */
  private nexusHere(initiator: string): number {
    const n = this.target.nexusOf(initiator);
    if (n === undefined) throw new Error(`vhost-scsi: target ${this.scsi.wwpn} has no I_T nexus left for ${initiator}`);
    return n;
  }

  /** The LUNs as they are now, per TPG of the target, as nexus n sees them. */
  private savedTpgs(n: number): ScsiDeviceState["tpgs"] {
    const target = this.target;
    return target.tpgs.map((tpg) => ({
      tag: tpg.tag,
      luns: tpg.lunIds.map((id) => {
        const l = tpg.lun(id)!;
        return {
          id,
          blockSize: l.blockSize,
          blocks: l.blocks,
          backstore: l.backstore.name,
          readOnly: l.readOnly,
          state: l.stateOf(n),
          reservations: namedReservations(target, l.reservations),
        };
      }),
    }));
  }

  /** The RAM LUNs of the endpoint's target, named "tpg T lun L". */
  ramDisks(): { name: string; bytes: Uint8Array }[] {
    const shm = this.mem.shm;
    return this.target.tpgs.flatMap((tpg) =>
      tpg.lunIds.flatMap((id) => {
        const b = tpg.lun(id)!.backstore;
        return b.kind === "ram" ? [{ name: `tpg ${tpg.tag} lun ${id}`, bytes: shm.bytes.subarray(b.ram, b.ram + b.size) }] : [];
      }),
    );
  }

  /** The endpoint's LUNs with their unit attentions and modes, and the events the guest has not received yet. */
  protected saveType(d: VhostScsi): ScsiDeviceState {
    return { wwpn: this.scsi.wwpn, initiator: d.initiator, tpgs: this.savedTpgs(this.nexusHere(d.initiator)), events: d.pendingEvents() };
  }

  /** The same WWPN (the guest sees it in its LUNs' identifiers), TPGs and LUNs: numbers, geometry, backstore type, read-only. */
  protected checkType(x: unknown): void {
    const s = x as Partial<ScsiDeviceState> | null;
    expectState(
      typeof s === "object" && s !== null && Array.isArray(s.tpgs) && typeof s.events === "object" && Array.isArray(s.events?.events),
      "a malformed vhost-scsi part",
    );
    expectState(s.wwpn === this.scsi.wwpn, `it was saved from target ${String(s.wwpn)}, this device's is ${this.scsi.wwpn}`);
    expectState(typeof s.initiator === "string" && isNaaName(s.initiator), `initiator ${String(s.initiator)} is not an naa. name`);
    const here = this.savedTpgs(this.nexusHere(s.initiator));
    expectState(s.tpgs.length === here.length, `${s.tpgs.length} TPGs saved, the target here has ${here.length}`);
    for (const [i, t] of s.tpgs.entries()) {
      const h = here[i];
      expectState(typeof t === "object" && t !== null && Array.isArray(t.luns), "a malformed TPG");
      expectState(t.tag === h.tag, `TPG ${t.tag} saved, the target here has TPG ${h.tag}`);
      const ids = (l: { id: number }[]) => l.map((x) => x.id).join(",");
      expectState(ids(t.luns) === ids(h.luns), `TPG ${t.tag} had LUNs ${ids(t.luns)}, here it has ${ids(h.luns)}`);
      for (const [k, l] of t.luns.entries()) {
        const m = h.luns[k];
        for (const f of ["blockSize", "blocks", "backstore", "readOnly"] as const)
          expectState(l[f] === m[f], `TPG ${t.tag} LUN ${l.id}: ${f} ${String(l[f])} saved, ${String(m[f])} here`);
        checkReservations(`TPG ${t.tag} LUN ${l.id}`, l.reservations);
      }
    }
    const names = new Set([s.initiator, ...s.tpgs.flatMap((t) => t.luns.flatMap((l) => reservationNames(l.reservations)))]);
    const missing = [...names].filter((name) => this.target.nexusOf(name) === undefined);
    expectState(missing.length === 0, `target ${this.scsi.wwpn} has no I_T nexus left for ${missing.join(", ")}`);
  }

  /**
   * The device comes back as the same initiator port, with its LUN states; each LUN's
   * reservations come back unless the LUN here has some of its own (another device sharing it
   * here made them: they are the current ones).
   */
  protected restoreType(d: VhostScsi, x: unknown): void {
    const s = x as ScsiDeviceState;
    d.setInitiator(s.initiator);
    const n = this.nexusHere(s.initiator);
    for (const t of s.tpgs) {
      for (const l of t.luns) {
        const lun = this.target.tpg(t.tag)!.lun(l.id)!;
        lun.restoreState(l.state, n);
        if (noReservations(lun.reservations)) this.restoreReservations(lun, l.reservations);
      }
    }
    d.restoreEvents(s.events);
  }

  private restoreReservations(lun: Lun, r: SavedReservations): void {
    const nexus = (name: string) => this.nexusHere(name);
    lun.restoreReservations({
      generation: r.generation,
      registrations: r.registrations.map((g) => ({ nexus: nexus(g.initiator), key: BigInt(`0x${g.key}`), port: BigInt(`0x${g.port}`) })),
      reservation: r.reservation && { holder: nexus(r.reservation.holder), type: r.reservation.type },
      spc2: r.spc2 === undefined ? undefined : nexus(r.spc2),
    });
  }

  /**
   * sense_size and cdb_size are driver-writable, but the vhost backend has them fixed: a change
   * is a device error, as QEMU's vhost-scsi reports it.
   */
  writeConfig(offset: number, data: Uint8Array): void {
    const copy = this.config.slice();
    copy.set(data.subarray(0, Math.max(0, copy.length - offset)), offset);
    const dv = new DataView(copy.buffer);
    if (dv.getUint32(20, true) !== VIRTIO_SCSI_SENSE_SIZE || dv.getUint32(24, true) !== VIRTIO_SCSI_CDB_SIZE) {
      this.needsReset();
      throw new Error("vhost-scsi does not support changing the sense data and CDB sizes");
    }
  }
}
