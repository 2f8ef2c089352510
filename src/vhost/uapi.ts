// The vhost userspace ABI: ioctl request numbers built as <asm-generic/ioctl.h> builds them,
// feature bits, and the binary layouts of the ioctl arguments (include/uapi/linux/vhost.h,
// vhost_types.h), so that code ported from C passes the same numbers and bytes.
import { VIRTIO_F_ANY_LAYOUT, VIRTIO_F_NOTIFY_ON_EMPTY, VIRTIO_F_VERSION_1, VIRTIO_RING_F_EVENT_IDX, VIRTIO_RING_F_INDIRECT_DESC } from "../virtio/ring.js";
import { VIRTIO_SCSI_F_CHANGE, VIRTIO_SCSI_F_HOTPLUG, VIRTIO_SCSI_F_T10_PI } from "../virtio/virtio-scsi.js";
import { VIRTIO_BLK_IMPLEMENTED_FEATURES } from "../virtio/virtio-blk.js";
import { VhostError } from "../sys/errors.js";

const _IOC_NONE = 0;
const _IOC_WRITE = 1;
const _IOC_READ = 2;
const _IOC = (dir: number, type: number, nr: number, size: number) => ((dir << 30) | (size << 16) | (type << 8) | nr) >>> 0;
const _IO = (type: number, nr: number) => _IOC(_IOC_NONE, type, nr, 0);
const _IOR = (type: number, nr: number, size: number) => _IOC(_IOC_READ, type, nr, size);
const _IOW = (type: number, nr: number, size: number) => _IOC(_IOC_WRITE, type, nr, size);
const _IOWR = (type: number, nr: number, size: number) => _IOC(_IOC_READ | _IOC_WRITE, type, nr, size);

export const VHOST_VIRTIO = 0xaf;

/** sizeof the argument structs. */
export const SIZEOF_VHOST_MEMORY = 8;
export const SIZEOF_VHOST_MEMORY_REGION = 32;
export const SIZEOF_VHOST_VRING_STATE = 8;
export const SIZEOF_VHOST_VRING_ADDR = 40;
export const SIZEOF_VHOST_VRING_FILE = 8;
export const SIZEOF_VHOST_SCSI_TARGET = 232;
export const SIZEOF_VHOST_WORKER_STATE = 4;
export const SIZEOF_VHOST_VRING_WORKER = 8;

