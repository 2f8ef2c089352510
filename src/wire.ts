// vhost-scsi-wasm/wire: the bytes on the wire, for code that speaks them itself: the vhost
// ioctls' numbers and argument layouts (linux/vhost.h), virtio's status bits, feature bits and
// ring flags (VIRTIO 1.2), virtio-scsi's structures, codes and sizes (5.6), virtio-blk's (5.2), and SCSI: CDB
// builders, operation codes, status values and sense decoding (SPC-5, SBC-4).
export * from "./vhost/uapi.js";
export {
  VIRTIO_CONFIG_S_ACKNOWLEDGE,
  VIRTIO_CONFIG_S_DRIVER,
  VIRTIO_CONFIG_S_DRIVER_OK,
  VIRTIO_CONFIG_S_FEATURES_OK,
  VIRTIO_CONFIG_S_NEEDS_RESET,
  VIRTIO_CONFIG_S_FAILED,
} from "./virtio/transport.js";
export {
  VIRTIO_F_NOTIFY_ON_EMPTY,
  VIRTIO_F_ANY_LAYOUT,
  VIRTIO_RING_F_INDIRECT_DESC,
  VIRTIO_RING_F_EVENT_IDX,
  VIRTIO_F_VERSION_1,
  VIRTQUEUE_MAX_SIZE,
  VRING_DESC_F_NEXT,
  VRING_DESC_F_WRITE,
  VRING_DESC_F_INDIRECT,
  VRING_USED_F_NO_NOTIFY,
  VRING_AVAIL_F_NO_INTERRUPT,
} from "./virtio/ring.js";
export * from "./virtio/virtio-scsi.js";
export * from "./virtio/virtio-blk.js";
export * from "./guest/scsi-commands.js";
export * from "./guest/sense.js";
