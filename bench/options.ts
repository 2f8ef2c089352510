import { parseArgs } from "node:util";
import { availableParallelism } from "node:os";
import { backstoreTypes, parseBackstoreArg } from "../src/backstore/index.js";
import { allowedCpus, canPinThreads, cpusProblem, parseCpuList } from "../src/sys/affinity.js";

type OutputFormat = "normal" | "json" | "json+";

/** The benchmark's options, fio's names where fio has them. */
export interface FioOptions {
  rw: "read" | "write" | "randread" | "randwrite" | "randrw" | "rw";
  bs: number;
  iodepth: number;
  queues: number;
  numjobs: number;
  workers: number;
  /** Guest threads the jobs run on (job j on thread j % guestThreads). */
  guestThreads: number;
  /** Time-based run length in ms (0: run until each job has done `size` bytes). */
  runtimeMs: number;
  /** Region of the LUN the jobs address, in bytes. */
  size: number;
  rwmixread: number;
  /** `--backstore NAME:ARGS` as the registered type parsed it (its name in `backstore`). */
  backstore: ReturnType<typeof parseBackstoreArg>;
  /** The text given, for the report. */
  backstoreArg: string;
  /** I/O threads of a file backstore (undefined: its default). */
  ioThreads: number | undefined;
  blockSize: 512 | 4096;
  verify: boolean;
  /** --output-format, in the order given: the text report, fio's JSON, fio's JSON with latency bins. */
  formats: OutputFormat[];
  /** fio's log files: the name stem of each (undefined: not written), and the averaging window, ms. */
  iopsLog: string | undefined;
  bwLog: string | undefined;
  latLog: string | undefined;
  logAvgMsec: number;
  /** --plot: an SVG file with IOPS over time and the latency percentiles. */
  plot: string | undefined;
  /** VHOST_SET_VRING_BUSYLOOP_TIMEOUT for the request queues, µs. */
  busyPollUs: number;
  /** How long a guest job polls its used rings without completions before sleeping on the interrupt, µs. */
  guestPollUs: number;
  /** The guest jobs' load engine: WebAssembly (dist/guest-engine.wasm) or the TypeScript PolledScsiQueue. */
  engine: "wasm" | "ts";
  /** The CPUs each guest thread runs on (by thread), and each vhost worker (by worker id); undefined: not pinned. */
  guestCpus: number[][] | undefined;
  workerCpus: number[][] | undefined;
  help: boolean;
}

export class OptionError extends Error {}

const UNITS: Record<string, number> = { "": 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3, t: 1024 ** 4 };

/** A fio size: 4096, 4k, 128K, 1m, 1g (binary multiples, as fio's default kb_base). */
export function parseSize(name: string, v: string): number {
  const m = /^(\d+)([kmgt]?)(i?b)?$/i.exec(v.trim());
  if (!m) throw new OptionError(`--${name}: '${v}' is not a size (e.g. 4k, 128k, 1g)`);
  const n = Number(m[1]) * UNITS[m[2].toLowerCase()];
  if (!Number.isSafeInteger(n) || n <= 0) throw new OptionError(`--${name}: '${v}' is out of range`);
  return n;
}

/** A fio time: 10 (seconds), 500ms, 2s, 1m. */
export function parseTime(name: string, v: string): number {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m|h)?$/i.exec(v.trim());
  if (!m) throw new OptionError(`--${name}: '${v}' is not a time (e.g. 10, 10s, 500ms)`);
  const mult = { ms: 1, s: 1000, m: 60000, h: 3600000 }[(m[2] ?? "s").toLowerCase() as "s"];
  return Number(m[1]) * mult;
}

function int(name: string, v: string, min: number, max: number): number {
  const n = Number(v);
  if (!Number.isInteger(n) || n < min || n > max) throw new OptionError(`--${name}: '${v}' must be an integer from ${min} to ${max}`);
  return n;
}

/** The benchmark's own name, in its messages (it speaks fio's options but is not fio). */
export const PROGRAM = "vhost-scsi-bench";