export const VHOST_GET_FEATURES = _IOR(VHOST_VIRTIO, 0x00, 8);
export const VHOST_SET_FEATURES = _IOW(VHOST_VIRTIO, 0x00, 8);
export const VHOST_SET_OWNER = _IO(VHOST_VIRTIO, 0x01);
export const VHOST_RESET_OWNER = _IO(VHOST_VIRTIO, 0x02);
export const VHOST_SET_MEM_TABLE = _IOW(VHOST_VIRTIO, 0x03, SIZEOF_VHOST_MEMORY);
export const VHOST_SET_LOG_BASE = _IOW(VHOST_VIRTIO, 0x04, 8);
export const VHOST_SET_LOG_FD = _IOW(VHOST_VIRTIO, 0x07, 4);
export const VHOST_NEW_WORKER = _IOR(VHOST_VIRTIO, 0x08, SIZEOF_VHOST_WORKER_STATE);
export const VHOST_FREE_WORKER = _IOW(VHOST_VIRTIO, 0x09, SIZEOF_VHOST_WORKER_STATE);
export const VHOST_SET_VRING_NUM = _IOW(VHOST_VIRTIO, 0x10, SIZEOF_VHOST_VRING_STATE);
export const VHOST_SET_VRING_ADDR = _IOW(VHOST_VIRTIO, 0x11, SIZEOF_VHOST_VRING_ADDR);
export const VHOST_SET_VRING_BASE = _IOW(VHOST_VIRTIO, 0x12, SIZEOF_VHOST_VRING_STATE);
export const VHOST_GET_VRING_BASE = _IOWR(VHOST_VIRTIO, 0x12, SIZEOF_VHOST_VRING_STATE);
export const VHOST_ATTACH_VRING_WORKER = _IOW(VHOST_VIRTIO, 0x15, SIZEOF_VHOST_VRING_WORKER);
export const VHOST_GET_VRING_WORKER = _IOWR(VHOST_VIRTIO, 0x16, SIZEOF_VHOST_VRING_WORKER);
export const VHOST_SET_VRING_KICK = _IOW(VHOST_VIRTIO, 0x20, SIZEOF_VHOST_VRING_FILE);
export const VHOST_SET_VRING_CALL = _IOW(VHOST_VIRTIO, 0x21, SIZEOF_VHOST_VRING_FILE);
export const VHOST_SET_VRING_ERR = _IOW(VHOST_VIRTIO, 0x22, SIZEOF_VHOST_VRING_FILE);
export const VHOST_SET_VRING_BUSYLOOP_TIMEOUT = _IOW(VHOST_VIRTIO, 0x23, SIZEOF_VHOST_VRING_STATE);
export const VHOST_GET_VRING_BUSYLOOP_TIMEOUT = _IOW(VHOST_VIRTIO, 0x24, SIZEOF_VHOST_VRING_STATE);
export const VHOST_SCSI_SET_ENDPOINT = _IOW(VHOST_VIRTIO, 0x40, SIZEOF_VHOST_SCSI_TARGET);
export const VHOST_SCSI_CLEAR_ENDPOINT = _IOW(VHOST_VIRTIO, 0x41, SIZEOF_VHOST_SCSI_TARGET);
export const VHOST_SCSI_GET_ABI_VERSION = _IOW(VHOST_VIRTIO, 0x42, 4);
export const VHOST_SCSI_SET_EVENTS_MISSED = _IOW(VHOST_VIRTIO, 0x43, 4);
export const VHOST_SCSI_GET_EVENTS_MISSED = _IOW(VHOST_VIRTIO, 0x44, 4);
/**
 * /dev/vhost-blk (no upstream kernel has one): a backend attached to a vring, struct
 * vhost_vring_file with the fd of a block backend, -1 to detach (the number the out-of-tree
 * vhost-blk proposals used, beside VHOST_NET_SET_BACKEND's 0x30); and the volatile write cache
 * turned on (1) or off (0), as the driver sets the config space's writeback field.
 */
export const VHOST_BLK_SET_BACKEND = _IOW(VHOST_VIRTIO, 0x50, SIZEOF_VHOST_VRING_FILE);
export const VHOST_BLK_SET_WRITEBACK = _IOW(VHOST_VIRTIO, 0x51, 4);

/** VHOST_SCSI_ABI_VERSION, and the fd value that unbinds an eventfd (VHOST_FILE_UNBIND). */
export const VHOST_SCSI_ABI_VERSION = 1;
export const VHOST_FILE_UNBIND = -1;
/** vhost_vring_addr.flags bit: log used-ring writes. */
export const VHOST_VRING_F_LOG = 0;
export const VHOST_F_LOG_ALL = 26;

const bit = (n: number) => 1n << BigInt(n);

/** What every vhost device here offers: the ring features and dirty logging (VHOST_F_LOG_ALL). */
const VHOST_RING_FEATURES =
  bit(VIRTIO_F_NOTIFY_ON_EMPTY) |
  bit(VIRTIO_RING_F_INDIRECT_DESC) |
  bit(VIRTIO_RING_F_EVENT_IDX) |
  bit(VIRTIO_F_ANY_LAYOUT) |
  bit(VIRTIO_F_VERSION_1) |
  bit(VHOST_F_LOG_ALL);

/**
 * The features this vhost-scsi offers (VHOST_GET_FEATURES): the kernel's VHOST_SCSI_FEATURES
 * (VHOST_F_LOG_ALL included), plus VIRTIO_SCSI_F_CHANGE (capacity-change events).
 */
