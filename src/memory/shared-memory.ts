import { RangeAllocator } from "./range-allocator.js";

/** WebAssembly page size. */
export const WASM_PAGE = 65536;
/** wasm32 limit: 65536 pages, 4 GiB. */
export const WASM_MAX_PAGES = 65536;
/** The first page holds the data plane's static data (checked against its static_end()). */
export const STATIC_AREA_END = WASM_PAGE;

export interface SharedMemoryOptions {
  /** Bytes for the device-private heap: queue structs, memory tables, request tables, RAM disks. */
  deviceBytes: number;
  /** Bytes for guest RAM. */
  guestBytes: number;
}

/**
 * The one shared WebAssembly.Memory every thread maps. Layout:
 * `[ static data | device-private heap | guest RAM ]`. The device heap is never inside a guest
 * memory region, so no guest address can reach it; the control plane checks every region
 * and ring address against `isGuestRange`.
 */
export class SharedMemory {
  readonly buffer: SharedArrayBuffer;
  readonly bytes: Uint8Array;
  readonly view: DataView;
  /** Allocator for the device-private heap. */
  readonly device: RangeAllocator;
  /** Allocator for guest RAM (offsets in the shared memory, the HVA analogue). */
  readonly guest: RangeAllocator;

  private constructor(readonly memory: WebAssembly.Memory, readonly deviceEnd: number) {
    this.buffer = memory.buffer as unknown as SharedArrayBuffer;
    this.bytes = new Uint8Array(this.buffer);
    this.view = new DataView(this.buffer);
    this.device = new RangeAllocator(STATIC_AREA_END, deviceEnd);
    this.guest = new RangeAllocator(deviceEnd, this.buffer.byteLength);
  }

  /** Creates the memory sized once, initial = maximum (it never grows). */
  static create(opts: SharedMemoryOptions): SharedMemory {
    const pages = (n: number) => Math.ceil(n / WASM_PAGE);
    const devicePages = pages(opts.deviceBytes);
    const total = 1 + devicePages + pages(opts.guestBytes);
    if (total > WASM_MAX_PAGES) {
      throw new RangeError(
        `device ${opts.deviceBytes} + guest ${opts.guestBytes} bytes exceed the 4 GiB of a wasm32 memory`,
      );
    }
    const memory = new WebAssembly.Memory({ initial: total, maximum: total, shared: true });
    return new SharedMemory(memory, (1 + devicePages) * WASM_PAGE);
  }

  /** Re-wraps a memory received from another thread (the layout travels with it). */
  static attach(memory: WebAssembly.Memory, deviceEnd: number): SharedMemory {
    return new SharedMemory(memory, deviceEnd);
  }

  /** Whether [offset, offset + len) lies entirely in the guest RAM zone. */
  isGuestRange(offset: number, len: number): boolean {
    return (
      Number.isSafeInteger(offset) && Number.isSafeInteger(len) && len >= 0 &&
      offset >= this.deviceEnd && offset + len <= this.buffer.byteLength
    );
  }
}
