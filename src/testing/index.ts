// vhost-scsi-wasm/testing: what tests and benchmarks drive the data plane with. A guest and a
// device queue on one ring (RingTestbed), a mock driver that writes any descriptor a hostile
// guest could (MockSplitQueue), a batch of SCSI requests on a ring (ScsiBench), and the
// control plane's handles on device-side queues and memory tables.
export { RingTestbed, type RingTestbedOptions } from "./ring-testbed.js";
export { MockSplitQueue, type RawDesc } from "./mock-queue.js";
export { ScsiBench } from "./scsi-bed.js";
export { DeviceQueue, type RingAddresses, type QueueErrorInfo } from "../virtio/device-queue.js";
export { VhostMemTable } from "../vhost/mem-table.js";
export { RecordingBackstore, type RecordedOp } from "./recording-backstore.js";
export { SplitRingView, vringDescSize, vringAvailSize, vringUsedSize, vringNeedEvent, isValidQueueSize } from "../virtio/ring.js";
