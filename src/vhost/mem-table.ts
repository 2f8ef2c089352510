import type { DataplaneExports } from "../wasm/dataplane.js";
import type { SharedMemory } from "../memory/shared-memory.js";
import { VhostError } from "../sys/errors.js";
import type { GuestRegion } from "../guest/guest-memory.js";
import { VHOST_MAX_MEM_REGIONS } from "../wasm/abi.generated.js";
export { VHOST_MAX_MEM_REGIONS } from "../wasm/abi.generated.js";

/** struct vhost_memory_region (include/uapi/linux/vhost_types.h). */
export interface VhostMemoryRegion {
  guest_phys_addr: bigint;
  memory_size: bigint;
  userspace_addr: bigint;
  flags_padding?: bigint;
}

const U64_MAX = (1n << 64n) - 1n;

/**
 * The device's guest memory table (VHOST_SET_MEM_TABLE), kept twice in the device heap so a
 * new table can be written while workers still translate through the old one: set() fills the
 * idle copy and returns its address; the caller switches the queues over and flushes the workers.
 */
export class VhostMemTable {
  private readonly slots: [number, number];
  private active = -1;
  private current: readonly VhostMemoryRegion[] = [];

  constructor(
    private readonly shm: SharedMemory,
    private readonly dp: DataplaneExports,
  ) {
    const size = dp.memtable_size();
    this.slots = [shm.device.alloc(size, 16, "memory table"), shm.device.alloc(size, 16, "memory table")];
    for (const s of this.slots) dp.memtable_set_count(s, 0);
  }

  /** The regions in force, empty before the first set(). */
  get regions(): readonly VhostMemoryRegion[] {
    return this.current;
  }

  /** Whether a table was set. */
  get isSet(): boolean {
    return this.active >= 0;
  }

  /** Address of the table the queues translate through (an empty table before the first set). */
  get address(): number {
    return this.slots[Math.max(this.active, 0)];
  }

  /**
   * Checks regions as the kernel's vhost_set_memory() does, and more: a region must be
   * non-empty, must not wrap around 2^64 in either address space, and its userspace range
   * must lie in guest RAM (so no guest address reaches the device's own memory).
   */
  validate(regions: readonly VhostMemoryRegion[]): void {
    if (regions.length > VHOST_MAX_MEM_REGIONS) {
      throw new VhostError("E2BIG", `${regions.length} regions, at most ${VHOST_MAX_MEM_REGIONS}`);
    }
    regions.forEach((r, i) => {
      const { guest_phys_addr: gpa, memory_size: size, userspace_addr: ua } = r;
      if (size <= 0n || gpa < 0n || gpa + size - 1n > U64_MAX || ua < 0n || ua + size - 1n > U64_MAX) {
        throw new VhostError("EFAULT", `region ${i}: empty or wrapping range`);
      }
      if (ua > BigInt(Number.MAX_SAFE_INTEGER) || !this.shm.isGuestRange(Number(ua), Number(size))) {
        throw new VhostError("EFAULT", `region ${i}: userspace range ${ua}+${size} is not guest RAM`);
      }
    });
  }

  /** Validates and writes regions into the idle copy; returns its address. Nothing changes on error. */
  set(regions: readonly VhostMemoryRegion[]): number {
    this.validate(regions);
    const next = this.active === 0 ? 1 : 0;
    const mt = this.slots[next];
    regions.forEach((r, i) => this.dp.memtable_set_region(mt, i, r.guest_phys_addr, r.memory_size, r.userspace_addr));
    this.dp.memtable_set_count(mt, regions.length);
    this.active = next;
    this.current = regions.map((r) => ({ ...r }));
    return mt;
  }

  /** Releases both copies. */
  dispose(): void {
    for (const s of this.slots) this.shm.device.release(s);
  }
}

/** The vhost regions for guest RAM regions (what QEMU's memory listener sends). */
export function vhostRegionsOf(regions: readonly GuestRegion[]): VhostMemoryRegion[] {
  return regions.map((r) => ({
    guest_phys_addr: BigInt(r.gpa),
    memory_size: BigInt(r.size),
    userspace_addr: BigInt(r.hva),
  }));
}
