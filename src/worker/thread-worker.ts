import { platform } from "#platform";
import type { PlatformThread } from "../sys/platform.js";
import { compiledModule } from "../sys/compiled-module.js";
import { processPollTable } from "../sys/eventfd.js";
import type { SharedMemory } from "../memory/shared-memory.js";
import { dataplaneModule, type DataplaneExports } from "../wasm/dataplane.js";
import type { WorkerCommand, WorkerInit, WorkerReply } from "./thread-protocol.js";
import { VhostError } from "../sys/errors.js";
import { EventFd } from "../sys/eventfd.js";
import { log } from "../sys/log.js";
import { cpusProblem } from "../sys/affinity.js";
import type { VhostWorker, VringAttachment } from "./worker.js";
import type { WorkerServedBackstore } from "../backstore/service.js";

/**
 * A vhost worker in its own thread (the kernel's vhost task: a node:worker_threads thread, or a
 * Web Worker), with its own data plane instance over the shared memory. The control plane talks
 * to it over a message port, counts what it posted in shared memory, and rings its doorbell;
 * every request is acknowledged. A thread that dies is reported:
 * its vrings' err eventfds are signalled, `failure` is set, and requests to it fail with EIO.
 */
export class ThreadWorker implements VhostWorker {
  private readonly thread: PlatformThread;
  private readonly port: MessagePort;
  /** Requests posted so far (ControlPort: a thread that receives messages only through its event loop waits for them). */
  private readonly posted = new Int32Array(new SharedArrayBuffer(4));
  private readonly doorbell: number;
  private readonly pending = new Map<number, { resolve: (r: WorkerReply) => void; reject: (e: Error) => void }>();
  private readonly attached = new Map<number, VringAttachment>();
  private seq = 0;
  private stopping = false;
  private readonly area: number;
  failure: Error | undefined;

  /** `cpus`: the CPUs the thread runs on (checked here; the thread pins itself). */
  constructor(
    readonly id: number,
    private readonly shm: SharedMemory,
    dp: DataplaneExports,
    cpus?: readonly number[],
  ) {
    const problem = cpus && cpusProblem(cpus);
    if (problem) throw new VhostError("EINVAL", `worker ${id}: ${problem}`);
    const table = processPollTable();
    this.doorbell = table.allocDoorbell();
    this.area = shm.device.alloc(dp.instance_area_size(), 16, `worker ${id} instance area`);
    const { port1, port2 } = new MessageChannel();
    this.port = port1;
    const init: WorkerInit = {
      id,
      module: dataplaneModule(shm.staticBase),
      memory: shm.memory,
      area: this.area,
      pollTable: table.sab,
      doorbell: this.doorbell,
      port: port2,
      posted: this.posted.buffer as SharedArrayBuffer,
      cpus,
    };
    this.thread = platform.startThread(compiledModule(new URL("./thread-main.ts", import.meta.url)), init, [port2]);
    port1.onmessage = (e: MessageEvent<WorkerReply>) => {
      const r = e.data;
      const p = this.pending.get(r.seq);
      if (!p) return;
      this.pending.delete(r.seq);
      if (this.pending.size === 0) platform.refPort(port1, false);
      if (r.error) p.reject(new VhostError("EIO", `worker ${id}: ${r.error}`));
      else p.resolve(r);
    };
    // A thread that only waits for kicks does not keep the process alive (as Node's idle handles
    // do not): the thread never, its port while a request to it is pending.
    this.thread.unref();
    platform.refPort(port1, false);
    this.thread.onError((e) => this.died(e));
    this.thread.onExit((code) => {
      if (!this.stopping) this.died(new Error(`worker ${id} exited with code ${code}`));
    });
  }

  private died(e: Error): void {
    if (this.failure) return;
    this.failure = e;
    log("vhost worker %d died: %s; its vrings get an error signal", this.id, e.message);
    for (const a of this.attached.values()) if (a.err) EventFd.fromHandle(a.err).write(1n);
    for (const p of this.pending.values()) p.reject(new VhostError("EIO", `worker ${this.id} died: ${e.message}`));
    this.pending.clear();
    platform.refPort(this.port, false);
  }

  private async send(cmd: WorkerCommand): Promise<void> {
    await this.request(cmd);
  }

  private request(cmd: WorkerCommand): Promise<WorkerReply> {
    if (this.failure) return Promise.reject(new VhostError("EIO", `worker ${this.id} died: ${this.failure.message}`));
    const seq = ++this.seq;
    return new Promise((resolve, reject) => {
      if (this.pending.size === 0) platform.refPort(this.port, true);
      this.pending.set(seq, { resolve, reject });
      this.port.postMessage({ seq, cmd });
      Atomics.add(this.posted, 0, 1);
      processPollTable().ring(this.doorbell);
    });
  }

  get vrings(): ReadonlySet<number> {
    return new Set(this.attached.keys());
  }

  /** The thread (tests terminate it to simulate a crash). */
  get platformThread(): PlatformThread {
    return this.thread;
  }

  async attach(a: VringAttachment): Promise<void> {
    this.attached.set(a.binding.index, a);
    await this.send({ op: "attach", a });
  }

  async detach(index: number): Promise<void> {
    this.attached.delete(index);
    if (this.failure) return;
    await this.send({ op: "detach", index });
  }

  setBackstores(list: readonly WorkerServedBackstore[]): Promise<void> {
    return this.send({ op: "backstores", list });
  }

  kick(index: number): void {
    void this.send({ op: "kick", index }).catch(() => {});
  }

  pause(): Promise<void> {
    return this.send({ op: "pause" });
  }

  resume(): void {
    void this.send({ op: "resume" }).catch(() => {});
  }

  flush(): Promise<void> {
    return this.failure ? Promise.resolve() : this.send({ op: "flush" });
  }

  /** The thread's CPU time so far and the time its drains were busy serving, in ms. */
  async cpuTime(): Promise<{ user: number; system: number; busy: number } | undefined> {
    return (await this.request({ op: "cpu" })).cpu;
  }

  async stop(): Promise<void> {
    this.stopping = true;
    if (!this.failure) {
      await this.send({ op: "stop" }).catch(() => {});
    }
    await this.thread.terminate();
    this.attached.clear();
    this.shm.device.release(this.area);
  }
}
