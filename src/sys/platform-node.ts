// The platform on Node.js: node:worker_threads for threads, the package's dist/ folder for the
// wasm builds, util.debuglog for the log, /proc and taskset(1) for CPU time and pinning (Linux).
import { Worker, parentPort, receiveMessageOnPort, workerData, type MessagePort as NodeMessagePort } from "node:worker_threads";
import { execFileSync, spawnSync } from "node:child_process";
import { existsSync, openSync, readFileSync, readSync, readlinkSync } from "node:fs";
import { availableParallelism, cpus, totalmem } from "node:os";
import { fileURLToPath } from "node:url";
import { debuglog } from "node:util";
import type { CpuTime, Platform, PlatformThread, RunQueue } from "./platform.js";
import { parseCpuList } from "./cpu-list.js";

/** Cpus_allowed_list of a /proc status file; undefined off Linux. */
function cpusAllowed(status: string): number[] | undefined {
  try {
    const m = /^Cpus_allowed_list:\s*(\S+)$/m.exec(readFileSync(status, "utf8"));
    return m ? parseCpuList(m[1]) : undefined;
  } catch {
    return undefined;
  }
}

let pinnable: boolean | undefined;

/** /proc/loadavg kept open (a read is about 2 µs) and a buffer for it; null once it cannot be read. */
let loadavg: { fd: number; buf: Buffer; cpus: number } | null | undefined;

/** The fourth field of /proc/loadavg, "runnable/total" (proc(5)): the threads in state R now. */
function runQueue(): RunQueue | undefined {
  if (loadavg === undefined) {
    try {
      loadavg = { fd: openSync("/proc/loadavg", "r"), buf: Buffer.alloc(128), cpus: cpus().length || availableParallelism() };
    } catch {
      loadavg = null;
    }
  }
  if (loadavg === null) return undefined;
  const n = readSync(loadavg.fd, loadavg.buf, 0, loadavg.buf.length, 0);
  const runnable = Number.parseInt(loadavg.buf.toString("latin1", 0, n).split(" ")[3], 10);
  return Number.isFinite(runnable) ? { runnable, cpus: loadavg.cpus } : undefined;
}
const compiled = new Map<string, WebAssembly.Module>();

/** dist/NAME: beside dist/src/ when running compiled, in dist/ when running from the sources (vitest). */
function wasmPath(name: string): string {
  for (const rel of [`../../${name}`, `../../dist/${name}`]) {
    const p = fileURLToPath(new URL(rel, import.meta.url));
    if (existsSync(p)) return p;
  }
  throw new Error(`${name} not found: run \`npm run build\``);
}

export const platform: Platform = {
  name: "node",
  startThread(url, data, transfer = []): PlatformThread {
    const w = new Worker(url, { workerData: data, transferList: transfer as never });
    return {
      post: (m, t) => w.postMessage(m, t as never),
      onMessage: (fn) => w.on("message", fn),
      onError: (fn) => w.on("error", fn),
      onExit: (fn) => w.on("exit", fn),
      terminate: async () => void (await w.terminate()),
      ref: () => w.ref(),
      unref: () => w.unref(),
    };
  },
  threadData: async <T>() => workerData as T,
  postToParent: (m) => parentPort!.postMessage(m),
  receiveNow(port) {
    const out: unknown[] = [];
    for (let m = receiveMessageOnPort(port as unknown as NodeMessagePort); m; m = receiveMessageOnPort(port as unknown as NodeMessagePort)) out.push(m.message);
    return out;
  },
  yieldToEventLoop: () => new Promise((r) => setImmediate(r)),
  refPort(port, ref) {
    const p = port as unknown as NodeMessagePort;
    if (ref) p.ref();
    else p.unref();
  },
  wasmModule(name) {
    let m = compiled.get(name);
    if (!m) compiled.set(name, (m = new WebAssembly.Module(readFileSync(wasmPath(name)))));
    return m;
  },
  debugLog: debuglog("vhost-scsi"),
  threadCpuMs(): CpuTime | undefined {
    try {
      const stat = readFileSync("/proc/thread-self/stat", "utf8");
      // Fields after the command name (which may contain spaces) start after the last ')'.
      const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
      const tick = 1000 / 100; // USER_HZ is 100 on Linux
      return { user: Number(f[11]) * tick, system: Number(f[12]) * tick };
    } catch {
      return undefined;
    }
  },
  processCpus: () => cpusAllowed("/proc/self/status"),
  threadCpus: (tid) => cpusAllowed(tid === undefined ? "/proc/thread-self/status" : `/proc/self/task/${tid}/status`),
  canPinThreads() {
    pinnable ??= cpusAllowed("/proc/self/status") !== undefined && spawnSync("taskset", ["-V"], { stdio: "ignore" }).status === 0;
    return pinnable;
  },
  /** Through taskset(1) (util-linux) on the thread's id: Node has no binding for sched_setaffinity(2). */
  pinThread(cpus) {
    let tid: string;
    try {
      tid = readlinkSync("/proc/thread-self").split("/")[2];
    } catch {
      throw new Error("pinning a thread to CPUs needs Linux (sched_setaffinity)");
    }
    try {
      execFileSync("taskset", ["-p", "-c", cpus.join(","), tid], { stdio: ["ignore", "ignore", "pipe"] });
    } catch (e) {
      const err = e as { code?: string; stderr?: Buffer };
      if (err.code === "ENOENT") throw new Error("pinning a thread to CPUs needs taskset(1) (util-linux)");
      throw new Error(`cannot pin thread ${tid} to CPUs ${cpus.join(",")}: ${err.stderr?.toString().trim() || String(e)}`);
    }
  },
  cores: () => availableParallelism(),
  runQueue,
  totalMemory: () => totalmem(),
};
