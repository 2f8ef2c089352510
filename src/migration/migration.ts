// Live migration of a guest with a vhost device between two memories (two workers, two
// processes): QEMU's pre-copy (migration/ram.c) reduced to what this project owns. Rounds send
// the guest RAM pages dirtied since the last round (the guest's own writes, which its "vCPUs"
// report, and the device's dirty log), and the RAM disks' changed chunks; once a round is small
// the guest is paused, the device stopped (requests in flight answered), and the last pages, the
// last chunks and the device's state go; the destination then loads the state and the guest
// resumes there. File and NBD LUNs are shared storage: both sides see the same blocks.
import type { GuestMemory } from "../guest/guest-memory.js";
import type { VhostDevice } from "../vhost/vhost-device.js";
import type { VhostVirtioDevice } from "../device/vhost-virtio-device.js";
import type { DeviceState } from "../device/device-state.js";

/** Guest pages are 4 KiB (the dirty log's unit, VHOST_PAGE_SIZE). */
const PAGE = 4096;
/** Pages per message. */
const PAGES_PER_MESSAGE = 256;
/** A RAM disk moves in chunks of this many bytes, each sent again when it changed. */
const DISK_CHUNK = 64 << 10;

/** What the source sends, in order; each message can be structured-cloned (postMessage). */
export type MigrationMessage =
  | { kind: "ram"; round: number; pages: number[]; data: Uint8Array }
  | { kind: "disk"; round: number; name: string; offset: number; data: Uint8Array }
  | { kind: "device"; state: DeviceState }
  | { kind: "done"; stats: MigrationStats };

/** One pre-copy round (the last one ran with the guest paused). */
export interface MigrationRound {
  /** Guest pages sent, of which the device's log named `devicePages` (the rest the guest wrote or both did). */
  pages: number;
  devicePages: number;
  /** RAM disk bytes sent. */
  diskBytes: number;
  ms: number;
}

export interface MigrationStats {
  rounds: MigrationRound[];
  /** From the start to the device state sent. */
  totalMs: number;
  /** From the guest's pause to the device state sent (the destination's load and resume come on top). */
  downtimeMs: number;
  /** Pages sent in all, and those sent more than once. */
  pagesSent: number;
  pagesResent: number;
}

export interface MigrationSource {
  /** The device (a VhostScsiDevice or VhostBlkDevice) and the guest RAM it serves. */
  device: VhostVirtioDevice<VhostDevice>;
  mem: GuestMemory;
  /**
   * Stops the guest's vCPUs: once it resolves the guest writes no guest RAM and submits nothing
   * (VirtioDriver.pause(), with whatever else the guest runs).
   */
  pause(): Promise<void> | void;
  /** Where the messages go (a MessagePort's postMessage, a socket). */
  send(m: MigrationMessage): void;
}

export interface MigrationOptions {
  /** Pre-copy rounds at most before the switchover. Default 10. */
  maxRounds?: number;
  /** Switch over once a round finds at most this many dirty pages. Default 64. */
  switchoverPages?: number;
  /** Runs between rounds, while the guest runs (default: a turn of the event loop). */
  betweenRounds?: () => Promise<void>;
  /**
   * Whether the device's dirty log is used (default true). Off, pages only the device wrote
   * (read data, responses, used rings) are not sent again: for showing that the log matters.
   */
  deviceLog?: boolean;
}

/**
 * Migrates the guest and its device to a MigrationDestination through `source.send`; returns
 * when the last message is sent. The device must be running; it is stopped at the switchover
 * and not started again here (the guest continues at the destination).
 */
