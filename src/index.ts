// vhost-scsi-wasm public API.
export { SharedMemory, WASM_PAGE, STATIC_AREA_END, type SharedMemoryOptions } from "./memory/shared-memory.js";
export { RangeAllocator } from "./memory/range-allocator.js";
export {
  dataplaneModule, instantiateDataplane, createDataplane, DRAIN_SIGNAL, DRAIN_MORE, DRAIN_ERROR, DRAIN_USED, VQ_NO_HEAD,
  type DataplaneExports, type DataplaneInstance,
} from "./wasm/dataplane.js";
export * from "./virtio/ring.js";
export { DeviceQueue, VQ_FEAT_EVENT_IDX, VQ_FEAT_NOTIFY_ON_EMPTY, type RingAddresses, type QueueErrorInfo } from "./virtio/device-queue.js";
export { QUEUE_ERRORS, queueError, type QueueErrorName } from "./virtio/queue-error.js";
export { VhostError, Errno, type ErrnoCode } from "./vhost/errors.js";
export { VhostMemTable, vhostRegionsOf, VHOST_MAX_MEM_REGIONS, type VhostMemoryRegion } from "./vhost/mem-table.js";
export { GuestMemory, type GuestRegion, type GuestMemoryListener } from "./guest/guest-memory.js";
export { GuestVirtqueue, type GuestBuffer, type UsedElem, type GuestVirtqueueOptions } from "./guest/virtqueue.js";
export { MockSplitQueue, type RawDesc } from "./guest/mock-queue.js";
export { RingTestbed, type RingTestbedOptions } from "./testing/ring-testbed.js";