export const VHOST_SCSI_FEATURES = VHOST_RING_FEATURES | bit(VIRTIO_SCSI_F_HOTPLUG) | bit(VIRTIO_SCSI_F_CHANGE) | bit(VIRTIO_SCSI_F_T10_PI);

/**
 * The features /dev/vhost-blk offers: the ring's and every virtio-blk feature its data plane
 * serves (a device model offers a guest those its backend supports: RO, DISCARD).
 */
export const VHOST_BLK_FEATURES = VIRTIO_BLK_IMPLEMENTED_FEATURES.reduce((m, b) => m | bit(b), VHOST_RING_FEATURES);

/** struct vhost_vring_state. */
export interface VhostVringState {
  index: number;
  num: number;
}
/** struct vhost_vring_addr (user addresses: offsets in the shared memory). */
export interface VhostVringAddr {
  index: number;
  flags: number;
  desc_user_addr: bigint;
  used_user_addr: bigint;
  avail_user_addr: bigint;
  log_guest_addr: bigint;
}
/** struct vhost_vring_file: fd -1 unbinds. */
export interface VhostVringFile {
  index: number;
  fd: number;
}
/** struct vhost_scsi_target. */
export interface VhostScsiTarget {
  abi_version: number;
  vhost_wwpn: string;
  vhost_tpgt: number;
  reserved?: number;
}
/** struct vhost_vring_worker. */
export interface VhostVringWorker {
  index: number;
  worker_id: number;
}
/** struct vhost_memory with its regions. */
export interface VhostMemory {
  nregions: number;
  padding: number;
  regions: { guest_phys_addr: bigint; memory_size: bigint; userspace_addr: bigint; flags_padding: bigint }[];
}

/** A DataView over an ioctl argument, which must be at least size bytes (else EFAULT, as copy_from_user). */
function argView(buf: Uint8Array, size: number): DataView {
  if (buf.byteLength < size) throw new VhostError("EFAULT", `argument of ${buf.byteLength} bytes, need ${size}`);
  return new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
}

