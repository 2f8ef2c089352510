import type { EventFdHandle } from "../sys/eventfd.js";
import type { VringBinding } from "./vring-server.js";
import type { WorkerServedBackstore } from "../backstore/service.js";

/** One vring as handed to a worker: where it is, and its eventfds (unset: null). */
export interface VringAttachment {
  binding: VringBinding;
  kick: EventFdHandle | null;
  call: EventFdHandle | null;
  err: EventFdHandle | null;
  /** The device's log eventfd (VHOST_SET_LOG_FD), signalled after the used ring is logged. */
  log: EventFdHandle | null;
  /** VHOST_SET_VRING_BUSYLOOP_TIMEOUT, in microseconds. */
  busyloopUs: number;
}

/**
 * A vhost worker (the kernel's vhost_worker): serves the vrings attached to it. Thread workers
 * run in node:worker_threads; the local worker runs in the calling thread.
 */
export interface VhostWorker {
  readonly id: number;
  /** Serves a vring (replacing an earlier attachment of the same index). */
  attach(a: VringAttachment): Promise<void>;
  /** Stops serving a vring; resolves once nothing of it runs and its requests in flight are answered. */
  detach(index: number): Promise<void>;
  /** Serves these backstores' submission queues itself (and no others) between its passes. */
  setBackstores(list: readonly WorkerServedBackstore[]): Promise<void>;
  /** Runs vring index's handler as if it had been kicked (the kernel's vhost_work_queue). */
  kick(index: number): void;
  /** Resolves once the worker serves nothing and will not until resume(). */
  pause(): Promise<void>;
  resume(): void;
  /** Resolves after the pass in progress when it was called is done (vhost_worker_flush). */
  flush(): Promise<void>;
  /** Ends the worker. */
  stop(): Promise<void>;
  /** CPU time the worker used so far, and the part of it spent serving requests (ms), where it can be told. */
  cpuTime?(): Promise<{ user: number; system: number; busy: number } | undefined>;
  /** Vring indices attached. */
  readonly vrings: ReadonlySet<number>;
  /** Set when the worker died; its vrings are not served until reattached elsewhere. */
  readonly failure: Error | undefined;
}
