// A queued backstore as a device sees it: its submission queue in the device heap (the data
// plane posts request contexts there, assembly/ioring.ts) and the service that takes them. A SCSI
// LUN and a virtio-blk backend each hold one; neither builds it.
import type { DataplaneExports } from "../wasm/dataplane.js";
import type { SharedMemory } from "../memory/shared-memory.js";
import { processPollTable } from "../sys/eventfd.js";
import type { QueuedBackstore } from "./backstore.js";
import { BackstoreService, type WorkerServedBackstore } from "./service.js";

/** Cells of a submission queue (requests of all request queues waiting for the backstore). */
const SQ_ENTRIES = 1024;

export class BackstoreQueue {
  /** The submission queue's address. */
  readonly sq: number;
  private readonly service: BackstoreService;

  constructor(
    private readonly shm: SharedMemory,
    dp: DataplaneExports,
    backstore: QueuedBackstore,
    label: string,
  ) {
    this.sq = shm.device.alloc(dp.io_sq_size(SQ_ENTRIES), 16, `${label} submission queue`);
    dp.io_sq_init(this.sq, SQ_ENTRIES);
    this.service = new BackstoreService(backstore, this.sq, { memory: shm.memory, pollTable: processPollTable().sab });
  }

  /** When the vhost workers are to serve the backstore: the queue and how to open it there. */
  get workerServed(): WorkerServedBackstore | undefined {
    return this.service.workerServed;
  }

  /** CPU time its dedicated I/O threads used so far, ms (undefined: none, or not known). */
  ioThreadCpu(): Promise<{ user: number; system: number } | undefined> {
    return this.service.ioThreadCpu();
  }

  /** Stops serving, closes the backstore and frees the queue (nothing may be queued or in flight). */
  async dispose(): Promise<void> {
    await this.service.stop();
    this.shm.device.release(this.sq);
  }
}
