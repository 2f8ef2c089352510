import type { DataplaneExports } from "../wasm/dataplane.js";
import type { SharedMemory } from "../memory/shared-memory.js";
import { ScsiTarget } from "./target.js";

/**
 * The vhost fabric's targets by WWPN (what /sys/kernel/config/target/vhost/ holds for LIO):
 * VHOST_SCSI_SET_ENDPOINT looks a WWPN up here.
 */
export class TargetRegistry {
  private readonly byWwpn = new Map<string, ScsiTarget>();

  constructor(
    private readonly shm: SharedMemory,
    private readonly dp: DataplaneExports,
  ) {}

  /** Creates a target (with a generated WWPN unless given). */
  create(wwpn?: string): ScsiTarget {
    const t = new ScsiTarget(this.shm, this.dp, wwpn);
    if (this.byWwpn.has(t.wwpn)) throw new Error(`target ${t.wwpn} exists`);
    this.byWwpn.set(t.wwpn, t);
    return t;
  }

  get(wwpn: string): ScsiTarget | undefined {
    return this.byWwpn.get(wwpn);
  }

  /** Removes an unbound target: its LUNs stop being served and their backstores close. */
  async remove(wwpn: string): Promise<void> {
    const t = this.byWwpn.get(wwpn);
    if (!t) throw new Error(`no target ${wwpn}`);
    if (t.bound) throw new Error(`target ${wwpn} is in use by a vhost-scsi endpoint`);
    this.byWwpn.delete(wwpn);
    await t.dispose();
  }
}
