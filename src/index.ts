// vhost-scsi-wasm public API.

// The whole stack wired the way a user would wire it by hand.
export { createTestbed, type Testbed, type TestbedOptions } from "./testbed.js";

// Memory and the data plane.
export { SharedMemory, WASM_PAGE, STATIC_AREA_END, type SharedMemoryOptions } from "./memory/shared-memory.js";
export { RangeAllocator, type Allocation } from "./memory/range-allocator.js";
export {
  dataplaneModule, instantiateDataplane, createDataplane, DRAIN_SIGNAL, DRAIN_MORE, DRAIN_ERROR, DRAIN_USED, DRAIN_STALLED, VQ_NO_HEAD,
  type DataplaneExports, type DataplaneInstance,
} from "./wasm/dataplane.js";

// virtio rings and transport.
export * from "./virtio/ring.js";
export * from "./virtio/transport.js";
export { DeviceQueue, VQ_FEAT_EVENT_IDX, VQ_FEAT_NOTIFY_ON_EMPTY, type RingAddresses, type QueueErrorInfo } from "./virtio/device-queue.js";
export { QUEUE_ERRORS, queueError, type QueueErrorName } from "./virtio/queue-error.js";

// The vhost control plane: /dev/vhost-scsi, ioctls, eventfds, workers.
export { EventFd, PollTable, processPollTable, EFD_CLOEXEC, EFD_NONBLOCK, EFD_SEMAPHORE, type EventFdHandle } from "./eventfd.js";
export { VhostError, Errno, type ErrnoCode } from "./vhost/errors.js";
export * from "./vhost/uapi.js";
export { VhostMemTable, vhostRegionsOf, VHOST_MAX_MEM_REGIONS, type VhostMemoryRegion } from "./vhost/mem-table.js";
export { VhostScsi, VHOST_SCSI_MAX_IO_VQ, VHOST_SCSI_VQ_CTL, VHOST_SCSI_VQ_EVT, VHOST_SCSI_VQ_IO, type VhostContext } from "./vhost/vhost-scsi.js";
export { VhostProcess, type VhostProcessOptions } from "./vhost/process.js";
export { LocalWorker, type LocalWorkerOptions } from "./vhost/local-worker.js";
export type { VhostWorker, VringAttachment } from "./vhost/worker.js";
export { ScsiVringServer, VHOST_SCSI_WEIGHT, POLL_IDLE, POLL_MORE, POLL_WAITING, type PollResult, type VringBinding, type VringKind } from "./worker/scsi-vrings.js";

// The QEMU-side device model.
export { VhostScsiDevice, type VhostScsiDeviceOptions, type QueueErrorEvent } from "./device/vhost-scsi-device.js";

// The target: WWPN, TPGs, LUNs, backstores.
export { TargetRegistry } from "./target/registry.js";
export { ScsiTarget, generateWwpn } from "./target/target.js";
export { Tpg, VHOST_SCSI_MAX_LUN, VHOST_SCSI_MAX_TARGET, type LunConfig, type TpgListener } from "./target/tpg.js";
export { Lun, type LunOptions } from "./target/lun.js";

// Backstores: the seam, the registry, the built-in types.
export {
  RamBackstore, NullBackstore, registerBackstore, backstoreType, backstoreTypes, parseBackstoreArg, openBackstore, openBackstoreSync,
  type Backstore, type QueuedBackstore, type BackstoreFeatures, type BackstoreConfig, type BackstoreConfigs, type BackstoreType, type IoDone,
} from "./backstore/index.js";
export { FileBackstore, nodeFileOps, defaultIoThreads, type FileOps, type FileConfig } from "./backstore/file.js";
export {
  BS_OP_READ, BS_OP_WRITE, BS_OP_FLUSH, BS_OP_WRITE_ZEROES, BS_OP_DISCARD, type BackstoreIo, type BackstoreOp,
} from "./backstore/ring.js";

// SCSI and virtio-scsi.
export * from "./scsi/virtio-scsi.js";
export * from "./scsi/commands.js";
export * from "./scsi/sense.js";

// The guest side.
export { GuestMemory, type GuestRegion, type GuestMemoryListener } from "./guest/guest-memory.js";
export { GuestVirtqueue, type GuestBuffer, type UsedElem, type GuestVirtqueueOptions } from "./guest/virtqueue.js";
export { MockSplitQueue, type RawDesc } from "./guest/mock-queue.js";
export { VirtioScsiDriver, type ScsiCommand, type ScsiResult, type ScsiEvent, type VirtioScsiDriverOptions } from "./guest/scsi-driver.js";
export { scanTarget, reportLunNumbers, commandRetryingUA, type ScannedDisk } from "./guest/scan.js";
export { RingTestbed, type RingTestbedOptions } from "./testing/ring-testbed.js";
