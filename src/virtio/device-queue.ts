import type { DataplaneExports } from "../wasm/dataplane.js";
import type { SharedMemory } from "../memory/shared-memory.js";
import { queueError, type QueueErrorName } from "./queue-error.js";
import type { ErrnoCode } from "../sys/errors.js";
export { VQ_FEAT_EVENT_IDX, VQ_FEAT_NOTIFY_ON_EMPTY } from "../wasm/abi.generated.js";

/** Where one ring lives: shared-memory offsets (the vhost "userspace addresses"). */
export interface RingAddresses {
  num: number;
  desc: number;
  avail: number;
  used: number;
}

/** A queue's recorded error. */
export interface QueueErrorInfo {
  code: number;
  name: QueueErrorName;
  errno: ErrnoCode;
  text: string;
  /** The index involved (head, descriptor or avail->idx value). */
  info: number;
  /** Errors recorded since the queue was set up. */
  count: number;
}

/**
 * The control plane's handle on one VirtQueue struct in the device heap. It never touches the
 * struct's layout itself: the data plane's accessors do.
 */
export class DeviceQueue {
  readonly ptr: number;
  /** Queue size set by setup(); 0 before. */
  num = 0;

  constructor(
    private readonly shm: SharedMemory,
    private readonly dp: DataplaneExports,
  ) {
    const size = dp.vq_size();
    this.ptr = shm.device.alloc(size, 16, "virtqueue");
    shm.bytes.fill(0, this.ptr, this.ptr + size);
  }

  /** Configures the stopped queue over checked ring addresses and a memory table. */
  setup(ring: RingAddresses, features: number, memtable: number): void {
    this.num = ring.num;
    this.dp.vq_setup(this.ptr, ring.num, features, ring.desc, ring.avail, ring.used, memtable);
  }

  setMemTable(memtable: number): void {
    this.dp.vq_set_memtable(this.ptr, memtable);
  }

  /** VHOST_SET_VRING_BASE. */
  setBase(base: number): void {
    this.dp.vq_set_base(this.ptr, base);
  }

  get lastAvailIdx(): number {
    return this.dp.vq_last_avail_idx(this.ptr) >>> 0;
  }

  get lastUsedIdx(): number {
    return this.dp.vq_last_used_idx(this.ptr) >>> 0;
  }

  get inflight(): number {
    return this.dp.vq_inflight(this.ptr) >>> 0;
  }

  /** Counters: chains popped, used entries added, signals requested. */
  get stats(): { popped: number; completed: number; signals: number } {
    return {
      popped: Number(this.dp.vq_popped(this.ptr)),
      completed: Number(this.dp.vq_completed(this.ptr)),
      signals: Number(this.dp.vq_signals(this.ptr)),
    };
  }

  /**
   * The queue's current error, or undefined: set when the data plane records one, cleared once
   * the queue serves a well-formed chain again (or by clearError()).
   */
  get error(): QueueErrorInfo | undefined {
    const code = this.dp.vq_error(this.ptr) >>> 0;
    return code === 0 ? undefined : this.describe(code);
  }

  /** The most recent error ever recorded on this queue (stays after the queue recovers), or undefined. */
  get lastError(): QueueErrorInfo | undefined {
    const code = this.dp.vq_last_error(this.ptr) >>> 0;
    return code === 0 ? undefined : this.describe(code);
  }

  /** Errors recorded since the queue was set up. */
  get errorCount(): number {
    return this.dp.vq_error_count(this.ptr) >>> 0;
  }

  private describe(code: number): QueueErrorInfo {
    return { ...queueError(code), info: this.dp.vq_error_info(this.ptr) >>> 0, count: this.errorCount };
  }

  clearError(): void {
    this.dp.vq_clear_error(this.ptr);
  }

  dispose(): void {
    this.shm.device.release(this.ptr);
  }
}