export async function migrate(source: MigrationSource, opts: MigrationOptions = {}): Promise<MigrationStats> {
  const { device, mem, send } = source;
  const maxRounds = opts.maxRounds ?? 10;
  const switchover = opts.switchoverPages ?? 64;
  const useLog = opts.deviceLog ?? true;
  const pause = opts.betweenRounds ?? (() => new Promise<void>((r) => setTimeout(r, 0)));
  const t0 = performance.now();
  const rounds: MigrationRound[] = [];
  const sentOnce = new Set<number>();
  let pagesSent = 0;
  const disks = device.ramDisks().map((d) => ({ ...d, shadow: new Uint8Array(d.bytes.length), first: true }));

  /** Sends the pages and changed disk chunks of one round. */
  const round = (pages: Iterable<number>, devicePages: number) => {
    const start = performance.now();
    const list = [...pages].filter((p) => inRam(mem, p)).sort((a, b) => a - b);
    for (let i = 0; i < list.length; i += PAGES_PER_MESSAGE) {
      const part = list.slice(i, i + PAGES_PER_MESSAGE);
      const data = new Uint8Array(part.length * PAGE);
      part.forEach((p, k) => {
        const at = mem.hva(p * PAGE, PAGE);
        data.set(mem.shm.bytes.subarray(at, at + PAGE), k * PAGE);
      });
      send({ kind: "ram", round: rounds.length, pages: part, data });
    }
    for (const p of list) sentOnce.add(p);
    pagesSent += list.length;
    let diskBytes = 0;
    for (const d of disks) {
      for (let off = 0; off < d.bytes.length; off += DISK_CHUNK) {
        const now = d.bytes.subarray(off, off + DISK_CHUNK);
        const was = d.shadow.subarray(off, off + DISK_CHUNK);
        if (!d.first && equal(now, was)) continue;
        was.set(now);
        send({ kind: "disk", round: rounds.length, name: d.name, offset: off, data: was.slice() });
        diskBytes += was.length;
      }
      d.first = false;
    }
    rounds.push({ pages: list.length, devicePages, diskBytes, ms: performance.now() - start });
    return list.length;
  };
  /** The pages dirtied since the last call: the guest's and the device's, each once. */
  const dirty = () => {
    const fromDevice = useLog ? device.syncLog() : [];
    const all = new Set(mem.takeWritten());
    for (const p of fromDevice) all.add(p);
    return { all, devicePages: fromDevice.length };
  };

  if (useLog) await device.startLogging();
  mem.trackWrites();
  let downtimeStart = 0;
  try {
    // Round 0: all of guest RAM.
    dirty();
    round(
      mem.regions.flatMap((r) => Array.from({ length: r.size / PAGE }, (_, k) => r.gpa / PAGE + k)),
      0,
    );
    for (let n = 1; n < maxRounds; n++) {
      await pause();
      const d = dirty();
      if (round(d.all, d.devicePages) <= switchover) break;
    }
    // The switchover: the guest stops, then the device (answering what is in flight, whose
    // writes the log records), then the last pages and the state.
    downtimeStart = performance.now();
    await source.pause();
    await device.vmStop();
    const d = dirty();
    round(d.all, d.devicePages);
    send({ kind: "device", state: device.save() });
  } finally {
    mem.stopTracking();
    if (useLog) await device.stopLogging();
  }
  const end = performance.now();
  const stats: MigrationStats = {
    rounds,
    totalMs: end - t0,
    downtimeMs: end - downtimeStart,
    pagesSent,
    pagesResent: pagesSent - sentOnce.size,
  };
  send({ kind: "done", stats });
  return stats;
}

const inRam = (mem: GuestMemory, page: number) => mem.regions.some((r) => page * PAGE >= r.gpa && (page + 1) * PAGE <= r.gpa + r.size);

/** Whether two chunks hold the same bytes (compared 32 bits at a time where both are aligned). */
function equal(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  if (a.byteOffset % 4 || b.byteOffset % 4 || a.length % 4) return a.every((x, i) => x === b[i]);
  const wa = new Uint32Array(a.buffer, a.byteOffset, a.length / 4);
  const wb = new Uint32Array(b.buffer, b.byteOffset, b.length / 4);
  for (let i = 0; i < wa.length; i++) if (wa[i] !== wb[i]) return false;
  return true;
}

/**
 * The receiving side: guest RAM laid out as the source's (GuestMemory.cloneTo with copy false),
 * a realized device configured as the source's (same target, LUNs, disk), fed every message in
 * order. After `done` the device has loaded the state: the caller moves the guest over
 * (VirtioDriver.moveTo, resume) and calls device.vmContinue().
 */
export class MigrationDestination {
  private readonly disks: Map<string, Uint8Array>;
  private finish!: (s: MigrationStats) => void;
  /** Resolves with the source's figures once the device state is loaded. */
  readonly finished = new Promise<MigrationStats>((r) => (this.finish = r));

  constructor(
    private readonly mem: GuestMemory,
    private readonly device: VhostVirtioDevice<VhostDevice>,
  ) {
    this.disks = new Map(device.ramDisks().map((d) => [d.name, d.bytes]));
  }

  /** Takes one message; throws (DeviceStateError, RangeError) when it does not fit here. */
  receive(m: MigrationMessage): void {
    if (m.kind === "ram") {
      m.pages.forEach((p, k) => this.mem.shm.bytes.set(m.data.subarray(k * PAGE, (k + 1) * PAGE), this.mem.hva(p * PAGE, PAGE)));
    } else if (m.kind === "disk") {
      const d = this.disks.get(m.name);
      if (!d || m.offset + m.data.length > d.length) throw new RangeError(`no RAM disk "${m.name}" of at least ${m.offset + m.data.length} bytes here`);
      d.set(m.data, m.offset);
    } else if (m.kind === "device") {
      this.device.load(m.state);
    } else {
      this.finish(m.stats);
    }
  }
}
