// The file backstore: a regular file or block device, read and written with synchronous
// preadv/pwritev (fs.readvSync/writevSync) straight on views of the guest buffers, fdatasync
// for FLUSH. It is served by dedicated I/O threads (--io-threads N), or with 0 by the vhost
// workers themselves; the default depends on the cores (docs/performance.md).
import { closeSync, constants, fdatasyncSync, fstatSync, ftruncateSync, openSync, readvSync, unlinkSync, writevSync } from "node:fs";
import { defaultIoThreads, type BackstoreFeatures, type BackstoreType, type IoDone, type QueuedBackstore, type ThreadedBackstore } from "./backstore.js";
import { BS_OP_FLUSH, BS_OP_READ, BS_OP_WRITE, rest, type BackstoreIo } from "./ring.js";
import { compiledModule } from "../sys/compiled-module.js";

/** The file operations the backstore runs; tests substitute failing or short ones. */
export interface FileOps {
  readv(fd: number, buffers: readonly Uint8Array[], position: number): number;
  writev(fd: number, buffers: readonly Uint8Array[], position: number): number;
  fdatasync(fd: number): void;
}

export const nodeFileOps: FileOps = { readv: readvSync, writev: writevSync, fdatasync: fdatasyncSync };

export interface FileConfig {
  path: string;
  /**
   * Bytes; default the file's size. A missing file is created (sparse) only when a size is given;
   * a larger size than the file's extends it.
   */
  size?: number;
  /** Open it with O_DIRECT (the page cache bypassed; guest buffers are page-aligned). */
  direct?: boolean;
  /** Dedicated I/O threads serving it; 0: the vhost workers serve it. Default: defaultIoThreads(). */
  ioThreads?: number;
  /** The operations to run (tests); default Node's synchronous fs calls. Served on the opening thread then. */
  ops?: FileOps;
}

declare module "./backstore.js" {
  interface BackstoreConfigs {
    file: FileConfig;
  }
}

const FEATURES: BackstoreFeatures = { flush: true, fua: false, discard: false, discardZeroes: false, writeZeroes: false, synchronous: true };

/** errno of a failed fs call, negated (Node reports it negative already); EIO when unknown. */
function negErrno(e: unknown): number {
  const n = (e as { errno?: number }).errno;
  return typeof n === "number" && n !== 0 ? -Math.abs(n) : -5;
}

/**
 * Runs one operation to the end: short transfers are continued; a transfer that makes no
 * progress (end of file, a device that stops) is EIO. Returns the length or -errno.
 */
export function runFileIo(ops: FileOps, fd: number, io: BackstoreIo): number {
  try {
    if (io.op === BS_OP_FLUSH) {
      ops.fdatasync(fd);
      return 0;
    }
    const move = io.op === BS_OP_READ ? ops.readv : io.op === BS_OP_WRITE ? ops.writev : undefined;
    if (!move) return -95; // EOPNOTSUPP: the service emulates everything else
    for (let done = 0; done < io.length; ) {
      const n = move(fd, done === 0 ? io.buffers : rest(io.buffers, done), io.offset + done);
      if (n <= 0) return -5;
      done += n;
    }
    return io.length;
  } catch (e) {
    return negErrno(e);
  }
}

/** A file opened as a backstore (the control plane's handle; I/O threads open their own view of the fd). */
export class FileBackstore implements QueuedBackstore {
  readonly kind = "queued";
  readonly name = "file";
  readonly features = FEATURES;
  readonly fd: number;
  size: number;
  readonly threaded?: ThreadedBackstore;
  private readonly ops: FileOps;

  constructor(
    readonly path: string,
    cfg: Omit<FileConfig, "path"> = {},
    readonly readOnly = false,
  ) {
    const direct = cfg.direct ? constants.O_DIRECT : 0;
    let created = false;
    try {
      this.fd = openSync(path, (readOnly ? constants.O_RDONLY : constants.O_RDWR) | direct);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== "ENOENT" || readOnly || cfg.size === undefined) throw e;
      this.fd = openSync(path, constants.O_RDWR | constants.O_CREAT | constants.O_EXCL | direct, 0o644);
      created = true;
    }
    try {
      const have = fstatSync(this.fd).size;
      this.size = cfg.size ?? have;
      if (this.size > have && !readOnly) ftruncateSync(this.fd, this.size);
      if (!(this.size > 0)) throw new RangeError(`file backstore ${path} is empty; give a size`);
    } catch (e) {
      closeSync(this.fd);
      // A file this open made is not left behind by its failure.
      if (created) unlinkSync(path);
      throw e;
    }
    this.ops = cfg.ops ?? nodeFileOps;
    if (!cfg.ops) {
      const module = compiledModule(new URL("./file.ts", import.meta.url)).href;
      this.threaded = { module, init: { fd: this.fd, size: this.size, readOnly }, ioThreads: cfg.ioThreads ?? defaultIoThreads() };
    }
  }

  submit(batch: readonly BackstoreIo[], done: IoDone): void {
    for (const io of batch) done(io, runFileIo(this.ops, this.fd, io));
  }

  resize(size: number): void {
    ftruncateSync(this.fd, size);
    this.size = size;
  }

  close(): void {
    closeSync(this.fd);
  }
}

/** In an I/O thread: the same file through the descriptor the control plane opened (fds are per process). */
export function openInThread(init: { fd: number; size: number; readOnly: boolean }): QueuedBackstore {
  return {
    kind: "queued",
    name: "file",
    size: init.size,
    readOnly: init.readOnly,
    features: FEATURES,
    submit(batch, done) {
      for (const io of batch) done(io, runFileIo(nodeFileOps, init.fd, io));
    },
    // The descriptor belongs to the control plane's FileBackstore, which closes it.
    close() {},
  };
}

export const fileBackstoreType: BackstoreType<"file"> = {
  name: "file",
  usage: "file:PATH",
  parseArg(arg) {
    if (!arg) throw new RangeError("file: needs a path (file:PATH)");
    return { path: arg };
  },
  open(cfg, { readOnly }) {
    return new FileBackstore(cfg.path, cfg, readOnly);
  },
};
