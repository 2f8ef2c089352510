// Where a LUN's blocks live. Two kinds are served in place by the data plane (RAM in the
// device heap, null); every other backstore is served elsewhere, through the seam of
// assembly/ioring.ts: it implements QueuedBackstore in one module and registers a type by
// name, which LunConfig and `--backstore NAME:ARGS` then pick.
import { platform } from "#platform";
import type { SharedMemory } from "../memory/shared-memory.js";
import type { BackstoreIo } from "./ring.js";

/** Blocks in the device-private heap of the shared memory, copied by the data plane. */
export class RamBackstore {
  readonly kind = "ram";
  readonly name = "ram";
  readonly readOnly = false;
  readonly ram: number;

  constructor(
    private readonly shm: SharedMemory,
    readonly size: number,
  ) {
    try {
      this.ram = shm.device.alloc(size, 4096, "ram backstore");
    } catch (e) {
      if (!(e instanceof RangeError)) throw e;
      throw new RangeError(
        `a ${size}-byte RAM backstore does not fit the device heap (${shm.device.available} bytes free): give the shared memory more device memory (createTestbed's deviceMemory option, SharedMemory.create's deviceBytes)`,
      );
    }
    shm.bytes.fill(0, this.ram, this.ram + size);
  }

  /** A new allocation of `size` bytes holding this one's blocks (this one is then disposed of by the caller). */
  resize(size: number): RamBackstore {
    const next = new RamBackstore(this.shm, size);
    this.shm.bytes.copyWithin(next.ram, this.ram, this.ram + Math.min(size, this.size));
    return next;
  }

  close(): void {
    this.shm.device.release(this.ram);
  }
}

/** No data at all: reads return zeroes, writes are accepted and dropped. */
export class NullBackstore {
  readonly kind = "null";
  readonly name = "null";
  readonly readOnly = false;
  constructor(readonly size: number) {}
  resize(size: number): NullBackstore {
    return new NullBackstore(size);
  }
  close(): void {}
}

/** What a backstore served elsewhere offers besides READ and WRITE. */
export interface BackstoreFeatures {
  /** FLUSH makes written data durable (without it, SYNCHRONIZE CACHE completes at once). */
  flush: boolean;
  /** A WRITE can be made durable by itself; without it a FUA write is followed by a FLUSH. */
  fua: boolean;
  /** DISCARD deallocates blocks: the LUN offers logical block provisioning (UNMAP). */
  discard: boolean;
  /** Discarded blocks read back as zeroes (the LUN reports LBPRZ). */
  discardZeroes: boolean;
  /** WRITE_ZEROES without data; without it zeroes are written from a zero buffer. */
  writeZeroes: boolean;
  /**
   * submit() completes every operation before it returns, on every thread that serves it: the
   * service can then run a COMPARE AND WRITE alone on the queue, and the LUN offers it.
   */
  synchronous?: boolean;
}

/**
 * I/O threads of a backstore served in other threads, when its config does not say: none on a
 * machine of two cores or fewer (the vhost workers do the I/O, which beats handing it to a third
 * thread there), else two.
 */
export function defaultIoThreads(): number {
  return platform.cores() <= 2 ? 0 : 2;
}

/** How an operation ended: its length in bytes, or -errno (Linux numbers: -5 EIO, -28 ENOSPC, ...). */
export type IoDone = (io: BackstoreIo, result: number) => void;

/**
 * A backstore served outside the data plane. The data plane hands it operations through the
 * LUN's submission queue; a service (src/backstore/service.ts) takes them, calls submit() and
 * turns each done() into a completion. Missing features are emulated by the service.
 */
export interface QueuedBackstore {
  readonly kind: "queued";
  /** Its type's name (a LUN's product identification says it). */
  readonly name: string;
  /** Capacity in bytes. */
  readonly size: number;
  /** Writes are refused: the LUN is write-protected. */
  readonly readOnly: boolean;
  readonly features: BackstoreFeatures;
  /** The smallest I/O it takes, bytes: a LUN's logical block size defaults to it (at least 512). */
  readonly blockSize?: number;
  /** The largest single transfer it takes, bytes: the LUN's MAXIMUM TRANSFER LENGTH stays within it. */
  readonly maxTransfer?: number;
  /**
   * Starts every operation of the batch on the views of guest memory it carries; done() is
   * called once per operation, in any order, on this thread (possibly before submit returns).
   * An operation's buffers stay valid until its done().
   */
  submit(batch: readonly BackstoreIo[], done: IoDone): void;
  /**
   * It can be served from other threads: the module (URL) whose export `openInThread(init)`
   * opens it there, what that needs (structured-cloneable), and by whom: `ioThreads` dedicated
   * I/O threads, or with 0 the vhost workers themselves, between their passes over the rings.
   * I/O threads need operations that complete synchronously; a vhost worker also serves one that
   * answers on its thread's event loop later (NBD), which it then lets run between passes.
   * Without it, it is served on the thread that opened it.
   */
  readonly threaded?: ThreadedBackstore;
  /** Changes the capacity (absent: not resizable). */
  resize?(size: number): void;
  close(): void | Promise<void>;
}

/** How a backstore is opened and served in other threads (QueuedBackstore.threaded). */
export interface ThreadedBackstore {
  module: string;
  init: unknown;
  ioThreads: number;
}

export type Backstore = RamBackstore | NullBackstore | QueuedBackstore;

