// A stopped vhost device's state as a document (QEMU's VMState for a virtio device plus what a
// vhost backend keeps): what save() returns and load() takes. JSON-safe: 64-bit feature words as
// hex strings, the config space as hex. Each version is read by exactly the code that wrote it.

/** What the document says it is. */
export const DEVICE_STATE_FORMAT = "vhost-scsi-wasm device state";
/** The layout's version; a document of another version is refused. */
export const DEVICE_STATE_VERSION = 1;

/** One virtqueue as the driver set it up and where the device stopped in it. */
export interface VringState {
  num: number;
  /** Guest-physical addresses of the descriptor table, avail ring and used ring. */
  desc: number;
  avail: number;
  used: number;
  /** The next avail index the device takes (VHOST_GET_VRING_BASE at the stop). */
  lastAvail: number;
}

export interface DeviceState<T = unknown> {
  format: typeof DEVICE_STATE_FORMAT;
  version: typeof DEVICE_STATE_VERSION;
  /** The device type ("vhost-scsi", "vhost-blk"). */
  device: string;
  /** Virtqueues and their largest size. */
  queues: number;
  queueSize: number;
  /** The features the driver accepted (hex), which the destination must offer. */
  driverFeatures: string;
  /** The device status register. */
  status: number;
  /** The config space (hex). */
  config: string;
  /** Each virtqueue, null where the driver set none up. */
  vrings: (VringState | null)[];
  /** The device type's part. */
  type: T;
}

/** A document that cannot be loaded here: another format or version, or a device configured otherwise. */
export class DeviceStateError extends Error {
  override name = "DeviceStateError";
}

export const toHex = (b: Uint8Array) => Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
export const fromHex = (s: string) => Uint8Array.from(s.match(/../g) ?? [], (x) => Number.parseInt(x, 16));

/** Throws DeviceStateError(what) unless ok. */
export function expectState(ok: boolean, what: string): asserts ok {
  if (!ok) throw new DeviceStateError(`cannot load the device state: ${what}`);
}

/** Checks that `x` is a document of this format and version (before any field is trusted). */
export function checkDocument(x: unknown): asserts x is DeviceState {
  const d = x as Partial<DeviceState> | null;
  expectState(typeof d === "object" && d !== null && d.format === DEVICE_STATE_FORMAT, "not a device state document");
  expectState(d.version === DEVICE_STATE_VERSION, `version ${String(d.version)}, this build reads version ${DEVICE_STATE_VERSION}`);
  expectState(
    typeof d.device === "string" &&
      Number.isInteger(d.queues) &&
      Number.isInteger(d.queueSize) &&
      typeof d.driverFeatures === "string" &&
      /^[0-9a-f]+$/.test(d.driverFeatures) &&
      Number.isInteger(d.status) &&
      typeof d.config === "string" &&
      /^([0-9a-f]{2})*$/.test(d.config) &&
      Array.isArray(d.vrings) &&
      d.vrings.length === d.queues,
    "a malformed document",
  );
  for (const v of d.vrings as unknown[]) {
    if (v === null) continue;
    const r = v as Partial<VringState>;
    expectState(
      typeof r === "object" &&
        [r.num, r.desc, r.avail, r.used, r.lastAvail].every((n) => Number.isSafeInteger(n) && (n as number) >= 0) &&
        (r.lastAvail as number) < 65536,
      "a malformed virtqueue",
    );
  }
}