export function decodeVringState(b: Uint8Array): VhostVringState {
  const dv = argView(b, SIZEOF_VHOST_VRING_STATE);
  return { index: dv.getUint32(0, true), num: dv.getUint32(4, true) };
}
export function encodeVringState(s: VhostVringState, b: Uint8Array = new Uint8Array(SIZEOF_VHOST_VRING_STATE)): Uint8Array {
  const dv = argView(b, SIZEOF_VHOST_VRING_STATE);
  dv.setUint32(0, s.index, true);
  dv.setUint32(4, s.num, true);
  return b;
}
export function decodeVringAddr(b: Uint8Array): VhostVringAddr {
  const dv = argView(b, SIZEOF_VHOST_VRING_ADDR);
  return {
    index: dv.getUint32(0, true),
    flags: dv.getUint32(4, true),
    desc_user_addr: dv.getBigUint64(8, true),
    used_user_addr: dv.getBigUint64(16, true),
    avail_user_addr: dv.getBigUint64(24, true),
    log_guest_addr: dv.getBigUint64(32, true),
  };
}
export function encodeVringAddr(a: VhostVringAddr): Uint8Array {
  const b = new Uint8Array(SIZEOF_VHOST_VRING_ADDR);
  const dv = argView(b, SIZEOF_VHOST_VRING_ADDR);
  dv.setUint32(0, a.index, true);
  dv.setUint32(4, a.flags, true);
  dv.setBigUint64(8, a.desc_user_addr, true);
  dv.setBigUint64(16, a.used_user_addr, true);
  dv.setBigUint64(24, a.avail_user_addr, true);
  dv.setBigUint64(32, a.log_guest_addr, true);
  return b;
}
export function decodeVringFile(b: Uint8Array): VhostVringFile {
  const dv = argView(b, SIZEOF_VHOST_VRING_FILE);
  return { index: dv.getUint32(0, true), fd: dv.getInt32(4, true) };
}
export function encodeVringFile(f: VhostVringFile): Uint8Array {
  const b = new Uint8Array(SIZEOF_VHOST_VRING_FILE);
  const dv = argView(b, SIZEOF_VHOST_VRING_FILE);
  dv.setUint32(0, f.index, true);
  dv.setInt32(4, f.fd, true);
  return b;
}
/** struct vhost_memory and as many regions as the buffer holds (the rest would fault). */
export function decodeMemory(b: Uint8Array): VhostMemory {
  const dv = argView(b, SIZEOF_VHOST_MEMORY);
  const nregions = dv.getUint32(0, true);
  const regions: VhostMemory["regions"] = [];
  for (let i = 0; i < nregions; i++) {
    const at = SIZEOF_VHOST_MEMORY + i * SIZEOF_VHOST_MEMORY_REGION;
    if (at + SIZEOF_VHOST_MEMORY_REGION > b.byteLength) break;
    regions.push({
      guest_phys_addr: dv.getBigUint64(at, true),
      memory_size: dv.getBigUint64(at + 8, true),
      userspace_addr: dv.getBigUint64(at + 16, true),
      flags_padding: dv.getBigUint64(at + 24, true),
    });
  }
  return { nregions, padding: dv.getUint32(4, true), regions };
}
export function encodeMemory(regions: readonly { guest_phys_addr: bigint; memory_size: bigint; userspace_addr: bigint }[]): Uint8Array {
  const b = new Uint8Array(SIZEOF_VHOST_MEMORY + regions.length * SIZEOF_VHOST_MEMORY_REGION);
  const dv = new DataView(b.buffer);
  dv.setUint32(0, regions.length, true);
  regions.forEach((r, i) => {
    const at = SIZEOF_VHOST_MEMORY + i * SIZEOF_VHOST_MEMORY_REGION;
    dv.setBigUint64(at, r.guest_phys_addr, true);
    dv.setBigUint64(at + 8, r.memory_size, true);
    dv.setBigUint64(at + 16, r.userspace_addr, true);
  });
  return b;
}
export function decodeScsiTarget(b: Uint8Array): VhostScsiTarget {
  const dv = argView(b, SIZEOF_VHOST_SCSI_TARGET);
  const name = b.subarray(4, 228);
  const end = name.indexOf(0);
  return {
    abi_version: dv.getInt32(0, true),
    vhost_wwpn: new TextDecoder().decode(end < 0 ? name : name.subarray(0, end)),
    vhost_tpgt: dv.getUint16(228, true),
    reserved: dv.getUint16(230, true),
  };
}
export function encodeScsiTarget(t: VhostScsiTarget): Uint8Array {
  const b = new Uint8Array(SIZEOF_VHOST_SCSI_TARGET);
  const dv = new DataView(b.buffer);
  dv.setInt32(0, t.abi_version, true);
  b.set(new TextEncoder().encode(t.vhost_wwpn).subarray(0, 223), 4);
  dv.setUint16(228, t.vhost_tpgt, true);
  dv.setUint16(230, t.reserved ?? 0, true);
  return b;
}
export function decodeVringWorker(b: Uint8Array): VhostVringWorker {
  const dv = argView(b, SIZEOF_VHOST_VRING_WORKER);
  return { index: dv.getUint32(0, true), worker_id: dv.getUint32(4, true) };
}
export function encodeVringWorker(w: VhostVringWorker, b: Uint8Array = new Uint8Array(SIZEOF_VHOST_VRING_WORKER)): Uint8Array {
  const dv = argView(b, SIZEOF_VHOST_VRING_WORKER);
  dv.setUint32(0, w.index, true);
  dv.setUint32(4, w.worker_id, true);
  return b;
}
