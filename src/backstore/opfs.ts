// The OPFS backstore: a LUN's blocks in a file of the browser's Origin Private File System, which
// survives reloads and browser restarts. Synchronous access handles exist only in dedicated
// workers, so the file is always served in other threads: dedicated I/O threads, or the vhost
// worker threads themselves (ioThreads 0). Each serving thread opens its own handle; several at
// once need the browser's "readwrite-unsafe" mode, one LUN is the file's only user (a Web Lock
// held while it is open says so to other tabs too). Reads and writes go straight between the
// file and views of guest memory where the browser takes shared-memory views, through a bounce
// buffer where it does not. FLUSH is the handle's flush() (a real fsync); FUA writes are followed
// by one (the service does that for a backstore without FUA). A full quota is ENOSPC (SPACE
// ALLOCATION FAILED), any other failure EIO (MEDIUM ERROR).
import { platform } from "#platform";
import { defaultIoThreads, type BackstoreFeatures, type BackstoreType, type IoDone, type QueuedBackstore, type ThreadedBackstore } from "./backstore.js";
import { BS_OP_FLUSH, BS_OP_READ, BS_OP_WRITE, type BackstoreIo } from "./ring.js";
import { compiledModule } from "../sys/compiled-module.js";

export interface OpfsConfig {
  /** The file's path in the origin's private file system ("disks/vm1.img"); folders are made as needed. */
  path: string;
  /** Bytes; default the file's size. A missing file is made only when a size is given; a larger size grows the file. */
  size?: number;
  /**
   * Threads serving it: dedicated I/O threads, or with 0 the vhost worker threads (which must be
   * Web Workers then: a page's main thread has no sync access handles). Default: as a file's
   * (defaultIoThreads()).
   */
  ioThreads?: number;
}

declare module "./backstore.js" {
  interface BackstoreConfigs {
    opfs: OpfsConfig;
  }
}

/** What this module uses of a FileSystemSyncAccessHandle (dedicated workers only). */
interface SyncHandle {
  read(view: ArrayBufferView, opts: { at: number }): number;
  write(view: ArrayBufferView, opts: { at: number }): number;
  flush(): void;
  getSize(): number;
  truncate(size: number): void;
  close(): void;
}
interface OpfsFileHandle {
  getFile(): Promise<{ size: number }>;
  createSyncAccessHandle(opts?: { mode: "readwrite" | "readwrite-unsafe" }): Promise<SyncHandle>;
}
interface OpfsDirectory {
  getDirectoryHandle(name: string, opts?: { create: boolean }): Promise<OpfsDirectory>;
  getFileHandle(name: string, opts?: { create: boolean }): Promise<OpfsFileHandle>;
}

/** Every serving thread reads and writes through its sync access handle: operations complete within submit() (COMPARE AND WRITE offered). */
const FEATURES: BackstoreFeatures = { flush: true, fua: false, discard: false, discardZeroes: false, writeZeroes: false, synchronous: true };
const EIO = 5;
const ENOSPC = 28;

/** The file handle at `path`, made (with its folders) when `create`. */
async function fileHandle(path: string, create: boolean): Promise<OpfsFileHandle> {
  const parts = path.split("/").filter((p) => p !== "");
  if (parts.length === 0 || parts.some((p) => p === "." || p === "..")) throw new RangeError(`opfs: '${path}' is not a file path`);
  const storage = (globalThis.navigator as unknown as { storage?: { getDirectory?(): Promise<OpfsDirectory> } } | undefined)?.storage;
  if (!storage?.getDirectory) throw new Error("opfs: this runtime has no Origin Private File System (navigator.storage.getDirectory)");
  let dir = await storage.getDirectory();
  for (const name of parts.slice(0, -1)) dir = await dir.getDirectoryHandle(name, { create });
  return dir.getFileHandle(parts.at(-1)!, { create });
}

/** errno of a failed OPFS call, negated: a full quota is ENOSPC, anything else EIO. */
function negErrno(e: unknown): number {
  return (e as { name?: string }).name === "QuotaExceededError" ? -ENOSPC : -EIO;
}

/** The files this page's LUNs have open: one LUN per file. */
const inUse = new Set<string>();

/** A file in the OPFS opened as a backstore (the control plane's handle; the serving threads open their own). */
export class OpfsBackstore implements QueuedBackstore {
  readonly kind = "queued";
  readonly name = "opfs";
  readonly features = FEATURES;
  readonly threaded: ThreadedBackstore;
  private releaseLock: (() => void) | undefined;

  private constructor(
    readonly path: string,
    readonly size: number,
    readonly readOnly: boolean,
    ioThreads: number,
  ) {
    const module = compiledModule(new URL("./opfs.ts", import.meta.url)).href;
    this.threaded = { module, init: { path, size, readOnly, shared: ioThreads !== 1 } satisfies ThreadInit, ioThreads };
  }

