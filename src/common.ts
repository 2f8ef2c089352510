// What both entry points give, Node's (index.ts) and a browser's (browser.ts): what an embedder
// builds a device and a guest with, on either platform. The bytes on the wire (vhost ioctl
// numbers and layouts, virtio and virtio-scsi constants, SCSI CDB builders and sense decoding)
// are `vhost-scsi-wasm/wire`; the raw data-plane interface is `vhost-scsi-wasm/abi`; mocks and
// harnesses for tests are `vhost-scsi-wasm/testing`; a device's transport carried to another
// thread is `vhost-scsi-wasm/transport`; the v86 embedding is `vhost-scsi-wasm/v86`.

// The whole stack wired the way a user would wire it by hand.
export {
  createTestbed,
  createBlkTestbed,
  addInitiator,
  type Testbed,
  type TestbedOptions,
  type BlkTestbed,
  type BlkTestbedOptions,
  type Initiator,
} from "./testbed.js";

// The shared memory that holds the device's structures and guest RAM.
export { SharedMemory, type SharedMemoryOptions, type SharedMemoryLayout } from "./memory/shared-memory.js";

// The vhost control plane: /dev/vhost-scsi, its ioctls (the uapi header), eventfds, workers.
export { VhostProcess, type VhostProcessOptions } from "./vhost/process.js";
export { VhostScsi, VHOST_SCSI_MAX_IO_VQ, VHOST_SCSI_VQ_CTL, VHOST_SCSI_VQ_EVT, VHOST_SCSI_VQ_IO, type VirtioScsiEventRecord } from "./vhost/vhost-scsi.js";
export { VhostDevice, type VhostContext, type VhostDeviceType } from "./vhost/vhost-device.js";
export { VhostBlk, VHOST_BLK_MAX_VQ } from "./vhost/vhost-blk.js";
export { BlkBackend, type BlkBackendOptions } from "./blk/backend.js";
export { vhostRegionsOf, VHOST_MAX_MEM_REGIONS, type VhostMemoryRegion } from "./vhost/mem-table.js";
export { EventFd, EFD_CLOEXEC, EFD_NONBLOCK, EFD_SEMAPHORE, type EventFdHandle } from "./sys/eventfd.js";
export { pinThread, parseCpuList, allowedCpus } from "./sys/affinity.js";
export { LocalWorker, type LocalWorkerOptions } from "./worker/local-worker.js";
export { POLL_IDLE, POLL_MORE, POLL_WAITING, type PollResult, type VringBinding, type VringKind } from "./worker/vring-server.js";
export type { VhostWorker } from "./worker/worker.js";

// Errors: errno values as the kernel returns them, and what a queue error means.
export { VhostError, Errno, type ErrnoCode } from "./sys/errors.js";
export { QUEUE_ERRORS, queueError, type QueueErrorName } from "./virtio/queue-error.js";

// The QEMU-side device model and the virtio transport a driver sees.
export { VhostScsiDevice, type VhostScsiDeviceOptions, type QueueErrorEvent } from "./device/vhost-scsi-device.js";
export { VhostBlkDevice, type VhostBlkDeviceOptions } from "./device/vhost-blk-device.js";
export { DeviceStateError, type DeviceState, type VringState } from "./device/device-state.js";
export type { ScsiDeviceState, SavedLun, SavedReservations } from "./device/vhost-scsi-device.js";
export { VhostVirtioDevice, type VhostVirtioDeviceOptions, type VhostVirtioDeviceType } from "./device/vhost-virtio-device.js";
export {
  migrate,
  MigrationDestination,
  type MigrationMessage,
  type MigrationOptions,
  type MigrationRound,
  type MigrationSource,
  type MigrationStats,
} from "./migration/migration.js";
export type { QueueConfig, VirtioTransport } from "./virtio/transport.js";

// The target: WWPN, TPGs, LUNs.
export { TargetRegistry } from "./target/registry.js";
export { ScsiTarget, generateWwpn } from "./target/target.js";
export { Tpg, VHOST_SCSI_MAX_LUN, VHOST_SCSI_MAX_TARGET, type LunConfig, type TpgListener } from "./target/tpg.js";
export {
  Lun,
  UA_POWER_ON,
  UA_NEXUS_LOSS,
  UA_LUN_RESET,
  UA_CAPACITY_CHANGED,
  UA_LUNS_CHANGED,
  type LunOptions,
  type LunState,
  type LunReservations,
} from "./target/lun.js";

// Backstores: the seam a backstore implements, the registry, the built-in types.
export {
  RamBackstore,
  NullBackstore,
  defaultIoThreads,
  registerBackstore,
  backstoreType,
  backstoreTypes,
  parseBackstoreArg,
  openBackstore,
  openBackstoreSync,
  type Backstore,
  type QueuedBackstore,
  type ThreadedBackstore,
  type BackstoreFeatures,
  type BackstoreConfig,
  type BackstoreConfigs,
  type BackstoreType,
  type IoDone,
} from "./backstore/backstore.js";
export { BS_OP_READ, BS_OP_WRITE, BS_OP_FLUSH, BS_OP_WRITE_ZEROES, BS_OP_DISCARD, type BackstoreIo, type BackstoreOp } from "./backstore/ring.js";

// The guest side: RAM, the virtqueue and virtio-scsi drivers, SCSI commands and sense.
export { GuestMemory, type GuestRegion, type GuestMemoryListener } from "./guest/guest-memory.js";
export { GuestVirtqueue, type GuestBuffer, type UsedElem, type GuestVirtqueueOptions } from "./guest/virtqueue.js";
export { VirtioScsiDriver, type ScsiCommand, type ScsiResult, type ScsiEvent, type VirtioScsiDriverOptions } from "./guest/scsi-driver.js";
export { VirtioBlkDriver, type BlkRequest, type BlkResult, type VirtioBlkDriverOptions } from "./guest/blk-driver.js";
export { VirtioDriver } from "./guest/virtio-driver.js";
export { scanTarget, reportLunNumbers, commandRetryingUA, type ScannedDisk } from "./guest/scan.js";

// Types the API above names (in property and parameter types), for reading and annotating.
export type { PollTable } from "./sys/eventfd.js";
export type { RangeAllocator, Allocation } from "./memory/range-allocator.js";
export type { DataplaneExports, DataplaneInstance } from "./wasm/dataplane.js";
export type { SplitRingView } from "./virtio/ring.js";
export type { DeviceQueue, QueueErrorInfo, RingAddresses } from "./virtio/device-queue.js";
export type { VringAttachment } from "./worker/worker.js";
export type { WorkerServedBackstore } from "./backstore/service.js";
export type { Pending } from "./guest/virtio-driver.js";
