import { platform } from "#platform";
import { processPollTable } from "../sys/eventfd.js";
import type { SharedMemory } from "../memory/shared-memory.js";
import { createDataplane, type DataplaneExports, type DataplaneInstance } from "../wasm/dataplane.js";
import { POLL_MORE, POLL_WAITING, type PollResult } from "./vring-server.js";
import { WorkerCore } from "./worker-core.js";
import type { VhostWorker, VringAttachment } from "./worker.js";
import type { WorkerServedBackstore } from "../backstore/service.js";

export interface LocalWorkerOptions {
  /** Do not run by itself: the embedder calls poll(). */
  manual?: boolean;
  /**
   * Called after every pass over the vrings, and after a detach (which answers the requests
   * already completed at once), in the same turn of the event loop: an emulator running its
   * guest CPU on this thread learns there what the device wrote, before the guest runs again
   * (v86 invalidates its JIT there).
   */
  afterPoll?: () => void;
  /** Wraps the data plane exports (tests count calls with it). */
  wrapDataplane?: (dp: DataplaneExports) => DataplaneExports;
}

/**
 * A vhost worker in the calling thread, with its own data plane instance. It runs by itself,
 * waiting on its kick eventfds with Atomics.waitAsync, unless created `manual`, in which case
 * the embedder calls poll() to serve the rings synchronously.
 */
export class LocalWorker implements VhostWorker {
  private readonly inst: DataplaneInstance;
  private readonly afterPoll: (() => void) | undefined;
  private readonly core: WorkerCore;
  private running = true;
  private loop: Promise<void> | undefined;
  readonly failure: Error | undefined = undefined;

  constructor(
    readonly id: number,
    private readonly shm: SharedMemory,
    opts: LocalWorkerOptions = {},
  ) {
    this.inst = createDataplane(shm);
    const table = processPollTable();
    const dp = opts.wrapDataplane ? opts.wrapDataplane(this.inst.dp) : this.inst.dp;
    this.core = new WorkerCore(dp, table, table.allocDoorbell(), shm.buffer);
    this.afterPoll = opts.afterPoll;
    if (!opts.manual) this.loop = this.run();
  }

  get vrings(): ReadonlySet<number> {
    return this.core.vrings;
  }

  async attach(a: VringAttachment): Promise<void> {
    this.core.attach(a);
  }

  detach(index: number): Promise<void> {
    return new Promise((resolve) => {
      this.core.detach(index, resolve);
      this.afterPoll?.();
    });
  }

  setBackstores(list: readonly WorkerServedBackstore[]): Promise<void> {
    return this.core.setBackstores(list);
  }

  kick(index: number): void {
    this.core.kick(index);
  }

  /** Drains run to completion within one call here, so between calls nothing is being served. */
  async pause(): Promise<void> {
    this.core.paused = true;
  }

  resume(): void {
    this.core.paused = false;
    this.core.pollTable.ring(this.core.doorbell);
  }

  /** Passes run to completion within one call here, so there is never one half done. */
  async flush(): Promise<void> {}

  /** Time this worker's passes spent serving requests so far, ms (its thread does other things too). */
  get busyMs(): number {
    return this.core.busyMs;
  }

  /** Serves the attached vrings once; see POLL_*. This is all there is to the synchronous mode. */
  poll(): PollResult {
    const r = this.core.poll();
    this.afterPoll?.();
    return r;
  }

  private async run(): Promise<void> {
    const { pollTable, doorbell } = this.core;
    while (this.running) {
      const seen = pollTable.value(doorbell);
      const r = this.poll();
      if (r === POLL_MORE) {
        await platform.yieldToEventLoop();
        continue;
      }
      // A TMF waiting on aborted requests is looked at again every millisecond.
      await pollTable.waitAsync(doorbell, seen, r === POLL_WAITING ? 1 : Infinity);
    }
  }

  async stop(): Promise<void> {
    for (const i of [...this.core.vrings]) await this.detach(i);
    this.core.close();
    this.running = false;
    this.core.pollTable.ring(this.core.doorbell);
    await this.loop;
    this.shm.device.release(this.inst.area);
  }
}
