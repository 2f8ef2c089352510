// Ring layout constants and the data plane's error codes.
// Names follow include/uapi/linux/virtio_ring.h and virtio_config.h.

/** VIRTIO 1.2, 2.7.5: this marks a buffer as continuing via the next field. */
export const VRING_DESC_F_NEXT: u16 = 1;
/** VIRTIO 1.2, 2.7.5: this marks a buffer as device write-only (otherwise device read-only). */
export const VRING_DESC_F_WRITE: u16 = 2;
/** VIRTIO 1.2, 2.7.5.3: the buffer contains a table of buffer descriptors. */
export const VRING_DESC_F_INDIRECT: u16 = 4;
/** VIRTIO 1.2, 2.7.10: the device asks the driver not to kick. */
export const VRING_USED_F_NO_NOTIFY: u16 = 1;
/** VIRTIO 1.2, 2.7.7: the driver asks the device not to interrupt. */
export const VRING_AVAIL_F_NO_INTERRUPT: u16 = 1;

/** Size of one split-ring descriptor (struct virtq_desc). */
export const DESC_SIZE: u32 = 16;
/** Offset of ring[] in struct virtq_avail and struct virtq_used (after flags and idx). */
export const RING_HEADER_SIZE: u32 = 4;
/** Size of one struct virtq_used_elem. */
export const USED_ELEM_SIZE: u32 = 8;

/** Most iovecs one chain may translate to (the kernel's UIO_MAXIOV). */
export const UIO_MAXIOV: u32 = 1024;
/** Most regions a memory table may hold (the kernel's default max_mem_regions). */
export const VHOST_MAX_MEM_REGIONS: u32 = 64;

/** Negotiated-feature bits the queue itself acts on (VirtQueue.features). */
export const VQ_FEAT_EVENT_IDX: u32 = 1;
export const VQ_FEAT_NOTIFY_ON_EMPTY: u32 = 2;

// Queue errors, the analogue of the kernel's vq_err() messages. The control plane maps them to
// names and errno values (src/virtio/queue-error.ts) by these names, which the build generates.
export const VQ_ERR_NONE: u32 = 0;
/** avail->idx moved more than the queue size past last_avail_idx (EINVAL). */
export const VQ_ERR_AVAIL_IDX: u32 = 1;
/** The avail ring names a head index >= queue size (EINVAL). */
export const VQ_ERR_HEAD_RANGE: u32 = 2;
/** A next field points outside the descriptor table (EINVAL). */
export const VQ_ERR_DESC_RANGE: u32 = 3;
/** The chain is longer than the queue size: a loop (EINVAL). */
export const VQ_ERR_LOOP: u32 = 4;
/** A buffer address is not covered by the memory table (EFAULT). */
export const VQ_ERR_TRANSLATE: u32 = 5;
/** addr + len wraps around 2^64 (EFAULT). */
export const VQ_ERR_OVERFLOW: u32 = 6;
/** The chain needs more than UIO_MAXIOV iovecs (ENOBUFS). */
export const VQ_ERR_IOV_FULL: u32 = 7;
/** An indirect table length is zero or not a multiple of 16 (EINVAL). */
export const VQ_ERR_INDIRECT_LEN: u32 = 8;
/** An indirect table contains an indirect descriptor (EINVAL). */
export const VQ_ERR_INDIRECT_NESTED: u32 = 9;
/** A descriptor has both INDIRECT and NEXT set (EINVAL). */
export const VQ_ERR_INDIRECT_NEXT: u32 = 10;
/** A chain inside an indirect table is longer than the table: a loop (EINVAL). */
export const VQ_ERR_INDIRECT_LOOP: u32 = 11;
/** A next field points outside the indirect table (EINVAL). */
export const VQ_ERR_INDIRECT_RANGE: u32 = 12;
/** A device-readable descriptor follows a device-writable one (EINVAL). */
export const VQ_ERR_OUT_AFTER_IN: u32 = 13;
/** An indirect table has more than 65536 entries (E2BIG). */
export const VQ_ERR_INDIRECT_TOO_BIG: u32 = 14;
/** The request's buffers cannot carry the device's header or response (EINVAL). */
export const VQ_ERR_BAD_REQUEST: u32 = 15;

/** vq_drain() result bits. */
export const DRAIN_SIGNAL: u32 = 1; // used entries were published and the driver wants an interrupt
export const DRAIN_MORE: u32 = 2; // the weight was used up with work still pending
export const DRAIN_ERROR: u32 = 4; // queue errors were recorded (VirtQueue.last_error says which): signal the err eventfd
export const DRAIN_STALLED: u32 = 16; // the next avail entry is malformed: nothing more until the driver kicks
/** scsi_ctl_poll() result bit beside the DRAIN_* bits: some TMF still waits for aborted requests. */
export const CTL_TMF_PENDING: u32 = 32;
export const DRAIN_USED: u32 = 8; // at least one used entry was published
export const DRAIN_LOGGED: u32 = 64; // the used ring was published and logged (VHOST_VRING_F_LOG): signal the log eventfd
