// What the core needs of the JavaScript runtime it runs on, in one interface with a Node and a
// browser implementation (platform-node.ts, platform-browser.ts). The core imports the one that
// fits as `#platform` (package.json "imports": the "browser" condition picks the browser one),
// so a browser bundle holds no `node:` module: threads are node:worker_threads or module Web
// Workers, wasm builds are read from disk or fetched, the debug log goes to stderr or the console,
// and what only Linux and Node can do (CPU time per thread, pinning) is absent in a browser.

/** A thread started by the platform: a node:worker_threads Worker or a module Web Worker. */
export interface PlatformThread {
  post(message: unknown, transfer?: Transferable[]): void;
  onMessage(fn: (m: unknown) => void): void;
  onError(fn: (e: Error) => void): void;
  /** The thread ended (Node: its exit code; a browser reports only terminate()). */
  onExit(fn: (code: number) => void): void;
  terminate(): Promise<void>;
  /** Whether the thread keeps the process alive (Node's ref/unref; nothing in a browser). */
  ref(): void;
  unref(): void;
}

/** A thread's CPU time so far, ms. */
export interface CpuTime {
  user: number;
  system: number;
}

/** How many threads want a CPU, and how many CPUs there are (Linux: /proc/loadavg, as uptime(1) reads it). */
export interface RunQueue {
  runnable: number;
  cpus: number;
}

export interface Platform {
  readonly name: "node" | "browser";
  /** Starts a thread running the module at `url` (an ES module) with `data`; `transfer` is moved, not copied. */
  startThread(url: URL, data: unknown, transfer?: Transferable[]): PlatformThread;
  /** In a thread this platform started: the data it was started with. */
  threadData<T>(): Promise<T>;
  /** In such a thread: sends a message to the thread that started it. */
  postToParent(message: unknown): void;
  /**
   * The messages already delivered to `port`, taken now without running the event loop (Node's
   * receiveMessageOnPort); undefined where messages arrive only through the event loop (a
   * browser: the caller yields to it instead).
   */
  receiveNow(port: MessagePort): unknown[] | undefined;
  /** Lets the event loop run once (macrotasks such as port messages included). */
  yieldToEventLoop(): Promise<void>;
  /** Whether a message port keeps the process alive while it listens (Node); nothing in a browser. */
  refPort(port: MessagePort, ref: boolean): void;
  /** A WebAssembly build shipped with the package (dist/NAME, or beside the browser bundle), compiled once per thread. */
  wasmModule(name: string): WebAssembly.Module;
  /** The debug log: silent unless enabled (NODE_DEBUG=vhost-scsi; in a browser globalThis.VHOST_SCSI_DEBUG). */
  readonly debugLog: (format: string, ...args: unknown[]) => void;
  /** The calling thread's CPU time; undefined where it cannot be read. */
  threadCpuMs(): CpuTime | undefined;
  /** The CPUs this process may run on; undefined where unknown. */
  processCpus(): number[] | undefined;
  /** The CPUs a thread of this process (by thread id, the calling one by default) may run on; undefined where unknown. */
  threadCpus(tid?: string): number[] | undefined;
  /** Whether threads can be pinned to CPUs here. */
  canPinThreads(): boolean;
  /** Pins the calling thread to `cpus`; throws where it cannot. */
  pinThread(cpus: readonly number[]): void;
  /** The CPUs the machine offers this program. */
  cores(): number;
  /**
   * The threads runnable on the whole machine right now (the caller among them) and its online
   * CPUs; undefined where the platform cannot tell.
   */
  runQueue(): RunQueue | undefined;
  /** The machine's memory, bytes (a browser tells it roughly, or not at all: 0). */
  totalMemory(): number;
}