/** --help, with the backstore types registered. */
export function helpText(): string {
  const kinds = backstoreTypes()
    .map((t) => t.usage)
    .join(", ");
  return `usage: npm start -- [options]

The fio-like benchmark of the whole vhost-scsi path: guest driver -> virtqueues -> vhost
worker threads -> SCSI target (WASM) -> backstore -> used ring -> guest.

  --rw=STR             read, write, randread, randwrite, randrw, rw   [randread]
  --bs=SIZE            bytes per I/O, a multiple of --block-size         [4k]
  --iodepth=N          I/Os in flight per job                            [32]
  --rwmixread=PCT      share of reads in randrw/rw                       [50]
  --queues=N           virtio-scsi request queues                        [1]
  --numjobs=N          fio jobs, each driving its own queues             [1]
  --workers=N          vhost worker threads serving the queues           [1]
  --guest-threads=N    guest threads the jobs run on (the guest's vCPUs)
                       [numjobs; when jobs and workers outnumber the cores,
                       cores - workers (at least 1)]
  --runtime=TIME       run for this long (10, 10s, 500ms)                [5s]
  --size=SIZE          region of the LUN to address; without --runtime,
                       each job does this many bytes and stops           [256m]
  --backstore=NAME:ARGS  ${kinds.padEnd(43)} [ram]
  --io-threads=N       I/O threads serving a file backstore; 0: the vhost
                       workers do its I/O        [0 on 2 cores or fewer, else 2]
  --block-size=N       logical block size, 512 or 4096                   [512]
  --busy-poll=USEC     vhost busy-poll window (VHOST_SET_VRING_BUSYLOOP_TIMEOUT) [200]
  --guest-poll=USEC    guest jobs poll the used ring this long before sleeping
                       on the interrupt (fio's hipri, Linux io_poll)        [200]
                       (when guest threads + workers outnumber the cores, the
                       workers default to 0, and so do the guest threads when
                       they are as many as the cores)
  --engine=wasm|ts     the guest jobs' load engine: WebAssembly, or the
                       TypeScript guest driver (PolledScsiQueue)            [wasm]
  --cpus_allowed=LIST  CPUs the guest threads run on (0-3,6), or all
  --cpus_allowed_policy=shared|split
                       every guest thread on all of them, or one each   [shared]
  --worker-cpus=LIST   CPUs the vhost workers run on, one each round robin, or all
                       [with neither option, and fewer guest threads than
                       cores: guest thread t on CPU t, the workers round robin
                       on the other CPUs]
  --verify             write checksummed blocks, read them back, count mismatches
  --output-format=LIST normal, json, json+ (comma-separated, as fio): the text
                       report; fio's JSON; fio's JSON with clat_ns.bins   [normal]
  --json               --output-format=json
  --write_iops_log=NAME, --write_bw_log=NAME, --write_lat_log=NAME
                       fio's log files NAME_iops.N.log, NAME_bw.N.log,
                       NAME_lat.N.log / _clat / _slat (N: the job, from 1)
  --log_avg_msec=N     average the logs over N ms (fio logs every I/O when
                       0; here 0 means 100: a line per I/O is too many)    [100]
  --plot=FILE.svg      draw IOPS over time per job and the latency
                       percentiles into an SVG file
  -h, --help           this text
`;
}

/** Threads that poll or run the whole time: the guest's threads and the vhost workers. */
export const busyThreads = (o: { guestThreads: number; workers: number }) => o.guestThreads + o.workers;

/**
 * How many threads the guest runs its jobs on by default: one per job while jobs and workers fit
 * the cores; otherwise the cores the workers leave (at least one), as a VM with fewer vCPUs than
 * fio jobs runs them. Two jobs on one thread served 1.3-1.5x the IOPS of two threads beside two
 * workers on two cores (docs/performance.md).
 */
function defaultGuestThreads(numjobs: number, workers: number): number {
  const cores = availableParallelism();
  return numjobs + workers <= cores ? numjobs : Math.max(1, Math.min(numjobs, cores - workers));
}

/**
 * The polling windows' defaults, µs. 200 for all while guest threads and vhost workers fit the
 * cores. Beyond that a worker shares its core, and one that spins keeps the other off it: the
 * workers sleep between kicks (busy-poll 0), and the guest threads keep polling while they are
 * fewer than the cores (each still has one), else they sleep on interrupts too. Measured on 2
 * cores (docs/performance.md): 1 guest thread and 4 workers 0.86-0.92M IOPS with nothing
 * polling, 0.92-1.08M with everything polling, 1.19-1.20M with the guest alone polling.
 */
