import { VhostError } from "./errors.js";

/** eventfd(2) flags (values as in <sys/eventfd.h> on Linux x86_64). */
export const EFD_SEMAPHORE = 1;
export const EFD_CLOEXEC = 0o2000000;
export const EFD_NONBLOCK = 0o4000;

/** The counter's limit: a write that would pass it blocks or fails with EAGAIN (eventfd(2)). */
const EFD_MAX = 0xfffffffffffffffen;

/** Int32 words of an eventfd's shared state. */
const SEQ = 2; // changes on every read and write: the futex word waiters sleep on
const SEM = 3; // 1 when created with EFD_SEMAPHORE
const WATCH = 4; // poll registrations: doorbell index + 1, or 0
const WATCH_SLOTS = 8;
const SLEEPERS = WATCH + WATCH_SLOTS; // threads waiting on SEQ: a change wakes only when there are some
const EVENTFD_BYTES = (SLEEPERS + 1) * 4;

/**
 * A table of doorbells: words a thread sleeps on to wait for any of several eventfds, the way
 * the kernel's vhost_poll hooks a worker onto many eventfds' wait queues. Word 0 allocates.
 * Each doorbell has a count of its sleepers in the table's second half: ring() makes the wake
 * call (a futex wake, costly) only when someone sleeps, as the kernel's wake_up skips an
 * empty wait queue.
 */
export class PollTable {
  readonly words: Int32Array;
  /** Doorbells in the table; sleepers counts follow them. */
  private readonly size: number;
  constructor(readonly sab: SharedArrayBuffer = new SharedArrayBuffer(4 * 8192)) {
    this.words = new Int32Array(sab);
    this.size = this.words.length >> 1;
  }
  /** A new doorbell index. */
  allocDoorbell(): number {
    const i = Atomics.add(this.words, 0, 1) + 1;
    if (i >= this.size) throw new VhostError("ENOMEM", "poll table full");
    return i;
  }
  /**
   * Sleeps (worker threads) until doorbell i moves from `seen`, or timeout ms. The sleeper is
   * counted before the word is compared, so a ring() that the comparison misses sees the count.
   */
  wait(i: number, seen: number, timeout = Infinity): void {
    const { words } = this;
    Atomics.add(words, this.size + i, 1);
    Atomics.wait(words, i, seen, timeout);
    Atomics.sub(words, this.size + i, 1);
  }
  /** Resolves when doorbell i moves from `seen`, or after timeout ms (any thread). */
  async waitAsync(i: number, seen: number, timeout = Infinity): Promise<void> {
    const { words } = this;
    Atomics.add(words, this.size + i, 1);
    try {
      const r = Atomics.waitAsync(words, i, seen, timeout);
      if (r.async) await r.value;
    } finally {
      Atomics.sub(words, this.size + i, 1);
    }
  }
  value(i: number): number {
    return Atomics.load(this.words, i);
  }
  ring(i: number): void {
    Atomics.add(this.words, i, 1);
    if (Atomics.load(this.words, this.size + i) !== 0) Atomics.notify(this.words, i);
  }
}

/** The process-wide poll table eventfds are created against unless told otherwise. */
let defaultPollTable: PollTable | undefined;
export function processPollTable(): PollTable {
  defaultPollTable ??= new PollTable();
  return defaultPollTable;
}

/** What crosses to another thread: the shared state (postMessage clones SharedArrayBuffers). */
export interface EventFdHandle {
  sab: SharedArrayBuffer;
  poll: SharedArrayBuffer;
  flags: number;
}

/**
 * eventfd(2) over a SharedArrayBuffer: a 64-bit counter that write() adds to and read()
 * takes (all of it, or 1 with EFD_SEMAPHORE); reads of 0 and writes past the limit block, or
 * fail with EAGAIN under EFD_NONBLOCK. Blocking waits use Atomics.wait (allowed in Node's
 * threads); readAsync() uses Atomics.waitAsync. Any thread holding the handle can use it.
 */
export class EventFd {
  readonly counter: BigUint64Array;
  readonly words: Int32Array;
  readonly pollTable: PollTable;
  private closed = false;

  private constructor(
    readonly sab: SharedArrayBuffer,
    poll: SharedArrayBuffer,
    readonly flags: number,
  ) {
    this.counter = new BigUint64Array(sab, 0, 1);
    this.words = new Int32Array(sab);
    this.pollTable = poll === processPollTable().sab ? processPollTable() : new PollTable(poll);
  }

  /** eventfd(initval, flags). */
  static create(initval = 0, flags = 0, poll: PollTable = processPollTable()): EventFd {
    if (flags & ~(EFD_SEMAPHORE | EFD_CLOEXEC | EFD_NONBLOCK)) throw new VhostError("EINVAL", `eventfd flags ${flags}`);
    if (!Number.isInteger(initval) || initval < 0 || initval > 0xffffffff) throw new VhostError("EINVAL", `eventfd initval ${initval}`);
    const fd = new EventFd(new SharedArrayBuffer(EVENTFD_BYTES), poll.sab, flags);
    fd.counter[0] = BigInt(initval);
    fd.words[SEM] = flags & EFD_SEMAPHORE ? 1 : 0;
    return fd;
  }

  /** Re-creates an eventfd in another thread from its handle. */
  static fromHandle(h: EventFdHandle): EventFd {
    return new EventFd(h.sab, h.poll, h.flags);
  }

  get handle(): EventFdHandle {
    return { sab: this.sab, poll: this.pollTable.sab, flags: this.flags };
  }

  get nonblocking(): boolean {
    return (this.flags & EFD_NONBLOCK) !== 0;
  }

