import type { DataplaneExports } from "../wasm/dataplane.js";
import type { SharedMemory } from "../memory/shared-memory.js";
import { Tpg } from "./tpg.js";

/** A WWPN as vhost-scsi targets use them: "naa." and 16 hex digits (NAA 5 or 6). */
const WWPN_RE = /^naa\.[0-9a-f]{16}$/i;

/** A fresh locally administered WWPN, as targetcli generates them ("naa.5001405" + random). */
export function generateWwpn(): string {
  return `naa.5001405${Array.from(crypto.getRandomValues(new Uint8Array(5)), (b) => b.toString(16).padStart(2, "0"))
    .join("")
    .slice(0, 9)}`;
}

/**
 * A vhost-scsi target (the LIO "vhost" fabric's tport): a WWPN and its TPGs. A vhost-scsi device
 * binds to it with VHOST_SCSI_SET_ENDPOINT by WWPN and then serves all its TPGs.
 */
export class ScsiTarget {
  private readonly tpgMap = new Map<number, Tpg>();
  /** The device bound to this target's TPGs (VHOST_SCSI_SET_ENDPOINT), if any. */
  boundTo: unknown;

  constructor(
    private readonly shm: SharedMemory,
    private readonly dp: DataplaneExports,
    readonly wwpn: string = generateWwpn(),
  ) {
    if (!WWPN_RE.test(wwpn)) throw new RangeError(`WWPN ${wwpn}: expected naa. and 16 hex digits`);
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
    if (this.boundTo) throw new Error(`TPG ${tag} is in use by a vhost-scsi endpoint`);
    this.tpgMap.delete(tag);
    await tpg.dispose();
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
  }
}
