import { RangeAllocator } from "./range-allocator.js";

/** WebAssembly page size. */
export const WASM_PAGE = 65536;
/** wasm32 limit: 65536 pages, 4 GiB. */
export const WASM_MAX_PAGES = 65536;
/** The first page holds the data plane's static data (checked against its static_end()). */
export const STATIC_AREA_END = 1 * WASM_PAGE;
/**
 * Where the relocated data plane build (dist/dataplane-reloc.wasm) keeps its static data: high
 * enough that a module sharing the memory and owning its low part (v86, whose own data ends
 * near 9.2 MiB) keeps it. See `SharedMemory.wrap`.
 */
export const RELOCATED_STATIC_BASE = 16 << 20;

export interface SharedMemoryOptions {
  /** Bytes for the device-private heap: queue structs, memory tables, request tables, RAM disks. */
  deviceBytes: number;
  /** Bytes for guest RAM. */
  guestBytes: number;
}

/** Where the zones of a memory shared with another module lie (`SharedMemory.wrap`). */
export interface SharedMemoryLayout {
  /** The data plane's static data starts here (RELOCATED_STATIC_BASE for the relocated build). */
  staticBase: number;
  /** The device-private heap, [deviceStart, deviceEnd); guest RAM lies at deviceEnd and above. */
  deviceStart: number;
  deviceEnd: number;
}

/**
 * The one shared WebAssembly.Memory every thread maps. Layout:
 * `[ static data | device-private heap | guest RAM ]`. The device heap is never inside a guest
 * memory region, so no guest address can reach it; the control plane checks every region
 * and ring address against `isGuestRange`. A memory shared with another module (an emulator
 * whose own data sits low in it) is wrapped with an explicit layout instead.
 */
export class SharedMemory {
  readonly buffer: SharedArrayBuffer;
  readonly bytes: Uint8Array;
  readonly view: DataView;
  /** Allocator for the device-private heap. */
  readonly device: RangeAllocator;
  /** Allocator for guest RAM (offsets in the shared memory, the HVA analogue). */
  readonly guest: RangeAllocator;

  /** Where the data plane's static data begins: 0 for the default build, else the relocated build's base. */
  readonly staticBase: number;

  private constructor(
    readonly memory: WebAssembly.Memory,
    readonly deviceEnd: number,
    layout?: SharedMemoryLayout,
  ) {
    this.buffer = memory.buffer as unknown as SharedArrayBuffer;
    this.bytes = new Uint8Array(this.buffer);
    this.view = new DataView(this.buffer);
    this.staticBase = layout?.staticBase ?? 0;
    this.device = new RangeAllocator(layout?.deviceStart ?? STATIC_AREA_END, deviceEnd);
    this.guest = new RangeAllocator(deviceEnd, this.buffer.byteLength);
  }

  /** Creates the memory sized once, initial = maximum (it never grows). */
  static create(opts: SharedMemoryOptions): SharedMemory {
    const pages = (n: number) => Math.ceil(n / WASM_PAGE);
    const devicePages = pages(opts.deviceBytes);
    const total = 1 + devicePages + pages(opts.guestBytes);
    if (total > WASM_MAX_PAGES) {
      throw new RangeError(`device ${opts.deviceBytes} + guest ${opts.guestBytes} bytes exceed the 4 GiB of a wasm32 memory`);
    }
    const memory = new WebAssembly.Memory({ initial: total, maximum: total, shared: true });
    return new SharedMemory(memory, (1 + devicePages) * WASM_PAGE);
  }

  /** Re-wraps a memory received from another thread (the layout travels with it). */
  static attach(memory: WebAssembly.Memory, deviceEnd: number): SharedMemory {
    return new SharedMemory(memory, deviceEnd);
  }

  /**
   * A memory another module owns part of (an emulator's memory, its guest RAM above deviceEnd):
   * the relocated data plane keeps its static data at `staticBase`, its heap in [deviceStart,
   * deviceEnd). The memory must not grow after this (views are taken now); guest RAM regions are
   * then placed with GuestMemory.addExternalRegion().
   */
  static wrap(memory: WebAssembly.Memory, layout: SharedMemoryLayout): SharedMemory {
    const size = memory.buffer.byteLength;
    if (!(layout.staticBase + STATIC_AREA_END <= layout.deviceStart && layout.deviceStart < layout.deviceEnd && layout.deviceEnd <= size)) {
      throw new RangeError(`layout static ${layout.staticBase}, device [${layout.deviceStart}, ${layout.deviceEnd}) does not fit a ${size}-byte memory`);
    }
    return new SharedMemory(memory, layout.deviceEnd, layout);
  }

  /** Whether [offset, offset + len) lies entirely in the guest RAM zone. */
  isGuestRange(offset: number, len: number): boolean {
    return Number.isSafeInteger(offset) && Number.isSafeInteger(len) && len >= 0 && offset >= this.deviceEnd && offset + len <= this.buffer.byteLength;
  }
}
