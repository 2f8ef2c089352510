// virtio-blk constants and the config space layout, named as in include/uapi/linux/virtio_blk.h
// (VIRTIO 1.2, 5.2). Request types and status values are the data plane's (assembly/blk/constants.ts).
export {
  VIRTIO_BLK_T_IN,
  VIRTIO_BLK_T_OUT,
  VIRTIO_BLK_T_FLUSH,
  VIRTIO_BLK_T_GET_ID,
  VIRTIO_BLK_T_GET_LIFETIME,
  VIRTIO_BLK_T_DISCARD,
  VIRTIO_BLK_T_WRITE_ZEROES,
  VIRTIO_BLK_T_SECURE_ERASE,
  VIRTIO_BLK_S_OK,
  VIRTIO_BLK_S_IOERR,
  VIRTIO_BLK_S_UNSUPP,
  VIRTIO_BLK_ID_BYTES,
  VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP,
  VIRTIO_BLK_OUTHDR_SIZE,
  VIRTIO_BLK_DWZ_SEG_SIZE,
} from "../wasm/abi.generated.js";

/** VIRTIO 1.2, 5: the block device's ID. */
export const VIRTIO_ID_BLOCK = 2;

/** Feature bits (VIRTIO 1.2, 5.2.3). */
export const VIRTIO_BLK_F_SIZE_MAX = 1;
export const VIRTIO_BLK_F_SEG_MAX = 2;
export const VIRTIO_BLK_F_GEOMETRY = 4;
export const VIRTIO_BLK_F_RO = 5;
export const VIRTIO_BLK_F_BLK_SIZE = 6;
export const VIRTIO_BLK_F_FLUSH = 9;
export const VIRTIO_BLK_F_TOPOLOGY = 10;
export const VIRTIO_BLK_F_CONFIG_WCE = 11;
export const VIRTIO_BLK_F_MQ = 12;
export const VIRTIO_BLK_F_DISCARD = 13;
export const VIRTIO_BLK_F_WRITE_ZEROES = 14;
export const VIRTIO_BLK_F_SECURE_ERASE = 16;

/** The feature bits this project's virtio-blk device serves and its driver knows (each end its side of them). */
export const VIRTIO_BLK_IMPLEMENTED_FEATURES: readonly number[] = [
  VIRTIO_BLK_F_SIZE_MAX,
  VIRTIO_BLK_F_SEG_MAX,
  VIRTIO_BLK_F_RO,
  VIRTIO_BLK_F_BLK_SIZE,
  VIRTIO_BLK_F_FLUSH,
  VIRTIO_BLK_F_TOPOLOGY,
  VIRTIO_BLK_F_CONFIG_WCE,
  VIRTIO_BLK_F_MQ,
  VIRTIO_BLK_F_DISCARD,
  VIRTIO_BLK_F_WRITE_ZEROES,
];

/** struct virtio_blk_config: field offsets and its size (VIRTIO 1.2, 5.2.4). */
export const VIRTIO_BLK_CFG_CAPACITY = 0;
export const VIRTIO_BLK_CFG_SIZE_MAX = 8;
export const VIRTIO_BLK_CFG_SEG_MAX = 12;
export const VIRTIO_BLK_CFG_BLK_SIZE = 20;
export const VIRTIO_BLK_CFG_PHYSICAL_BLOCK_EXP = 24;
export const VIRTIO_BLK_CFG_ALIGNMENT_OFFSET = 25;
export const VIRTIO_BLK_CFG_MIN_IO_SIZE = 26;
export const VIRTIO_BLK_CFG_OPT_IO_SIZE = 28;
export const VIRTIO_BLK_CFG_WRITEBACK = 32;
export const VIRTIO_BLK_CFG_NUM_QUEUES = 34;
export const VIRTIO_BLK_CFG_MAX_DISCARD_SECTORS = 36;
export const VIRTIO_BLK_CFG_MAX_DISCARD_SEG = 40;
export const VIRTIO_BLK_CFG_DISCARD_SECTOR_ALIGNMENT = 44;
export const VIRTIO_BLK_CFG_MAX_WRITE_ZEROES_SECTORS = 48;
export const VIRTIO_BLK_CFG_MAX_WRITE_ZEROES_SEG = 52;
export const VIRTIO_BLK_CFG_WRITE_ZEROES_MAY_UNMAP = 56;
export const VIRTIO_BLK_CONFIG_SIZE = 72;