  /** The counter's current value (for tests and diagnostics; reading it does not consume). */
  get value(): bigint {
    return Atomics.load(this.counter, 0);
  }

  private check(): void {
    if (this.closed) throw new VhostError("EBADF", "eventfd is closed");
  }

  private changed(): void {
    Atomics.add(this.words, SEQ, 1);
    if (Atomics.load(this.words, SLEEPERS) !== 0) Atomics.notify(this.words, SEQ);
    for (let k = 0; k < WATCH_SLOTS; k++) {
      const w = Atomics.load(this.words, WATCH + k);
      if (w) this.pollTable.ring(w - 1);
    }
  }

  /** Adds value (1..2^64-2) to the counter; EAGAIN (nonblocking) or waits when it would pass the limit. */
  write(value: bigint | number = 1n): void {
    this.check();
    const v = BigInt(value);
    if (v < 0n || v > EFD_MAX) throw new VhostError("EINVAL", `eventfd write of ${v}`);
    for (;;) {
      const seen = Atomics.load(this.words, SEQ);
      const cur = Atomics.load(this.counter, 0);
      if (cur + v > EFD_MAX) {
        if (this.nonblocking) throw new VhostError("EAGAIN", "eventfd counter would overflow");
        this.sleep(seen, Infinity);
        continue;
      }
      if (Atomics.compareExchange(this.counter, 0, cur, cur + v) === cur) break;
    }
    if (v > 0n) this.changed();
  }

  /** Takes the value without blocking, or undefined when it is 0. */
  tryRead(): bigint | undefined {
    this.check();
    for (;;) {
      const cur = Atomics.load(this.counter, 0);
      if (cur === 0n) return undefined;
      const take = this.words[SEM] ? 1n : cur;
      if (Atomics.compareExchange(this.counter, 0, cur, cur - take) === cur) {
        this.changed();
        return take;
      }
    }
  }

  /** read(2): the counter (or 1 in semaphore mode); EAGAIN when 0 and nonblocking, else waits. */
  read(timeoutMs = Infinity): bigint {
    for (;;) {
      const seen = Atomics.load(this.words, SEQ);
      const v = this.tryRead();
      if (v !== undefined) return v;
      if (this.nonblocking) throw new VhostError("EAGAIN", "eventfd counter is 0");
      if (this.sleep(seen, timeoutMs) === "timed-out") throw new VhostError("EAGAIN", "eventfd read timed out");
    }
  }

  /** read(2) that waits with Atomics.waitAsync, so the calling thread's event loop keeps running. */
  async readAsync(timeoutMs = Infinity): Promise<bigint> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const seen = Atomics.load(this.words, SEQ);
      const v = this.tryRead();
      if (v !== undefined) return v;
      const left = deadline - Date.now();
      if (left <= 0) throw new VhostError("EAGAIN", "eventfd read timed out");
      await this.waitChangeAsync(seen, left);
    }
  }

  /** As waitChange(), with Atomics.waitAsync (any thread; its event loop keeps running). */
  async waitChangeAsync(seq: number, timeoutMs = Infinity): Promise<void> {
    Atomics.add(this.words, SLEEPERS, 1);
    try {
      const r = Atomics.waitAsync(this.words, SEQ, seq, timeoutMs);
      if (r.async) await r.value;
    } finally {
      Atomics.sub(this.words, SLEEPERS, 1);
    }
  }

  /** A number that changes with every read and write (what waitChange() compares against). */
  get seq(): number {
    return Atomics.load(this.words, SEQ);
  }

  /**
   * Sleeps (worker threads) until the eventfd is read or written after seq was taken, or
   * timeoutMs; consumes nothing. For a thread that polls a ring and sleeps on its notifier.
   */
  waitChange(seq: number, timeoutMs = Infinity): void {
    this.sleep(seq, timeoutMs);
  }

  /** Atomics.wait on SEQ, counted as a sleeper first so that a change that the wait misses wakes it. */
  private sleep(seen: number, timeoutMs: number): "ok" | "not-equal" | "timed-out" {
    Atomics.add(this.words, SLEEPERS, 1);
    const r = Atomics.wait(this.words, SEQ, seen, timeoutMs);
    Atomics.sub(this.words, SLEEPERS, 1);
    return r;
  }

  /** Registers doorbell i of this eventfd's poll table to ring on every change. */
  watch(doorbell: number): void {
    for (let k = 0; k < WATCH_SLOTS; k++) {
      if (Atomics.compareExchange(this.words, WATCH + k, 0, doorbell + 1) === 0) return;
    }
    throw new VhostError("ENOSPC", "eventfd has too many watchers");
  }

  unwatch(doorbell: number): void {
    for (let k = 0; k < WATCH_SLOTS; k++) Atomics.compareExchange(this.words, WATCH + k, doorbell + 1, 0);
  }

  close(): void {
    this.closed = true;
  }
}

/**
 * Calls fn after every signal on efd (each read that took a count), waiting with
 * Atomics.waitAsync so the calling thread's event loop keeps running, for as long as the eventfd
 * is open and active() holds (checked at least every 100 ms, and before each read: once it stops
 * holding, the counter is left to others). The guest notifiers of the device model and of a
 * remote transport run on it.
 */
export function onSignal(efd: EventFd, fn: () => void, active: () => boolean): void {
  void (async () => {
    while (active()) {
      const seq = efd.seq;
      let got: bigint | undefined;
      try {
        got = efd.tryRead();
      } catch {
        return; // closed: no more signals
      }
      if (got !== undefined) fn();
      else await efd.waitChangeAsync(seq, 100);
    }
  })();
}
