// virtio-blk constants, named as in include/uapi/linux/virtio_blk.h (VIRTIO 1.2, 5.2).

/** Request types (struct virtio_blk_req.type, VIRTIO 1.2, 5.2.6). */
export const VIRTIO_BLK_T_IN: u32 = 0;
export const VIRTIO_BLK_T_OUT: u32 = 1;
export const VIRTIO_BLK_T_FLUSH: u32 = 4;
export const VIRTIO_BLK_T_GET_ID: u32 = 8;
export const VIRTIO_BLK_T_GET_LIFETIME: u32 = 10;
export const VIRTIO_BLK_T_DISCARD: u32 = 11;
export const VIRTIO_BLK_T_WRITE_ZEROES: u32 = 13;
export const VIRTIO_BLK_T_SECURE_ERASE: u32 = 14;

/** Status byte values (the last byte of the request's writable part). */
export const VIRTIO_BLK_S_OK: u8 = 0;
export const VIRTIO_BLK_S_IOERR: u8 = 1;
export const VIRTIO_BLK_S_UNSUPP: u8 = 2;

/** Bytes of the ID string GET_ID returns. */
export const VIRTIO_BLK_ID_BYTES: u32 = 20;
/** struct virtio_blk_discard_write_zeroes.flags: the range may be deallocated. */
export const VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP: u32 = 1;

/** Sector unit of struct virtio_blk_req.sector and the capacity, whatever the block size. */
export const VIRTIO_BLK_SECTOR_SHIFT: u32 = 9;
/** struct virtio_blk_outhdr (type, ioprio, sector). */
export const VIRTIO_BLK_OUTHDR_SIZE: u32 = 16;
/** struct virtio_blk_discard_write_zeroes (sector, num_sectors, flags). */
export const VIRTIO_BLK_DWZ_SEG_SIZE: u32 = 16;
