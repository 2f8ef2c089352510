// The platform in a browser: module Web Workers for threads (their data comes as the first
// message), the wasm builds fetched from beside the bundle (compiled before use on a page's main
// thread, where synchronous compiling of large modules is not allowed; fetched synchronously in
// a worker), the console for the debug log (globalThis.VHOST_SCSI_DEBUG = true turns it on).
// A browser tells no CPU time per thread and pins nothing.
import type { Platform, PlatformThread } from "./platform.js";

const compiled = new Map<string, WebAssembly.Module>();
/** The wasm builds the package ships (dist/ in Node, beside the bundle here). */
const WASM_BUILDS = ["dataplane.wasm", "dataplane-reloc.wasm", "guest-engine.wasm"];

const wasmUrl = (name: string) => new URL(`./${name}`, import.meta.url);
const inWorker = () => typeof (globalThis as { WorkerGlobalScope?: unknown }).WorkerGlobalScope !== "undefined";

/**
 * Fetches and compiles the wasm builds, asynchronously: a page's main thread must do this before
 * using the data plane (the browser entry does it when it is imported).
 */
export async function preloadWasm(names: readonly string[] = WASM_BUILDS): Promise<void> {
  await Promise.all(
    names.map(async (n) => {
      if (!compiled.has(n)) compiled.set(n, await WebAssembly.compileStreaming(fetch(wasmUrl(n))));
    }),
  );
}

/** The first message a thread gets: the data it was started with. */
let started: Promise<unknown> | undefined;
if (inWorker()) {
  started = new Promise((resolve) => {
    const first = (e: MessageEvent) => {
      globalThis.removeEventListener("message", first as EventListener);
      resolve(e.data);
    };
    globalThis.addEventListener("message", first as EventListener);
  });
}

/** A task queued through a message channel: runs after the messages already queued, without timers' clamping. */
function nextTask(): Promise<void> {
  return new Promise((resolve) => {
    const { port1, port2 } = new MessageChannel();
    port1.onmessage = () => {
      port1.close();
      resolve();
    };
    port2.postMessage(0);
  });
}

export const platform: Platform = {
  name: "browser",
  startThread(url, data, transfer = []): PlatformThread {
    const w = new Worker(url, { type: "module" });
    w.postMessage(data, transfer);
    const exits: ((code: number) => void)[] = [];
    return {
      post: (m, t) => w.postMessage(m, t ?? []),
      onMessage: (fn) => w.addEventListener("message", (e) => fn(e.data)),
      onError: (fn) =>
        w.addEventListener("error", (e) => {
          e.preventDefault();
          fn(new Error(e.message || "the worker failed"));
        }),
      onExit: (fn) => void exits.push(fn),
      async terminate() {
        w.terminate();
        for (const fn of exits) fn(1);
      },
      ref() {},
      unref() {},
    };
  },
  threadData: async <T>() => {
    if (!started) throw new Error("not a thread started by this platform");
    return (await started) as T;
  },
  postToParent: (m) => (globalThis as unknown as { postMessage(m: unknown): void }).postMessage(m),
  receiveNow: () => undefined,
  yieldToEventLoop: nextTask,
  refPort() {},
  wasmModule(name) {
    let m = compiled.get(name);
    if (m) return m;
    if (!inWorker()) throw new Error(`${name} is not compiled yet: await preloadWasm() first (the browser entry does)`);
    // A worker may block: fetch it synchronously and compile it here.
    const xhr = new XMLHttpRequest();
    xhr.open("GET", wasmUrl(name), false);
    xhr.responseType = "arraybuffer";
    xhr.send();
    if (xhr.status !== 200) throw new Error(`${name}: HTTP ${xhr.status}`);
    compiled.set(name, (m = new WebAssembly.Module(xhr.response as ArrayBuffer)));
    return m;
  },
  debugLog: (format, ...args) => {
    if ((globalThis as { VHOST_SCSI_DEBUG?: boolean }).VHOST_SCSI_DEBUG) console.debug(`VHOST-SCSI: ${format}`, ...args);
  },
  threadCpuMs: () => undefined,
  processCpus: () => undefined,
  threadCpus: () => undefined,
  canPinThreads: () => false,
  pinThread() {
    throw new Error("a browser cannot pin a thread to CPUs");
  },
  cores: () => navigator.hardwareConcurrency || 1,
  runQueue: () => undefined,
  totalMemory: () => ((navigator as { deviceMemory?: number }).deviceMemory ?? 0) * 2 ** 30,
};
