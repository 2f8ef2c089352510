// A guest job's interrupt wait: the call eventfds of all its queues ring one doorbell of the
// poll table, so a job driving several queues sleeps until any of them interrupts (as a vCPU
// takes any of its queues' interrupts), not only the first.
import { EventFd, type EventFdHandle, type PollTable } from "../src/sys/eventfd.js";

/** What the wait needs of an engine: interrupts asked for on every queue, and turned off again. */
export interface Armable {
  /** Asks every queue for an interrupt at its next completion; true when one is there already. */
  arm(): boolean;
  disarm(): void;
}

export class JobInterrupts {
  private readonly calls: EventFd[];
  private readonly table: PollTable;
  private readonly doorbell: number;

  constructor(calls: EventFdHandle[]) {
    this.calls = calls.map((h) => EventFd.fromHandle(h));
    this.table = this.calls[0].pollTable;
    this.doorbell = this.table.allocDoorbell();
    for (const c of this.calls) c.watch(this.doorbell);
  }

  /** Sleeps until a queue interrupts or `ms` pass, unless arming the engines finds a completion there already; consumes the signals. */
  sleep(engines: readonly Armable[], ms: number): void {
    const seen = this.table.value(this.doorbell);
    let ready = false;
    for (const e of engines) ready = e.arm() || ready;
    if (!ready) this.table.wait(this.doorbell, seen, ms);
    for (const c of this.calls) c.tryRead();
    for (const e of engines) e.disarm();
  }

  /** Stops listening (the eventfds' watch slots are few). */
  close(): void {
    for (const c of this.calls) c.unwatch(this.doorbell);
  }
}
