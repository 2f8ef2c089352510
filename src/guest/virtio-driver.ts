import { GuestVirtqueue, type GuestBuffer } from "./virtqueue.js";
import type { GuestMemory } from "./guest-memory.js";
import {
  VIRTIO_CONFIG_S_ACKNOWLEDGE,
  VIRTIO_CONFIG_S_DRIVER,
  VIRTIO_CONFIG_S_DRIVER_OK,
  VIRTIO_CONFIG_S_FAILED,
  VIRTIO_CONFIG_S_FEATURES_OK,
  VIRTIO_CONFIG_S_NEEDS_RESET,
  type VirtioTransport,
} from "../virtio/transport.js";
import { VIRTIO_F_VERSION_1, VIRTIO_RING_F_EVENT_IDX } from "../virtio/ring.js";

/** What a queue's token holds for a chain in flight: how to finish it. */
export interface Pending {
  resolve: (r: { usedLen: number }) => void;
}

export const bit = (n: number) => 1n << BigInt(n);

/**
 * What every virtio guest driver here does (VIRTIO 1.2, 3.1.1 and 2.7): negotiate features and
 * set up the queues, put chains on a queue (waiting for room when it is full) with one kick per
 * tick, and reap used buffers on an interrupt. A device type's driver (scsi-driver.ts,
 * blk-driver.ts) builds its requests on it.
 */
export abstract class VirtioDriver {
  /** Submissions waiting for room on a full queue; each returns false while it still does not fit. */
  private readonly backlog = new Map<GuestVirtqueue<Pending>, (() => boolean)[]>();
  private readonly kickQueued = new Set<number>();
  /**
   * Requests in flight, and while there are any a timer that keeps the process alive: the device
   * answers through shared memory, which Node does not count as work pending (the vhost threads
   * that only wait do not hold the process either).
   */
  private inflight = 0;
  private keepAlive: ReturnType<typeof setInterval> | undefined;
  /** The guest is paused: interrupts are not handled (resume() looks at every queue). */
  private paused = false;
  /** Virtqueues handed to another driver instance (releaseVirtqueue): not reaped here. */
  private readonly released = new Set<number>();

  protected constructor(
    private memory: GuestMemory,
    private device: VirtioTransport,
    readonly features: bigint,
  ) {}

  /** The guest RAM the driver's queues and buffers live in. */
  get mem(): GuestMemory {
    return this.memory;
  }

  /** The device it drives. */
  get transport(): VirtioTransport {
    return this.device;
  }

  /** Every virtqueue, by index. */
  protected abstract get virtqueues(): readonly GuestVirtqueue<unknown>[];

  /**
   * The guest continues elsewhere (a live migration, a restored snapshot): its RAM is now `mem`
   * (the same guest-physical layout, GuestMemory.cloneTo) and its device `transport`, which
   * loaded the state saved where the guest was (VhostVirtioDevice.load). Nothing is
   * renegotiated; requests in flight finish there.
   */
  moveTo(mem: GuestMemory, transport: VirtioTransport): void {
    this.memory = mem;
    this.device = transport;
    for (const [i, q] of this.virtqueues.entries()) if (!this.released.has(i)) q.moveTo(mem, () => transport.notify(i));
    transport.onInterrupt((i) => this.deliver(i));
  }

  /**
   * The guest is paused (its vCPUs stopped, as for a migration's last round): interrupts are not
   * handled, so the driver writes nothing to guest RAM until resume().
   */
  pause(): void {
    this.paused = true;
  }

  /** The guest runs again: every queue is looked at once (interrupts that came while paused, or were lost with a move, are not missed). */
  resume(): void {
    if (!this.paused) return;
    this.paused = false;
    for (let i = 0; i < this.virtqueues.length; i++) this.deliver(i);
  }

  private deliver(index: number): void {
    if (!this.paused) this.interrupt(index);
  }

  /**
   * Device initialization up to the queues (VIRTIO 1.2, 3.1.1): reset, ACKNOWLEDGE, DRIVER, the
   * features both sides know, FEATURES_OK, then every queue the device has, of at most
   * `queueSize` entries.
   */
  protected static async negotiate(
    mem: GuestMemory,
    t: VirtioTransport,
    wanted: bigint,
    queueSize?: number,
  ): Promise<{ features: bigint; queues: GuestVirtqueue<unknown>[] }> {
    await t.setStatus(0);
    await t.setStatus(VIRTIO_CONFIG_S_ACKNOWLEDGE);
    await t.setStatus(VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER);
    const features = t.deviceFeatures() & wanted;
    if (!(features & bit(VIRTIO_F_VERSION_1))) throw new Error("device does not offer VIRTIO_F_VERSION_1");
    t.setDriverFeatures(features);
    await t.setStatus(VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER | VIRTIO_CONFIG_S_FEATURES_OK);
    if (!(t.status() & VIRTIO_CONFIG_S_FEATURES_OK)) throw new Error("device refused the features");
    const eventIdx = (features & bit(VIRTIO_RING_F_EVENT_IDX)) !== 0n;
    const queues: GuestVirtqueue<unknown>[] = [];
    for (let i = 0; i < t.numQueues(); i++) {
      const num = Math.min(queueSize ?? t.queueMaxSize(i), t.queueMaxSize(i));
      const q = new GuestVirtqueue<unknown>(mem, { num, eventIdx, notify: () => t.notify(i) });
      t.setQueue(i, { num, desc: q.descAddr, avail: q.availAddr, used: q.usedAddr });
      queues.push(q);
    }
    return { features, queues };
  }

