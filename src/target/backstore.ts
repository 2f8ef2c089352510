import { openSync, closeSync, fstatSync, ftruncateSync, constants } from "node:fs";
import type { SharedMemory } from "../memory/shared-memory.js";

/** Backstore kinds, numbered as the data plane's BS_* constants. */
export const BackstoreKind = { ram: 0, null: 1, file: 2 } as const;
export type BackstoreName = keyof typeof BackstoreKind;

/** Where a LUN's blocks live. */
export interface Backstore {
  readonly kind: BackstoreName;
  /** Capacity in bytes. */
  readonly size: number;
  /** RAM: offset of the blocks in the device heap; otherwise 0. */
  readonly ram: number;
  /** File: an open descriptor (shared by all threads of the process); otherwise -1. */
  readonly fd: number;
  readonly path?: string;
  /** Grows or shrinks the backstore to size bytes (a capacity change). */
  resize(size: number): Backstore;
  dispose(): void;
}

/** Blocks in the device-private heap of the shared memory, copied by the data plane. */
export class RamBackstore implements Backstore {
  readonly kind = "ram";
  readonly fd = -1;
  readonly ram: number;

  constructor(private readonly shm: SharedMemory, readonly size: number) {
    this.ram = shm.device.alloc(size, 4096, "ram backstore");
    shm.bytes.fill(0, this.ram, this.ram + size);
  }

  resize(size: number): Backstore {
    const next = new RamBackstore(this.shm, size);
    this.shm.bytes.copyWithin(next.ram, this.ram, this.ram + Math.min(size, this.size));
    return next;
  }

  dispose(): void {
    this.shm.device.release(this.ram);
  }
}

/** No data at all: reads return zeroes, writes are accepted and dropped. */
export class NullBackstore implements Backstore {
  readonly kind = "null";
  readonly fd = -1;
  readonly ram = 0;
  constructor(readonly size: number) {}
  resize(size: number): Backstore {
    return new NullBackstore(size);
  }
  dispose(): void {}
}

/** A file, read and written with Node fs calls straight into the guest's buffers. */
export class FileBackstore implements Backstore {
  readonly kind = "file";
  readonly ram = 0;
  readonly fd: number;
  readonly size: number;

  /** Opens (creating if needed) path; size defaults to the file's size, and extends it if larger. */
  constructor(readonly path: string, size?: number, readOnly = false, fd?: number) {
    this.fd = fd ?? openSync(path, readOnly ? constants.O_RDONLY : constants.O_RDWR | constants.O_CREAT, 0o644);
    const have = fstatSync(this.fd).size;
    this.size = size ?? have;
    if (this.size > have && !readOnly) ftruncateSync(this.fd, this.size);
    if (!(this.size > 0)) throw new RangeError(`file backstore ${path} is empty; give a size`);
  }

  resize(size: number): Backstore {
    ftruncateSync(this.fd, size);
    return new FileBackstore(this.path, size, false, this.fd);
  }

  dispose(): void {
    closeSync(this.fd);
  }
}
