// What both entry points of vhost-scsi-wasm/v86 (index.ts for Node, browser.ts for a page) export
// besides their own way of loading v86.
export {
  attachVirtioScsi,
  attachVirtioBlk,
  type AttachOptions,
  type AttachBlkOptions,
  type V86VirtioScsi,
  type V86VirtioBlk,
  type V86DiskSnapshot,
} from "./attach.js";
export { V86_VERSION, type V86Cpu, type V86Emulator, type V86Package, type V86WithSharedMemoryOptions } from "./emulator.js";
export { V86VirtioPci, type VirtioPciOptions, type V86VirtioPciState, type QueueRegs } from "./virtio-pci.js";