  /** The last step of initialization: interrupts wired, DRIVER_OK. */
  protected async start(): Promise<void> {
    const t = this.transport;
    t.onInterrupt((i) => this.deliver(i));
    await t.setStatus(VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER | VIRTIO_CONFIG_S_FEATURES_OK | VIRTIO_CONFIG_S_DRIVER_OK);
    if (!(t.status() & VIRTIO_CONFIG_S_DRIVER_OK) || t.status() & (VIRTIO_CONFIG_S_FAILED | VIRTIO_CONFIG_S_NEEDS_RESET))
      throw new Error("device failed to start");
  }

  /** Whether a feature was negotiated. */
  has(feature: number): boolean {
    return (this.features & bit(feature)) !== 0n;
  }

  /** The interrupt handler of queue index. */
  abstract interrupt(index: number): void;

  /** Kicks queue index once for everything added in this tick. */
  private scheduleKick(index: number, q: GuestVirtqueue<unknown>): void {
    if (this.kickQueued.has(index)) return;
    this.kickQueued.add(index);
    queueMicrotask(() => {
      this.kickQueued.delete(index);
      q.kick();
    });
  }

  /**
   * Puts a chain on queue q (waiting for room if it is full) and resolves with the used length.
   * Empty buffers are left out; `fragment` splits every buffer into descriptors of at most that
   * many bytes; `indirect` puts the chain in an indirect table (so does a chain longer than the queue).
   */
  protected submit(
    q: GuestVirtqueue<Pending>,
    index: number,
    out: GuestBuffer[],
    inb: GuestBuffer[],
    fragment?: number,
    indirect?: boolean,
  ): Promise<{ usedLen: number }> {
    const frag = (bufs: GuestBuffer[]) =>
      !fragment
        ? bufs.filter((b) => b.len > 0)
        : bufs.flatMap((b) => {
            const parts: GuestBuffer[] = [];
            for (let at = 0; at < b.len; at += fragment) parts.push({ addr: b.addr + at, len: Math.min(fragment, b.len - at) });
            return parts;
          });
    const o = frag(out);
    const i = frag(inb);
    const n = o.length + i.length;
    const ind = (indirect ?? false) || n > q.num;
    if (this.inflight++ === 0) this.keepAlive = setInterval(() => {}, 2 ** 30);
    const done = (r: { usedLen: number }, resolve: (r: { usedLen: number }) => void) => {
      if (--this.inflight === 0) clearInterval(this.keepAlive);
      resolve(r);
    };
    return new Promise((resolve) => {
      const tryAdd = () => {
        if (!q.canAdd(n, ind)) return false;
        q.add(o, i, { resolve: (r) => done(r, resolve) }, ind);
        this.scheduleKick(index, q);
        return true;
      };
      const list = this.backlog.get(q) ?? [];
      if (list.length || !tryAdd()) {
        list.push(tryAdd);
        this.backlog.set(q, list);
      }
    });
  }

  /**
   * Hands virtqueue `index` (a request queue) over to another driver instance, such as a polled
   * I/O engine in another thread: this driver stops reaping it. The queue must be idle.
   */
  protected releaseVirtqueue(
    index: number,
    q: GuestVirtqueue<Pending>,
  ): { num: number; desc: number; avail: number; used: number; availIdx: number; usedIdx: number; eventIdx: boolean } {
    if (q.numFree !== q.num) throw new Error(`virtqueue ${index} has requests in flight`);
    this.released.add(index);
    return { num: q.num, desc: q.descAddr, avail: q.availAddr, used: q.usedAddr, availIdx: q.availIndex, usedIdx: q.usedIndex, eventIdx: q.eventIdx };
  }

  /** Whether virtqueue index was handed over (releaseVirtqueue). */
  protected isReleased(index: number): boolean {
    return this.released.has(index);
  }

  /** Finishes every used chain of q, then refills it from its backlog. */
  protected reap(q: GuestVirtqueue<Pending>): void {
    for (let u = q.getUsed(); u; u = q.getUsed()) u.token.resolve({ usedLen: u.len });
    const list = this.backlog.get(q);
    while (list?.length && list[0]()) list.shift();
  }
}
