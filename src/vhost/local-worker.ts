import { EventFd, processPollTable } from "../eventfd.js";
import type { SharedMemory } from "../memory/shared-memory.js";
import { createDataplane, type DataplaneExports, type DataplaneInstance } from "../wasm/dataplane.js";
import { POLL_IDLE, POLL_MORE, POLL_WAITING, ScsiVringServer, type PollResult } from "../worker/scsi-vrings.js";
import type { FileOps } from "../worker/file-io.js";
import type { FileBinding, VhostWorker, VringAttachment } from "./worker.js";

interface Served {
  a: VringAttachment;
  kick: EventFd | null;
  call: EventFd | null;
  err: EventFd | null;
}

/**
 * A vhost worker in the calling thread, with its own data plane instance. It runs by itself
 * (waiting on its kick eventfds with Atomics.waitAsync) unless created with `manual`, in which
 * case the embedder calls poll() to serve the rings synchronously.
 */
export class LocalWorker implements VhostWorker {
  private readonly inst: DataplaneInstance;
  private readonly server: ScsiVringServer;
  private readonly served = new Map<number, Served>();
  private readonly files = new Map<number, number>();
  private readonly doorbell: number;
  private running = true;
  private paused = false;
  private loop: Promise<void> | undefined;
  readonly failure: Error | undefined = undefined;

  constructor(readonly id: number, private readonly shm: SharedMemory, opts: { manual?: boolean; fileOps?: FileOps; wrapDataplane?: (dp: DataplaneExports) => DataplaneExports } = {}) {
    this.inst = createDataplane(shm);
    this.server = new ScsiVringServer(
      opts.wrapDataplane ? opts.wrapDataplane(this.inst.dp) : this.inst.dp,
      shm.buffer,
      {
        signal: (i) => this.served.get(i)?.call?.write(1n),
        error: (i) => this.served.get(i)?.err?.write(1n),
      },
      (lun) => this.files.get(lun) ?? -1,
      opts.fileOps,
    );
    this.doorbell = processPollTable().allocDoorbell();
    if (!opts.manual) this.loop = this.run();
  }

  get vrings(): ReadonlySet<number> {
    return new Set(this.served.keys());
  }

  async attach(a: VringAttachment): Promise<void> {
    this.unwatch(a.binding.index);
    const kick = a.kick && EventFd.fromHandle(a.kick);
    kick?.watch(this.doorbell);
    this.served.set(a.binding.index, { a, kick, call: a.call && EventFd.fromHandle(a.call), err: a.err && EventFd.fromHandle(a.err) });
    this.server.attach(a.binding);
    this.wake();
  }

  private unwatch(index: number): void {
    this.served.get(index)?.kick?.unwatch(this.doorbell);
  }

  async detach(index: number): Promise<void> {
    this.unwatch(index);
    this.served.delete(index);
    this.server.detach(index);
    await this.server.idle();
  }

  async setFiles(files: FileBinding[]): Promise<void> {
    for (const f of files) {
      if (f.fd < 0) this.files.delete(f.lun);
      else this.files.set(f.lun, f.fd);
    }
  }

  kick(index: number): void {
    this.server.kicked(index);
    this.wake();
  }

  /** Drains run to completion within one call here, so between calls nothing is being served. */
  async pause(): Promise<void> {
    this.paused = true;
  }

  resume(): void {
    this.paused = false;
    this.wake();
  }

  async flush(): Promise<void> {
    await this.server.idle();
  }

  private wake(): void {
    processPollTable().ring(this.doorbell);
  }

  /**
   * Serves the attached vrings once: consumes kicks and drains every queue. Returns POLL_MORE
   * when some queue has more work right away, POLL_WAITING when a TMF waits for aborted
   * requests, else POLL_IDLE. This is all there is to the synchronous mode.
   */
  poll(): PollResult {
    if (this.paused) return POLL_IDLE;
    for (const [index, s] of this.served) if (s.kick?.tryRead() !== undefined) this.server.kicked(index);
    return this.server.poll();
  }

  private async run(): Promise<void> {
    const table = processPollTable();
    while (this.running) {
      const seen = table.value(this.doorbell);
      const r = this.poll();
      if (r === POLL_MORE) {
        await new Promise((res) => setImmediate(res));
        continue;
      }
      // A TMF waiting on aborted requests is looked at again every millisecond.
      await table.waitAsync(this.doorbell, seen, r === POLL_WAITING ? 1 : Infinity);
    }
  }

  async stop(): Promise<void> {
    for (const i of [...this.served.keys()]) await this.detach(i);
    this.running = false;
    this.wake();
    await this.loop;
    this.shm.device.release(this.inst.area);
  }
}
