import type { DataplaneExports } from "../wasm/dataplane.js";
import type { SharedMemory } from "../memory/shared-memory.js";
import { Lun, UA_LUNS_CHANGED, type LunOptions } from "./lun.js";
import { openBackstore, type Backstore, type BackstoreConfig } from "#backstores";
import { VHOST_SCSI_MAX_LUN, VHOST_SCSI_MAX_TARGET } from "../wasm/abi.generated.js";
export { VHOST_SCSI_MAX_LUN, VHOST_SCSI_MAX_TARGET } from "../wasm/abi.generated.js";

/** A LUN's backstore (a registered type with its fields, or one opened already) and presentation. */
export type LunConfig = LunOptions & BackstoreConfig;

/** What a TPG tells the device bound to it (hotplug events, quiescing workers). */
export interface TpgListener {
  lunAdded(tpg: Tpg, lun: Lun): void;
  lunRemoved(tpg: Tpg, lun: Lun): void;
  /** A removed LUN has no request left: whatever serves its backstore for the device can let go. */
  lunReleased(tpg: Tpg, lun: Lun): Promise<void>;
  lunResized(tpg: Tpg, lun: Lun): void;
  /** Runs fn while no worker of the device serves requests; resolves after. */
  paused(fn: () => void | Promise<void>): Promise<void>;
  /** Resolves once every worker finished the work it had when called, file I/O included. */
  flush(): Promise<void>;
}

/**
 * A target portal group: a tag (the guest's target number) and its LUNs 0..16383. Its struct in
 * the device heap holds the LUN table the data plane reads; LUNs are published and
 * unpublished there with single atomic stores. Every device bound to it listens.
 */
export class Tpg {
  readonly ptr: number;
  private readonly luns = new Map<number, Lun>();
  readonly listeners = new Set<TpgListener>();

  constructor(
    private readonly shm: SharedMemory,
    private readonly dp: DataplaneExports,
    readonly tag: number,
    private readonly identity: (lun: number) => { naa: Uint8Array; port: number; targetName: string },
  ) {
    if (!Number.isInteger(tag) || tag < 0 || tag >= VHOST_SCSI_MAX_TARGET) throw new RangeError(`TPG tag ${tag}: 0..255`);
    const size = dp.scsi_tpg_size();
    this.ptr = shm.device.alloc(size, 16, `tpg ${tag}`);
    shm.bytes.fill(0, this.ptr, this.ptr + size);
    dp.scsi_tpg_init(this.ptr, tag);
  }

  lun(id: number): Lun | undefined {
    return this.luns.get(id);
  }

  get lunIds(): number[] {
    return [...this.luns.keys()].sort((a, b) => a - b);
  }

  /** Throws when LUN id cannot be added now: a bad number, or one in use. */
  private checkId(id: number): void {
    if (!Number.isInteger(id) || id < 0 || id >= VHOST_SCSI_MAX_LUN) throw new RangeError(`LUN ${id}: 0..16383`);
    if (this.luns.has(id)) throw new Error(`LUN ${id} exists in TPG ${this.tag}`);
  }

  /**
   * Adds LUN id with its backstore, opened here (a file, a connection to a storage server) or
   * given opened; a bound device reports it (hotplug). On any failure nothing is left open or
   * created: the number and the config are checked before the backstore is opened, and a
   * backstore that was opened is closed again.
   */
  async addLun(id: number, cfg: LunConfig): Promise<Lun> {
    this.checkId(id);
    const size = (cfg as { size?: unknown }).size;
    const bs = cfg.blockSize ?? 512;
    if (size !== undefined && (typeof size !== "number" || !Number.isSafeInteger(size) || size <= 0 || size % bs !== 0))
      throw new RangeError(`LUN ${id}: size ${String(size)} is not a positive multiple of its ${bs}-byte block size`);
    const store = await openBackstore(cfg, this.shm, cfg.readOnly);
    // Another addLun of the same number may have finished while this one opened.
    if (this.luns.has(id)) {
      await store.close();
      throw new Error(`LUN ${id} exists in TPG ${this.tag}`);
    }
    return this.attachLun(id, store, cfg);
  }

  /**
   * Adds LUN id over a backstore opened already, at once; a bound device reports it (hotplug).
   * If the LUN cannot be made, the backstore is closed.
   */
  attachLun(id: number, store: Backstore, options: LunOptions = {}): Lun {
    try {
      this.checkId(id);
    } catch (e) {
      void store.close();
      throw e;
    }
    const cfg = { ...options, backstore: store } as LunConfig;
    let lun: Lun;
    try {
      lun = new Lun(this.shm, this.dp, id, store, cfg, this.identity(id));
    } catch (e) {
      void store.close();
      throw e;
    }
    for (const other of this.luns.values()) other.raiseUnitAttention(UA_LUNS_CHANGED);
    this.luns.set(id, lun);
    this.dp.scsi_tpg_set_lun(this.ptr, id, lun.ptr);
    for (const l of this.listeners) l.lunAdded(this, lun);
    return lun;
  }

  /**
   * Removes LUN id: unpublishes it (new requests see LOGICAL UNIT NOT SUPPORTED), waits for the
   * workers to stop using it and for its asynchronous requests to finish, then frees it.
   */
  async removeLun(id: number): Promise<void> {
    const lun = this.luns.get(id);
    if (!lun) throw new Error(`no LUN ${id} in TPG ${this.tag}`);
    this.dp.scsi_tpg_set_lun(this.ptr, id, 0);
    this.luns.delete(id);
    for (const other of this.luns.values()) other.raiseUnitAttention(UA_LUNS_CHANGED);
    for (const l of this.listeners) l.lunRemoved(this, lun);
    for (const l of this.listeners) await l.flush();
    while (lun.inflight > 0) await new Promise((r) => setTimeout(r, 1));
    for (const l of this.listeners) await l.lunReleased(this, lun);
    await lun.dispose();
  }

  /** Changes LUN id's capacity; a bound device reports it (PARAM_CHANGE, unit attention). */
  async resizeLun(id: number, bytes: number): Promise<void> {
    const lun = this.luns.get(id);
    if (!lun) throw new Error(`no LUN ${id} in TPG ${this.tag}`);
    await lun.resize(bytes, (fn) => this.paused(fn));
    for (const l of this.listeners) l.lunResized(this, lun);
  }

  /** Runs fn while no worker of any bound device serves requests (each pauses inside the last). */
  private paused(fn: () => void | Promise<void>): Promise<void> {
    const run = [...this.listeners].reduceRight<() => Promise<void>>(
      (inner, l) => () => l.paused(inner),
      async () => fn(),
    );
    return run();
  }

  /** Frees every LUN and the TPG (no device may be bound). */
  async dispose(): Promise<void> {
    for (const lun of this.luns.values()) await lun.dispose();
    this.luns.clear();
    this.shm.device.release(this.ptr);
  }
}
