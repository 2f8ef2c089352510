import type { MessagePort } from "node:worker_threads";
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
  /** For "cpu": the thread's CPU time in ms. */
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
  /** The CPUs the thread pins itself to before serving (undefined: wherever the scheduler puts it). */
  cpus?: readonly number[];
}
