// What a virtio driver sees of a device (the common configuration of VIRTIO 1.2, 4.1.4.3,
// without the PCI): features, status, device config, queue setup, notification, interrupts.
import type { EventFdHandle } from "../sys/eventfd.js";

/** Device status bits (VIRTIO 1.2, 2.1). */
export const VIRTIO_CONFIG_S_ACKNOWLEDGE = 1;
export const VIRTIO_CONFIG_S_DRIVER = 2;
export const VIRTIO_CONFIG_S_DRIVER_OK = 4;
export const VIRTIO_CONFIG_S_FEATURES_OK = 8;
export const VIRTIO_CONFIG_S_NEEDS_RESET = 0x40;
export const VIRTIO_CONFIG_S_FAILED = 0x80;

/** Where a driver placed a queue (guest-physical addresses). */
export interface QueueConfig {
  num: number;
  desc: number;
  avail: number;
  used: number;
}

export interface VirtioTransport {
  readonly deviceId: number;
  /** Features the device offers. */
  deviceFeatures(): bigint;
  /** The driver's accepted features (VIRTIO 1.2, 3.1.1 step 5). */
  setDriverFeatures(features: bigint): void;
  status(): number;
  /** Writes the status register; 0 resets the device. Starting and stopping may take a while. */
  setStatus(status: number): Promise<void>;
  readConfig(offset: number, length: number): Uint8Array;
  writeConfig(offset: number, data: Uint8Array): void;
  numQueues(): number;
  queueMaxSize(index: number): number;
  /** Sets a queue's size and ring addresses and enables it (before DRIVER_OK). */
  setQueue(index: number, q: QueueConfig): void;
  /** The driver's notification that queue index has new buffers (the queue notify register). */
  notify(index: number): void;
  /** Where the device's used-buffer notifications (interrupts) go. */
  onInterrupt(handler: (index: number) => void): void;
}

// A transport carried to a driver in another thread (src/device/transport-host.ts serves it,
// src/guest/remote-transport.ts drives it).

/** What a guest in another thread learns about the device up front. */
export interface TransportDescription {
  deviceId: number;
  /** The device status when described (a guest that moves to a running device finds it set up). */
  status?: number;
  deviceFeatures: string; // bigint as a decimal string (structured clone keeps it, but JSON does not)
  config: Uint8Array;
  queueMaxSizes: number[];
  notifiers: { kick: EventFdHandle; call: EventFdHandle }[];
}

/** Guest-to-device requests; the reply is { id, status } or { id, error }. */
export type TransportRequest =
  | { id: number; op: "setStatus"; status: number; driverFeatures: string; queues: [number, QueueConfig][] }
  | { id: number; op: "writeConfig"; offset: number; data: Uint8Array }
  | { id: number; op: "readConfig"; offset: number; length: number };