  /** Opens (or with a size, makes) the file at cfg.path for one LUN; its size is the file's unless cfg.size is larger. */
  static async open(cfg: OpfsConfig, readOnly: boolean): Promise<OpfsBackstore> {
    if (inUse.has(cfg.path)) throw new Error(`opfs:${cfg.path} is the backstore of another LUN already`);
    if (cfg.size !== undefined && !(Number.isSafeInteger(cfg.size) && cfg.size > 0))
      throw new RangeError(`opfs: size ${cfg.size} is not a positive number of bytes`);
    const ioThreads = cfg.ioThreads ?? defaultIoThreads();
    if (!(Number.isInteger(ioThreads) && ioThreads >= 0)) throw new RangeError(`opfs: ioThreads ${ioThreads}`);
    // Other tabs of the origin: the file's Web Lock, held while the LUN is open.
    let release: (() => void) | undefined;
    const locks = (globalThis.navigator as { locks?: LockManager } | undefined)?.locks;
    if (locks) {
      const held = await new Promise<boolean>((resolve) => {
        void locks.request(`vhost-scsi-wasm opfs:${cfg.path}`, { ifAvailable: true }, (lock) => {
          if (!lock) return resolve(false);
          resolve(true);
          return new Promise<void>((r) => (release = r));
        });
      });
      if (!held) throw new Error(`opfs:${cfg.path} is open in another tab or worker of this origin`);
    }
    try {
      let fh: OpfsFileHandle;
      try {
        fh = await fileHandle(cfg.path, cfg.size !== undefined && !readOnly);
      } catch (e) {
        if ((e as { name?: string }).name === "NotFoundError") throw new Error(`opfs:${cfg.path} does not exist; give a size to make it`);
        throw e;
      }
      const have = (await fh.getFile()).size;
      const size = cfg.size ?? have;
      if (readOnly && size > have) throw new RangeError(`opfs:${cfg.path} is ${have} bytes; a read-only LUN cannot grow it to ${size}`);
      if (!(size > 0)) throw new RangeError(`opfs:${cfg.path} is empty; give a size`);
      const b = new OpfsBackstore(cfg.path, size, readOnly, ioThreads);
      b.releaseLock = release;
      inUse.add(cfg.path);
      return b;
    } catch (e) {
      release?.();
      throw e;
    }
  }

  submit(_batch: readonly BackstoreIo[], _done: IoDone): void {
    // The service serves a threaded backstore in its threads; this is never called for it.
    throw new Error("an OPFS backstore is served by I/O threads or vhost worker threads only");
  }

  close(): void {
    inUse.delete(this.path);
    this.releaseLock?.();
  }
}

/** What a serving thread opens the file with. */
interface ThreadInit {
  path: string;
  size: number;
  readOnly: boolean;
  /** Other threads have handles on the file too: open it in "readwrite-unsafe" mode. */
  shared: boolean;
}

/** Whether the handle takes views of a SharedArrayBuffer (reads straight into guest memory). */
function takesSharedViews(h: SyncHandle): boolean {
  try {
    h.read(new Uint8Array(new SharedArrayBuffer(1)), { at: 0 });
    return true;
  } catch {
    return false;
  }
}

/** In a serving thread: the file's own access handle, grown to the LUN's size, served synchronously. */
export async function openInThread(init: ThreadInit): Promise<QueuedBackstore> {
  const fh = await fileHandle(init.path, false);
  if (typeof fh.createSyncAccessHandle !== "function")
    throw new Error(`opfs:${init.path}: sync access handles exist only in dedicated workers; serve this LUN with I/O threads (ioThreads ≥ 1)`);
  let h: SyncHandle;
  try {
    h = await fh.createSyncAccessHandle(init.shared ? { mode: "readwrite-unsafe" } : undefined);
  } catch (e) {
    const why = (e as { name?: string }).name === "NoModificationAllowedError" ? "another handle has it open" : (e as Error).message;
    throw new Error(`opfs:${init.path}: ${why}${init.shared ? " (several serving threads need the browser's readwrite-unsafe mode)" : ""}`);
  }
  if (!init.readOnly && h.getSize() < init.size) h.truncate(init.size);
  const direct = takesSharedViews(h);
  let bounce = new Uint8Array(0);
  const move = (write: boolean, v: Uint8Array, at: number): number => {
    if (direct) return write ? h.write(v, { at }) : h.read(v, { at });
    if (bounce.length < v.length) bounce = new Uint8Array(v.length);
    const b = bounce.subarray(0, v.length);
    if (!write) {
      const n = h.read(b, { at });
      v.set(b.subarray(0, n));
      return n;
    }
    b.set(v);
    return h.write(b, { at });
  };
  const run = (io: BackstoreIo): number => {
    try {
      if (io.op === BS_OP_FLUSH) {
        h.flush();
        return 0;
      }
      if (io.op !== BS_OP_READ && io.op !== BS_OP_WRITE) return -95; // EOPNOTSUPP: the service emulates the rest
      let at = io.offset;
      for (const v of io.buffers) {
        for (let done = 0; done < v.length; ) {
          const n = move(io.op === BS_OP_WRITE, v.subarray(done), at);
          if (n <= 0) return -EIO; // past the file's end: it was truncated behind the LUN's back
          done += n;
          at += n;
        }
      }
      return io.length;
    } catch (e) {
      platform.debugLog("opfs %s: %s", init.path, (e as Error).message);
      return negErrno(e);
    }
  };
  return {
    kind: "queued",
    name: "opfs",
    size: init.size,
    readOnly: init.readOnly,
    features: FEATURES,
    submit(batch, done) {
      for (const io of batch) done(io, run(io));
    },
    close: () => h.close(),
  };
}

export const opfsBackstoreType: BackstoreType<"opfs"> = {
  name: "opfs",
  usage: "opfs:PATH",
  opensAsync: true,
  parseArg(arg) {
    if (!arg) throw new RangeError("opfs: needs a path (opfs:PATH)");
    return { path: arg };
  },
  open: (cfg, { readOnly }) => OpfsBackstore.open(cfg, readOnly),
};
