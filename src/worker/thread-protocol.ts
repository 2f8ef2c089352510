import type { Platform } from "../sys/platform.js";
import type { VringAttachment } from "./worker.js";
import type { WorkerServedBackstore } from "../backstore/service.js";

/** What the control plane asks a worker thread to do (one message per ioctl-level step). */
export type WorkerCommand =
  | { op: "attach"; a: VringAttachment }
  | { op: "detach"; index: number }
  | { op: "backstores"; list: readonly WorkerServedBackstore[] }
  | { op: "kick"; index: number }
  | { op: "pause" }
  | { op: "resume" }
  | { op: "flush" }
  | { op: "cpu" }
  | { op: "stop" };

export interface WorkerRequest {
  seq: number;
  cmd: WorkerCommand;
}

export interface WorkerReply {
  seq: number;
  error?: string;
  /** For "cpu": the thread's CPU time in ms (NaN where the platform cannot tell it) and its time serving requests. */
  cpu?: { user: number; system: number; busy: number };
}

/** What a worker thread starts with. */
export interface WorkerInit {
  id: number;
  module: WebAssembly.Module;
  memory: WebAssembly.Memory;
  /** Its data plane instance's scratch area (allocated by the control plane). */
  area: number;
  pollTable: SharedArrayBuffer;
  doorbell: number;
  port: MessagePort;
  /** Int32 [0]: requests the control plane posted on `port` so far (see ControlPort). */
  posted: SharedArrayBuffer;
  /** The CPUs the thread pins itself to before serving (undefined: wherever the scheduler puts it). */
  cpus?: readonly number[];
}

/**
 * A worker thread's end of the control port. The thread blocks in Atomics.wait between passes,
 * so it takes requests when its doorbell moves: at once where the platform can read a port
 * without its event loop (Node), else by letting the event loop run until every request the
 * control plane counted as posted has arrived (a browser).
 */
export class ControlPort {
  private readonly queue: WorkerRequest[] = [];
  private received = 0;
  private readonly posted: Int32Array;

  constructor(
    readonly port: MessagePort,
    posted: SharedArrayBuffer,
    private readonly platform: Pick<Platform, "receiveNow" | "yieldToEventLoop">,
  ) {
    this.posted = new Int32Array(posted);
    // A listener also keeps a Node thread alive while it waits for requests.
    port.onmessage = (e: MessageEvent<WorkerRequest>) => this.arrived(e.data);
  }

  private arrived(m: WorkerRequest): void {
    this.queue.push(m);
    this.received++;
  }

  /** Every request posted so far, in order. */
  async take(): Promise<WorkerRequest[]> {
    const now = this.platform.receiveNow(this.port);
    if (now) for (const m of now) this.arrived(m as WorkerRequest);
    else while (this.received < Atomics.load(this.posted, 0)) await this.platform.yieldToEventLoop();
    return this.queue.splice(0);
  }

  reply(r: WorkerReply): void {
    this.port.postMessage(r);
  }
}
