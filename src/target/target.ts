import type { DataplaneExports } from "../wasm/dataplane.js";
import type { SharedMemory } from "../memory/shared-memory.js";
import { Tpg } from "./tpg.js";
import { SCSI_MAX_NEXUS } from "../wasm/abi.generated.js";
export { SCSI_MAX_NEXUS } from "../wasm/abi.generated.js";

/** A WWPN as vhost-scsi targets use them: "naa." and 16 hex digits (NAA 5 or 6). */
const WWPN_RE = /^naa\.[0-9a-f]{16}$/i;

/** A fresh locally administered WWPN, as targetcli generates them ("naa.5001405" + random). */
export function generateWwpn(): string {
  return `naa.5001405${Array.from(crypto.getRandomValues(new Uint8Array(5)), (b) => b.toString(16).padStart(2, "0"))
    .join("")
    .slice(0, 9)}`;
}

/** The SAS address (64 bits) of an naa. name, as a TransportID carries it. */
export function sasAddress(name: string): bigint {
  return BigInt(`0x${name.slice(4)}`);
}

/** A WWPN or initiator port name as vhost-scsi uses them. */
export function isNaaName(name: string): boolean {
  return WWPN_RE.test(name);
}

/**
 * A vhost-scsi target (the LIO "vhost" fabric's tport): a WWPN and its TPGs. vhost-scsi devices
 * bind to it with VHOST_SCSI_SET_ENDPOINT by WWPN and then serve all its TPGs; each bound device
 * is one I_T nexus, named by its initiator port (up to SCSI_MAX_NEXUS at once), and the devices
 * share the LUNs: their reservations and unit attentions are per nexus.
 */
export class ScsiTarget {
  private readonly tpgMap = new Map<number, Tpg>();
  /** Each nexus number's initiator port name (kept after its device unbinds: its registrations stay). */
  private readonly initiators: (string | undefined)[] = new Array(SCSI_MAX_NEXUS).fill(undefined);
  /** The device bound on each nexus number. */
  private readonly devices = new Map<number, unknown>();
  /**
   * The bound devices' structs by nexus number, in the device heap (SCSI_MAX_NEXUS u32 slots):
   * where a COMPARE AND WRITE finds every request queue that may touch a LUN (assembly/scsi/caw.ts).
   */
  readonly peers: number;
  private readonly peerSlots: Uint32Array;

  constructor(
    private readonly shm: SharedMemory,
    private readonly dp: DataplaneExports,
    readonly wwpn: string = generateWwpn(),
  ) {
    if (!isNaaName(wwpn)) throw new RangeError(`WWPN ${wwpn}: expected naa. and 16 hex digits`);
    this.peers = shm.device.alloc(SCSI_MAX_NEXUS * 4, 4, `target ${wwpn} peers`);
    this.peerSlots = new Uint32Array(shm.buffer, this.peers, SCSI_MAX_NEXUS);
    this.peerSlots.fill(0);
  }

  get tpgs(): Tpg[] {
    return [...this.tpgMap.values()].sort((a, b) => a.tag - b.tag);
  }

  tpg(tag: number): Tpg | undefined {
    return this.tpgMap.get(tag);
  }

  /** Adds TPG `tag` (the guest sees it as target number tag). */
  addTpg(tag: number): Tpg {
    if (this.tpgMap.has(tag)) throw new Error(`TPG ${tag} exists on ${this.wwpn}`);
    const tpg = new Tpg(this.shm, this.dp, tag, (lun) => this.identity(tag, lun));
    this.tpgMap.set(tag, tpg);
    return tpg;
  }

  /** Removes an idle TPG (not bound to a device). */
  async removeTpg(tag: number): Promise<void> {
    const tpg = this.tpgMap.get(tag);
    if (!tpg) throw new Error(`no TPG ${tag} on ${this.wwpn}`);
    if (this.bound) throw new Error(`TPG ${tag} is in use by a vhost-scsi endpoint`);
    this.tpgMap.delete(tag);
    await tpg.dispose();
  }

  /** Whether any device is bound to the target's TPGs. */
  get bound(): boolean {
    return this.devices.size > 0;
  }

  /**
   * The nexus number of initiator port `name`: the one it had, or a new one. Once every number
   * has had an initiator, one whose initiator is gone (no device bound, no persistent
   * registration on any LUN) is taken again.
   * Undefined when all SCSI_MAX_NEXUS are in use.
   */
  nexusOf(name: string): number | undefined {
    const had = this.initiators.indexOf(name);
    if (had >= 0) return had;
    let free = this.initiators.indexOf(undefined);
    if (free < 0) free = this.initiators.findIndex((_, i) => !this.devices.has(i) && !this.registeredAnywhere(i));
    if (free < 0) return undefined;
    this.initiators[free] = name;
    return free;
  }

  /** The initiator port name of nexus n, if it has one. */
  initiatorOf(n: number): string | undefined {
    return this.initiators[n];
  }

  private registeredAnywhere(n: number): boolean {
    return this.tpgs.some((t) => t.lunIds.some((id) => t.lun(id)!.registeredNexuses.includes(n)));
  }

  /**
   * Binds `device` (its struct at `dev` in the device heap) as initiator port `name`: its nexus
   * number, or an error message (the name is bound by another device, or every nexus number is
   * in use).
   */
  bind(device: unknown, dev: number, name: string): number | string {
    const n = this.nexusOf(name);
    if (n === undefined) return `${this.wwpn} has ${SCSI_MAX_NEXUS} initiators bound or registered already`;
    if (this.devices.has(n)) return `initiator ${name} is bound to ${this.wwpn} by another device`;
    this.devices.set(n, device);
    Atomics.store(this.peerSlots, n, dev);
    return n;
  }

  /** Unbinds nexus n's device: as an I_T nexus loss, the SPC-2 reservations it held end. */
  unbind(n: number): void {
    this.devices.delete(n);
    Atomics.store(this.peerSlots, n, 0);
    for (const t of this.tpgs) for (const id of t.lunIds) t.lun(id)!.nexusLost(n);
  }

  /**
   * The identifiers a LUN reports in VPD page 83h: an NAA IEEE Registered Extended designator
   * (NAA 6, the WWPN's company id and a per-LUN vendor-specific part), the relative port
   * (TPG tag + 1) and the target port name.
   */
  private identity(tag: number, lun: number): { naa: Uint8Array; port: number; targetName: string } {
    const hex = this.wwpn.slice(4);
    const naa = new Uint8Array(16);
    const id = BigInt(`0x${hex}`);
    const dv = new DataView(naa.buffer);
    dv.setBigUint64(0, (6n << 60n) | ((id & 0xffffffffffffn) << 12n) | BigInt(tag & 0xfff));
    dv.setBigUint64(8, (BigInt(tag) << 16n) | BigInt(lun));
    return { naa, port: tag + 1, targetName: `${this.wwpn},t,0x${tag.toString(16).padStart(4, "0")}` };
  }

  async dispose(): Promise<void> {
    for (const t of this.tpgMap.values()) await t.dispose();
    this.tpgMap.clear();
    this.shm.device.release(this.peers);
  }
}