function defaultPolls(guestThreads: number, workers: number): { busy: string; guest: string } {
  const cores = availableParallelism();
  if (guestThreads + workers <= cores) return { busy: "200", guest: "200" };
  return { busy: "0", guest: guestThreads < cores ? "200" : "0" };
}

/**
 * Where the guest threads and vhost workers run unless told: with fewer guest threads than CPUs,
 * each guest thread on a CPU of its own and the workers round robin on the others, as a VM is
 * deployed for I/O (libvirt's vcpupin for the vCPUs, emulatorpin for the vhost threads); else,
 * or where threads cannot be pinned, wherever the scheduler puts them. Measured on 2 cores
 * (docs/performance.md): left to the scheduler, one guest thread and two workers shared a core
 * while the other idled 40 %; pinned, the configurations beyond the cores gained 25-50 %.
 */
function defaultPlacement(guestThreads: number, workers: number): { guest?: number[][]; workers?: number[][] } {
  const cpus = allowedCpus();
  if (!cpus || guestThreads >= cpus.length || !canPinThreads()) return {};
  return { guest: oneEach(guestThreads, cpus), workers: oneEach(workers, cpus.slice(guestThreads)) };
}

/** `n` threads one CPU each, round robin over `cpus` (fio's cpus_allowed_policy=split). */
const oneEach = (n: number, cpus: number[]): number[][] => Array.from({ length: n }, (_, i) => [cpus[i % cpus.length]]);

/** A CPU list option: undefined for "all"; every CPU one this process may run on. */
function cpuListOption(name: string, v: string): number[] | undefined {
  if (v === "all") return undefined;
  let cpus: number[];
  try {
    cpus = parseCpuList(v);
  } catch (e) {
    throw new OptionError(`--${name}: ${(e as Error).message}`);
  }
  const problem = cpusProblem(cpus);
  if (problem) throw new OptionError(`--${name}: ${problem}`);
  return cpus;
}

/** The command line's options, fio's names where fio has them. */
const OPTIONS = {
  rw: { type: "string" },
  readwrite: { type: "string" },
  bs: { type: "string" },
  iodepth: { type: "string" },
  queues: { type: "string" },
  numjobs: { type: "string" },
  workers: { type: "string" },
  "guest-threads": { type: "string" },
  runtime: { type: "string" },
  size: { type: "string" },
  rwmixread: { type: "string" },
  backstore: { type: "string" },
  "io-threads": { type: "string" },
  "block-size": { type: "string" },
  "busy-poll": { type: "string" },
  "guest-poll": { type: "string" },
  engine: { type: "string" },
  cpus_allowed: { type: "string" },
  cpus_allowed_policy: { type: "string" },
  "worker-cpus": { type: "string" },
  verify: { type: "boolean" },
  json: { type: "boolean" },
  "output-format": { type: "string" },
  write_iops_log: { type: "string" },
  write_bw_log: { type: "string" },
  write_lat_log: { type: "string" },
  log_avg_msec: { type: "string" },
  plot: { type: "string" },
  help: { type: "boolean", short: "h" },
} as const;

