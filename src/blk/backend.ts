// A block backend: a backstore presented as a virtio-blk disk (QEMU's -blockdev with the
// virtio-blk device's properties). What /dev/vhost-blk's VHOST_BLK_SET_BACKEND attaches, by fd.
import type { DataplaneExports } from "../wasm/dataplane.js";
import type { SharedMemory } from "../memory/shared-memory.js";
import type { Backstore } from "../backstore/backstore.js";
import { BackstoreQueue } from "../backstore/queue.js";
import type { WorkerServedBackstore } from "../backstore/service.js";
import { BS_NULL, BS_QUEUED, BS_RAM, CTX_IOV, VIRTIO_BLK_ID_BYTES } from "../wasm/abi.generated.js";

/** How the disk presents itself; everything has a default. */
export interface BlkBackendOptions {
  /** Logical block size: 512 (default, or the backstore's minimum I/O) or 4096. */
  blockSize?: 512 | 4096;
  readOnly?: boolean;
  /** The GET_ID string (at most 20 bytes). Default: the backstore's name. */
  serial?: string;
  /** The volatile write cache's initial state (the config space's writeback). Default true. */
  writeCache?: boolean;
}

/** Largest DISCARD and WRITE_ZEROES segment, in 512-byte sectors (64 MiB). */
const MAX_DWZ_SECTORS = (64 << 20) >> 9;
/** Largest segment (size_max) where the backstore names no transfer limit. */
const SEGMENT_MAX = 1 << 20;

export class BlkBackend {
  readonly blockSize: number;
  readonly readOnly: boolean;
  readonly writeCache: boolean;
  /** Capacity in 512-byte sectors. */
  readonly sectors: number;
  /** DISCARD is served (the backstore deallocates; RAM and null always). */
  readonly discard: boolean;
  readonly maxDiscardSectors = MAX_DWZ_SECTORS;
  readonly maxWriteZeroesSectors = MAX_DWZ_SECTORS;
  /** Segments per request (seg_max) and bytes per segment (size_max): a request stays within what a context holds and the backstore takes. */
  readonly segMax: number;
  readonly sizeMax: number;
  /** GET_ID's bytes, zero padded. */
  readonly id: Uint8Array;
  /** The data plane's backing kind (BS_*) and where: the blocks (RAM) or the submission queue. */
  readonly backing: number;
  readonly at: number;
  private readonly queue: BackstoreQueue | undefined;
  /** The device whose vrings it serves (set by that device). */
  boundTo: unknown;

  constructor(
    shm: SharedMemory,
    dp: DataplaneExports,
    readonly backstore: Backstore,
    options: BlkBackendOptions = {},
  ) {
    const minBlock = backstore.kind === "queued" ? (backstore.blockSize ?? 1) : 1;
    const bs = options.blockSize ?? (minBlock > 512 ? 4096 : 512);
    if (bs !== 512 && bs !== 4096) throw new RangeError(`block size ${bs}: 512 or 4096`);
    if (bs % minBlock !== 0) throw new RangeError(`backstore ${backstore.name} needs I/O in multiples of ${minBlock} bytes; block size ${bs} is not`);
    if (backstore.size % bs !== 0 || backstore.size < bs) throw new RangeError(`backstore size ${backstore.size} is not a positive multiple of ${bs}`);
    const serial = new TextEncoder().encode(options.serial ?? backstore.name);
    if (serial.length > VIRTIO_BLK_ID_BYTES) throw new RangeError(`serial of ${serial.length} bytes: at most ${VIRTIO_BLK_ID_BYTES}`);
    this.id = new Uint8Array(VIRTIO_BLK_ID_BYTES);
    this.id.set(serial);
    this.blockSize = bs;
    this.readOnly = (options.readOnly ?? false) || backstore.readOnly;
    this.writeCache = options.writeCache ?? true;
    this.sectors = backstore.size / 512;
    // Header and status take two of a context's iovecs.
    this.segMax = CTX_IOV - 2;
    if (backstore.kind === "queued") {
      this.discard = backstore.features.discard;
      this.sizeMax = backstore.maxTransfer ? Math.max(4096, Math.floor(backstore.maxTransfer / this.segMax / 4096) * 4096) : SEGMENT_MAX;
      this.queue = new BackstoreQueue(shm, dp, backstore, `blk ${backstore.name}`);
      this.backing = BS_QUEUED;
      this.at = this.queue.sq;
    } else {
      this.discard = true;
      this.sizeMax = SEGMENT_MAX;
      this.backing = backstore.kind === "ram" ? BS_RAM : BS_NULL;
      this.at = backstore.kind === "ram" ? backstore.ram : 0;
    }
  }

  /** When the vhost workers are to serve the backstore: its queue and how to open it there. */
  get workerServed(): WorkerServedBackstore | undefined {
    return this.queue?.workerServed;
  }

  /** CPU time the backstore's dedicated I/O threads used so far, ms (undefined: none, or not known). */
  async ioThreadCpu(): Promise<{ user: number; system: number } | undefined> {
    return this.queue?.ioThreadCpu();
  }

  /** Stops serving and closes the backstore (no device may use it any more). */
  async close(): Promise<void> {
    if (this.queue) await this.queue.dispose();
    else await this.backstore.close();
  }
}
