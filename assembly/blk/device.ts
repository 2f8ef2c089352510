// A virtio-blk device as the data plane sees it: where its blocks live (ioring.ts's BS_*), its
// capacity and limits, and what the driver negotiated. The control plane fills it
// (src/vhost/vhost-blk.ts); the request queue handler reads it (request.ts).
import { VIRTIO_BLK_ID_BYTES } from "./constants";

/** BlkDevice.flags. */
export const BLK_F_READ_ONLY: u32 = 1; // writes fail (VIRTIO_BLK_F_RO offered)
export const BLK_F_WRITEBACK: u32 = 2; // volatile write cache on: a write need not be durable before its status
export const BLK_F_DISCARD: u32 = 4; // DISCARD offered and served
export const BLK_F_WRITE_ZEROES: u32 = 8; // WRITE_ZEROES offered and served

@unmanaged export class BlkDevice {
  backing: u32;
  /** BLK_F_*, changed atomically while the device runs (the driver toggles writeback). */
  flags: u32;
  /** Capacity in 512-byte sectors. */
  capacity: u64;
  /** BS_RAM: the blocks in the device heap; BS_QUEUED: the backstore's submission queue. */
  ram: u32;
  sq: u32;
  /** log2 of the logical block size: requests must start and end on its boundaries. */
  block_shift: u32;
  /** Largest DISCARD and WRITE_ZEROES segment, sectors (the config space's max_*_sectors). */
  max_discard_sectors: u32;
  max_write_zeroes_sectors: u32;
  /** Requests handed to the backstore and not answered yet. */
  inflight: u32;
  _pad0: u32;
  _pad1: u32;
}

/** The GET_ID string (VIRTIO_BLK_ID_BYTES, zero padded), after the struct. */
@inline export function blk_id(d: BlkDevice): usize {
  return changetype<usize>(d) + offsetof<BlkDevice>();
}

export function blk_device_struct_size(): usize {
  return offsetof<BlkDevice>() + VIRTIO_BLK_ID_BYTES;
}

@inline export function blk_flags(d: BlkDevice): u32 {
  return atomic.load<u32>(changetype<usize>(d) + offsetof<BlkDevice>("flags"));
}