export function parseOptions(argv: string[]): FioOptions {
  let parsed: ReturnType<typeof parseArgs<{ args: string[]; strict: true; options: typeof OPTIONS }>>;
  try {
    parsed = parseArgs({
      args: argv,
      strict: true,
      options: OPTIONS,
    });
  } catch (e) {
    throw new OptionError((e as Error).message);
  }
  const v = parsed.values;
  const rw = (v.rw ?? v.readwrite ?? "randread") as FioOptions["rw"];
  if (!["read", "write", "randread", "randwrite", "randrw", "rw"].includes(rw)) {
    throw new OptionError(`--rw: '${rw}' is not one of read, write, randread, randwrite, randrw, rw`);
  }
  const blockSize = int("block-size", v["block-size"] ?? "512", 512, 4096);
  if (blockSize !== 512 && blockSize !== 4096) throw new OptionError(`--block-size: ${blockSize} must be 512 or 4096`);
  const bs = parseSize("bs", v.bs ?? "4k");
  if (bs % blockSize) throw new OptionError(`--bs: ${bs} is not a multiple of the ${blockSize}-byte block size`);
  if (bs > 16 << 20) throw new OptionError(`--bs: ${bs} is larger than the 16 MiB limit`);
  const size = parseSize("size", v.size ?? "256m");
  if (size < bs || size % bs) throw new OptionError(`--size: ${size} must be a multiple of --bs (${bs})`);
  const backstoreArg = v.backstore ?? "ram";
  let backstore: FioOptions["backstore"];
  try {
    backstore = parseBackstoreArg(backstoreArg);
  } catch (e) {
    throw new OptionError(`--backstore: ${(e as Error).message}`);
  }
  if (backstore.backstore === "ram" && size > 3 * 2 ** 30)
    throw new OptionError(`--size: a RAM backstore of ${size} bytes does not fit the 4 GiB wasm32 memory; use file:PATH`);
  const formats = (v["output-format"] ?? (v.json ? "json" : "normal")).split(",").map((f) => f.trim()) as OutputFormat[];
  for (const f of formats) if (!["normal", "json", "json+"].includes(f)) throw new OptionError(`--output-format: '${f}' must be normal, json or json+`);
  if (v.json && !formats.includes("json")) formats.push("json");
  for (const [name, value] of [
    ["write_iops_log", v.write_iops_log],
    ["write_bw_log", v.write_bw_log],
    ["write_lat_log", v.write_lat_log],
    ["plot", v.plot],
  ] as const) {
    if (value === "") throw new OptionError(`--${name}: needs a file name`);
  }
  const queues = int("queues", v.queues ?? "1", 1, 128);
  const numjobs = int("numjobs", v.numjobs ?? "1", 1, 64);
  const workers = int("workers", v.workers ?? "1", 1, 64);
  const guestThreads = int("guest-threads", v["guest-threads"] ?? String(defaultGuestThreads(numjobs, workers)), 1, numjobs);
  const polls = defaultPolls(guestThreads, workers);
  if (numjobs > queues) throw new OptionError(`--numjobs: ${numjobs} jobs need at least as many --queues (${queues})`);
  const runtimeGiven = v.runtime !== undefined;
  const engine = v.engine ?? "wasm";
  if (engine !== "wasm" && engine !== "ts") throw new OptionError(`--engine: '${engine}' must be wasm or ts`);
  const policy = v.cpus_allowed_policy ?? "shared";
  if (policy !== "shared" && policy !== "split") throw new OptionError(`--cpus_allowed_policy: '${policy}' must be shared or split`);
  let placement: { guest?: number[][]; workers?: number[][] };
  if (v.cpus_allowed === undefined && v["worker-cpus"] === undefined) {
    placement = defaultPlacement(guestThreads, workers);
  } else {
    const guest = v.cpus_allowed === undefined ? undefined : cpuListOption("cpus_allowed", v.cpus_allowed);
    const work = v["worker-cpus"] === undefined ? undefined : cpuListOption("worker-cpus", v["worker-cpus"]);
    placement = {
      guest: guest && (policy === "split" ? oneEach(guestThreads, guest) : Array.from({ length: guestThreads }, () => guest)),
      workers: work && oneEach(workers, work),
    };
  }
  return {
    rw,
    bs,
    iodepth: int("iodepth", v.iodepth ?? "32", 1, 4096),
    queues,
    numjobs,
    workers,
    guestThreads,
    runtimeMs: runtimeGiven ? parseTime("runtime", v.runtime!) : v.size !== undefined ? 0 : 5000,
    size,
    rwmixread: int("rwmixread", v.rwmixread ?? "50", 0, 100),
    backstore,
    backstoreArg,
    ioThreads: v["io-threads"] === undefined ? undefined : int("io-threads", v["io-threads"], 0, 64),
    blockSize: blockSize as 512 | 4096,
    verify: v.verify ?? false,
    formats: [...new Set(formats)],
    iopsLog: v.write_iops_log,
    bwLog: v.write_bw_log,
    latLog: v.write_lat_log,
    logAvgMsec: int("log_avg_msec", v.log_avg_msec ?? "0", 0, 3_600_000) || 100,
    plot: v.plot,
    busyPollUs: int("busy-poll", v["busy-poll"] ?? polls.busy, 0, 1_000_000),
    guestPollUs: int("guest-poll", v["guest-poll"] ?? polls.guest, 0, 1_000_000),
    engine,
    guestCpus: placement.guest,
    workerCpus: placement.workers,
    help: v.help ?? false,
  };
}