/**
 * The fields each backstore type takes in a LunConfig, by type name. A backstore module adds its
 * own with declaration merging (`declare module ".../backstore.js" { interface BackstoreConfigs
 * { mine: {...} } }`).
 */
export interface BackstoreConfigs {
  ram: { size: number };
  null: { size: number };
}

/** A LUN's backstore: a registered type with its fields, or one opened already. */
export type BackstoreConfig = { [K in keyof BackstoreConfigs]: { backstore: K } & BackstoreConfigs[K] }[keyof BackstoreConfigs] | { backstore: Backstore };

/** A backstore type, as registerBackstore() takes it. */
export interface BackstoreType<K extends keyof BackstoreConfigs = keyof BackstoreConfigs> {
  readonly name: K;
  /** Other names it answers to (an NBD URI scheme: nbd+unix). */
  readonly aliases?: readonly string[];
  /** The usage line --help shows: `file:PATH`. */
  readonly usage: string;
  /** Its command-line form is a URI (`nbd://host/export`): parseArg() gets the whole argument. */
  readonly uri?: boolean;
  /** open() returns a promise (a network backstore): only openBackstore() opens it, never openBackstoreSync(). */
  readonly opensAsync?: boolean;
  /** Turns the text after `NAME:` on the command line (or the whole URI) into its fields (the size comes from --size). */
  parseArg(arg: string): Partial<BackstoreConfigs[K]>;
  /** Opens it; `readOnly` is the LUN's option. */
  open(cfg: BackstoreConfigs[K], ctx: { shm: SharedMemory; readOnly: boolean }): Backstore | Promise<Backstore>;
}

/**
 * The size a RAM or null LUN's config gives, checked before anything is allocated: a positive
 * whole number of its blocks (`blockSize`, 512 unless given).
 */
export function inPlaceSize(kind: string, cfg: { size?: unknown; blockSize?: unknown }): number {
  const bs = typeof cfg.blockSize === "number" ? cfg.blockSize : 512;
  const size = cfg.size;
  if (typeof size !== "number" || !Number.isSafeInteger(size) || size <= 0 || size % bs !== 0)
    throw new RangeError(`a ${kind} backstore needs size: a positive multiple of its ${bs}-byte block size (given: ${String(size)})`);
  return size;
}

/** Served in place: the data plane copies between the guest's buffers and the device heap. */
export const ramBackstoreType: BackstoreType<"ram"> = {
  name: "ram",
  usage: "ram",
  parseArg: () => ({}),
  open: (cfg, { shm }) => new RamBackstore(shm, inPlaceSize("ram", cfg)),
};

/** Served in place: reads are zeroes, writes are dropped. */
export const nullBackstoreType: BackstoreType<"null"> = {
  name: "null",
  usage: "null",
  parseArg: () => ({}),
  open: (cfg) => new NullBackstore(inPlaceSize("null", cfg)),
};

const types = new Map<string, BackstoreType>();

/** Makes a backstore type known by its name and aliases. */
export function registerBackstore<K extends keyof BackstoreConfigs>(t: BackstoreType<K>): void {
  for (const n of [t.name, ...(t.aliases ?? [])]) {
    if (types.has(n)) throw new Error(`backstore type ${n} is registered already`);
    types.set(n, t as unknown as BackstoreType);
  }
}

/** The registered type called name. */
export function backstoreType(name: string): BackstoreType {
  const t = types.get(name);
  if (!t) throw new RangeError(`unknown backstore ${name}; known: ${[...types.keys()].join(", ")}`);
  return t;
}

/** Every registered type (once each). */
export function backstoreTypes(): BackstoreType[] {
  return [...new Set(types.values())];
}

/**
 * `NAME:ARGS` (the benchmark's --backstore, e.g. `file:/dev/shm/disk.img`, or a URI such as
 * `nbd://host/export`) as a BackstoreConfig; a bare NAME takes no arguments.
 */
export function parseBackstoreArg(arg: string): { backstore: keyof BackstoreConfigs } & Record<string, unknown> {
  const colon = arg.indexOf(":");
  const name = colon < 0 ? arg : arg.slice(0, colon);
  const t = backstoreType(name);
  const rest = t.uri ? arg : colon < 0 ? "" : arg.slice(colon + 1);
  return { backstore: t.name, ...t.parseArg(rest) };
}

/** Opens the backstore a config names (or returns the one it holds). */
export async function openBackstore(cfg: BackstoreConfig, shm: SharedMemory, readOnly = false): Promise<Backstore> {
  if (typeof cfg.backstore !== "string") return cfg.backstore;
  return backstoreType(cfg.backstore).open(cfg as never, { shm, readOnly });
}

/**
 * As openBackstore(), for types that open synchronously (ram, null, file). A type that opens
 * asynchronously is refused before anything is opened: use openBackstore() (or Tpg.addLun).
 */
export function openBackstoreSync(cfg: BackstoreConfig, shm: SharedMemory, readOnly = false): Backstore {
  if (typeof cfg.backstore !== "string") return cfg.backstore;
  const t = backstoreType(cfg.backstore);
  if (t.opensAsync) throw new TypeError(`backstore ${cfg.backstore} opens asynchronously: use await openBackstore() or await tpg.addLun()`);
  const b = t.open(cfg as never, { shm, readOnly });
  if (b instanceof Promise) {
    // A type that did not say so: close what it opens, and refuse.
    void b.then((s) => s.close()).catch(() => {});
    throw new TypeError(`backstore ${cfg.backstore} opens asynchronously: use await openBackstore() or await tpg.addLun()`);
  }
  return b;
}
