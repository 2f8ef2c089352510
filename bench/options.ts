// The benchmark's options, fio's names where fio has them, from the command line or a fio job
// file (job-file.ts): what each means, their defaults, and how jobs that run at the same time
// share one device. A command line is fio's: options before the first --name apply to every
// job, each --name starts a job; a job file's [global] section does the same.
import { platform } from "#platform";
import { backstoreTypes, parseBackstoreArg } from "#backstores";
import { allowedCpus, canPinThreads, cpusProblem, parseCpuList } from "../src/sys/affinity.js";
import { type JobSection, type OptionEntry, JobFileError, parseJobFile } from "./job-file.js";

type OutputFormat = "normal" | "json" | "json+";

/** fio's rw: sequential or random reads, writes, both mixed, or trims (UNMAP). */
type Rw = "read" | "write" | "randread" | "randwrite" | "randrw" | "rw" | "trim" | "randtrim";
const RWS: readonly Rw[] = ["read", "write", "randread", "randwrite", "randrw", "rw", "trim", "randtrim"];

/** A size or offset given in bytes or as a share of the LUN's capacity (fio's `N%`). */
export type Amount = { bytes: number } | { percent: number };

/** The yardsticks a run can be compared with: the C loop, Node's own fs loop, fio, the configuration that fits the cores. */
export type ReferenceKind = "c" | "fs" | "fio" | "fitting";
const REFERENCES: readonly ReferenceKind[] = ["c", "fs", "fio", "fitting"];

/**
 * One job's options, resolved. The device-level ones (backstore to engine, and the threads'
 * placement) are the same in every job of a run: the jobs share one device.
 */
export interface FioOptions {
  /** The job's name in the reports (fio's --name, a job file's section). */
  name: string;
  rw: Rw;
  /** Bytes per read (and trim), bytes per write (fio's --bs=R,W). */
  bs: number;
  bsWrite: number;
  iodepth: number;
  /** Request queues this job's clones drive (default: one each). */
  queues: number;
  numjobs: number;
  /** Time-based run length in ms (0: run until each clone has done its region's bytes). */
  runtimeMs: number;
  /** fio's ramp_time: run this long before counting, ms. */
  rampMs: number;
  /** The region of the LUN the job addresses: --size (undefined: to the LUN's end) from --offset. */
  size: Amount | undefined;
  offset: Amount;
  rwmixread: number;
  /** fio's rate_iops: the job's I/Os per second at most (0: unlimited). */
  rateIops: number;
  verify: boolean;
  /** fio's log files: the name stem of each (undefined: not written), and the averaging window, ms. */
  iopsLog: string | undefined;
  bwLog: string | undefined;
  latLog: string | undefined;
  logAvgMsec: number;
  /** fio's stonewall and new_group: this job waits for the ones before it, and starts a reporting group. */
  stonewall: boolean;
  newGroup: boolean;
  /** Its reporting group (fio's groupid): a new one at each stonewall or new_group. */
  group: number;
  /** Report this job's group as one (fio's group_reporting). */
  groupReporting: boolean;
  /** --ioengine as given: accepted and ignored (this device is the engine). */
  ioengine: string | undefined;

  // ---- the device the run's jobs share ----
  /** The device type: virtio-scsi (a LUN) or virtio-blk (a disk), over the same vhost core and backstore. */
  device: "scsi" | "blk";
  /** Dirty logging on for the run (VHOST_F_LOG_ALL), the log synced every 100 ms as a migration's rounds would. */
  dirtyLog: boolean;
  /** `--backstore NAME:ARGS` (or --filename) as the registered type parsed it (its name in `backstore`). */
  backstore: ReturnType<typeof parseBackstoreArg>;
  /** The text given, for the report. */
  backstoreArg: string;
  /** I/O threads of a file backstore (undefined: its default). */
  ioThreads: number | undefined;
  /** fio's direct: O_DIRECT on a file backstore (and on the fio yardstick). */
  direct: boolean;
  blockSize: 512 | 4096;
  workers: number;
  /** Guest threads the run's jobs run on (job j on thread j % guestThreads). */
  guestThreads: number;
  /** VHOST_SET_VRING_BUSYLOOP_TIMEOUT for the request queues, µs. */
  busyPollUs: number;
  /** How long a guest job polls its used rings without completions before sleeping on the interrupt, µs. */
  guestPollUs: number;
  /** The guest jobs' load engine: WebAssembly (dist/guest-engine.wasm) or the TypeScript PolledScsiQueue. */
  engine: "wasm" | "ts";
  /** The CPUs each guest thread runs on (by thread), and each vhost worker (by worker id); undefined: not pinned. */
  guestCpus: number[][] | undefined;
  workerCpus: number[][] | undefined;
}

/** What the program does with the runs: its outputs and yardsticks. */
export interface ProgramOptions {
  /** --output-format, in the order given: the text report, fio's JSON, fio's JSON with latency bins. */
  formats: OutputFormat[];
  /** fio's --output: the reports go to this file instead of stdout. */
  output: string | undefined;
  /** --plot: an SVG file with IOPS over time and the latency percentiles. */
  plot: string | undefined;
  references: ReadonlySet<ReferenceKind>;
  help: boolean;
  version: boolean;
}

/** What a command line asks for: the program's options and the jobs, in runs (jobs at the same time, split by stonewall). */
export interface CommandLine {
  program: ProgramOptions;
  runs: FioOptions[][];
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

/** A size, or a share of the LUN's capacity (`25%`); offsets may be 0. */
function parseAmount(name: string, v: string, zero: boolean): Amount {
  const pct = /^(\d+(?:\.\d+)?)%$/.exec(v.trim());
  if (pct) {
    const percent = Number(pct[1]);
    if (percent > 100 || (!zero && percent === 0)) throw new OptionError(`--${name}: '${v}' must be a share from ${zero ? 0 : 1}% to 100%`);
    return { percent };
  }
  if (zero && /^0+$/.test(v.trim())) return { bytes: 0 };
  return { bytes: parseSize(name, v) };
}

/** A fio time: 10 (seconds), 500ms, 2s, 1m, 250us. */
export function parseTime(name: string, v: string): number {
  const m = /^(\d+(?:\.\d+)?)(us|ms|s|m|h)?$/i.exec(v.trim());
  if (!m) throw new OptionError(`--${name}: '${v}' is not a time (e.g. 10, 10s, 500ms)`);
  const mult = { us: 0.001, ms: 1, s: 1000, m: 60000, h: 3600000 }[(m[2] ?? "s").toLowerCase() as "s"];
  return Number(m[1]) * mult;
}

function int(name: string, v: string, min: number, max: number): number {
  const n = Number(v);
  if (!Number.isInteger(n) || n < min || n > max) throw new OptionError(`--${name}: '${v}' must be an integer from ${min} to ${max}`);
  return n;
}

/** A flag given bare (on) or with a value: 1/0, true/false, on/off, yes/no. */
function flag(name: string, v: string | undefined): boolean {
  if (v === undefined) return true;
  const s = v.trim().toLowerCase();
  if (["1", "true", "on", "yes"].includes(s)) return true;
  if (["0", "false", "off", "no"].includes(s)) return false;
  throw new OptionError(`--${name}: '${v}' must be 0 or 1`);
}

/** The benchmark's own name, in its messages (it speaks fio's options but is not fio). */
export const PROGRAM = "vhost-scsi-bench";

/** --help, with the backstore types registered and the command as invoked. */
export function helpText(command: string = PROGRAM): string {
  const kinds = backstoreTypes()
    .map((t) => t.usage)
    .join(", ");
  return `usage: ${command} [options] [JOBFILE | -]

The fio-like benchmark of the whole vhost-scsi path: guest driver -> virtqueues -> vhost
worker threads -> SCSI target (WASM) -> backstore -> used ring -> guest. Options are fio's
where fio has one; a JOBFILE (or - for stdin) is a fio job file ([global] and job sections).
Options before the first --name apply to every job; each --name starts a job.

Jobs:
  --name=STR           a job's name; a second --name starts a second job  [vhost-scsi]
  --rw=STR             read, write, randread, randwrite, randrw, rw (readwrite),
                       trim, randtrim (UNMAP)                            [randread]
  --bs=SIZE[,SIZE]     bytes per I/O, reads[,writes]; multiples of --block-size [4k]
  --iodepth=N          I/Os in flight per job                            [32]
  --rwmixread=PCT      share of reads in randrw/rw                       [50]
  --numjobs=N          clones of the job, each driving its own queues    [1]
  --queues=N           virtio-scsi request queues of the job's clones  [numjobs]
  --runtime=TIME       run for this long (10, 10s, 500ms); always time-based
                       here (fio stops at --size first unless --time_based) [5s]
  --time_based         accepted (--runtime is time-based already)
  --ramp_time=TIME     run this long before counting anything            [0]
  --size=SIZE|N%       bytes of the LUN to address from --offset; without
                       --runtime each clone does this many bytes and stops
                       [to the LUN's end; a RAM or null LUN is 256m]
  --offset=SIZE|N%     where the region starts                           [0]
  --rate_iops=N        the job's I/Os per second at most                 [no limit]
  --verify             write checksummed blocks, read them back, count mismatches
  --stonewall          wait for the jobs before this one to finish (a new run)
  --new_group          start a new reporting group
  --group_reporting    report each group as one job (JSON: one entry per group)
  --ioengine=STR       accepted and ignored: this device is the engine

The device (the same for jobs that run at the same time):
  --device=scsi|blk    virtio-scsi (a LUN) or virtio-blk (a disk) on the same
                       vhost core and backstores                          [scsi]
  --dirty-log          the device logs the guest pages it writes (VHOST_F_LOG_ALL),
                       synced every 100 ms as a live migration's rounds would
  --backstore=NAME:ARGS  ${kinds.padEnd(43)} [ram]
  --filename=PATH      --backstore=file:PATH; a missing file is laid out at
                       --offset + --size (and the report says so)
  --direct=0|1         O_DIRECT on a file backstore and its fio yardstick  [0]
  --io-threads=N       I/O threads serving a file backstore; 0: the vhost
                       workers do its I/O        [0 on 2 cores or fewer, else 2]
  --block-size=N       logical block size, 512 or 4096                   [512]
  --workers=N          vhost worker threads serving the queues           [1]
  --guest-threads=N    guest threads the jobs run on (the guest's vCPUs)
                       [one per job; when jobs and workers outnumber the
                       cores, cores - workers (at least 1)]
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

Output:
  --output-format=LIST normal, json, json+ (comma-separated, as fio): the text
                       report; fio's JSON; fio's JSON with clat_ns.bins   [normal]
  --json               --output-format=json
  --output=FILE        write the reports to FILE instead of stdout
  --write_iops_log=NAME, --write_bw_log=NAME, --write_lat_log=NAME
                       fio's log files NAME_iops.N.log, NAME_bw.N.log,
                       NAME_lat.N.log / _clat / _slat (N: the job, from 1)
  --log_avg_msec=N     average the logs over N ms (fio logs every I/O when
                       0; here 0 means 100: a line per I/O is too many)    [100]
  --plot=FILE.svg      draw IOPS over time per job and the latency
                       percentiles into an SVG file
  --reference=LIST     yardsticks run in the same run: c (the C request loop,
                       RAM disks), fs (Node's fs loop, files), fio (fio on the
                       same file or export), fitting (the configuration that
                       fits the cores), or none                           [all]
  --no-reference       --reference=none
  --version            the version
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
function defaultGuestThreads(jobs: number, workers: number): number {
  const cores = platform.cores();
  return jobs + workers <= cores ? jobs : Math.max(1, Math.min(jobs, cores - workers));
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
  const cores = platform.cores();
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

/** Options that take no value on the command line (a value may still be given: --direct=1). */
const FLAGS = new Set(["verify", "json", "time_based", "group_reporting", "stonewall", "new_group", "help", "version", "no-reference", "direct", "dirty-log"]);
/** Options of the program as a whole: the command line (or a job file's [global]) only. */
const PROGRAM_KEYS = new Set(["output-format", "json", "output", "plot", "reference", "no-reference", "help", "version"]);
/** Options of the device the run's jobs share: jobs that run at the same time must agree on them. */
const DEVICE_KEYS = [
  "device",
  "dirty-log",
  "backstore",
  "filename",
  "direct",
  "io-threads",
  "block-size",
  "workers",
  "guest-threads",
  "busy-poll",
  "guest-poll",
  "engine",
  "cpus_allowed",
  "cpus_allowed_policy",
  "worker-cpus",
] as const;
/** Options of a job. */
const JOB_KEYS = [
  "name",
  "rw",
  "readwrite",
  "bs",
  "iodepth",
  "rwmixread",
  "numjobs",
  "queues",
  "runtime",
  "time_based",
  "ramp_time",
  "size",
  "offset",
  "rate_iops",
  "verify",
  "stonewall",
  "new_group",
  "group_reporting",
  "ioengine",
  "write_iops_log",
  "write_bw_log",
  "write_lat_log",
  "log_avg_msec",
] as const;
const KNOWN = new Set<string>([...PROGRAM_KEYS, ...DEVICE_KEYS, ...JOB_KEYS]);

/** The last value given for each key (later entries win, as in fio). */
function lastValues(entries: readonly OptionEntry[]): Map<string, OptionEntry> {
  const m = new Map<string, OptionEntry>();
  for (const e of entries) m.set(e.key, e);
  return m;
}

/** Prefixes a message with where the option was given when that is a job file's line. */
const at = (e: OptionEntry | undefined, msg: string) => (e && e.where !== "command line" ? `${e.where}: ${msg}` : msg);

/** Runs f, which reads option k; an OptionError it throws gets where k was given. */
const locating =
  (v: Map<string, OptionEntry>) =>
  <T>(k: string, f: () => T): T => {
    try {
      return f();
    } catch (e) {
      if (e instanceof OptionError) throw new OptionError(at(v.get(k), e.message));
      throw e;
    }
  };

/** One job's options from its entries, before the run places its threads (see placeRun). */
function jobOptions(section: JobSection): FioOptions {
  const v = lastValues(section.entries);
  const get = (k: string) => v.get(k)?.value;
  const has = (k: string) => v.has(k);
  const wrap = locating(v);
  const str = (k: string, dflt: string) => {
    const x = get(k);
    if (has(k) && (x === undefined || x === "")) throw new OptionError(at(v.get(k), `--${k}: needs a value`));
    return x ?? dflt;
  };
  const rwText = has("rw") ? str("rw", "") : str("readwrite", "randread");
  const rw = (rwText === "readwrite" ? "rw" : rwText) as Rw;
  if (!RWS.includes(rw)) throw new OptionError(at(v.get("rw") ?? v.get("readwrite"), `--rw: '${rwText}' is not one of ${RWS.join(", ")}, readwrite`));
  const blockSize = wrap("block-size", () => int("block-size", str("block-size", "512"), 512, 4096));
  if (blockSize !== 512 && blockSize !== 4096) throw new OptionError(at(v.get("block-size"), `--block-size: ${blockSize} must be 512 or 4096`));
  const [bs, bsWrite] = wrap("bs", () => {
    const parts = str("bs", "4k").split(",");
    if (parts.length > 2) throw new OptionError(`--bs: '${get("bs")}' is READS[,WRITES] (trims are the size of reads)`);
    const sizes = parts.map((p, i) => (p.trim() === "" && i > 0 ? undefined : parseSize("bs", p)));
    const r = sizes[0]!;
    const w = sizes[1] ?? r;
    for (const n of [r, w]) {
      if (n % blockSize) throw new OptionError(`--bs: ${n} is not a multiple of the ${blockSize}-byte block size`);
      if (n > 16 << 20) throw new OptionError(`--bs: ${n} is larger than the 16 MiB limit`);
    }
    return [r, w];
  });
  const size = has("size") ? wrap("size", () => parseAmount("size", str("size", ""), false)) : undefined;
  const offset = wrap("offset", () => parseAmount("offset", str("offset", "0"), true));
  if ("bytes" in offset && offset.bytes % blockSize)
    throw new OptionError(at(v.get("offset"), `--offset: ${offset.bytes} is not a multiple of the ${blockSize}-byte block size`));
  if (size && "bytes" in size && (size.bytes < Math.max(bs, bsWrite) || size.bytes % bs || size.bytes % bsWrite))
    throw new OptionError(at(v.get("size"), `--size: ${size.bytes} must be a multiple of --bs (${bs === bsWrite ? bs : `${bs} and ${bsWrite}`})`));
  let backstoreArg = str("backstore", "ram");
  if (has("filename")) {
    if (has("backstore") && !str("backstore", "").startsWith("file"))
      throw new OptionError(at(v.get("filename"), "--filename: a file backstore; --backstore says another"));
    backstoreArg = `file:${str("filename", "")}`;
  }
  let backstore: FioOptions["backstore"];
  try {
    backstore = parseBackstoreArg(backstoreArg);
  } catch (e) {
    throw new OptionError(at(v.get("filename") ?? v.get("backstore"), `--backstore: ${(e as Error).message}`));
  }
  if (backstore.backstore === "ram" && size && "bytes" in size && size.bytes + ("bytes" in offset ? offset.bytes : 0) > 3 * 2 ** 30)
    throw new OptionError(at(v.get("size"), `--size: a RAM backstore of ${size.bytes} bytes does not fit the 4 GiB wasm32 memory; use file:PATH`));
  const direct = wrap("direct", () => has("direct") && flag("direct", get("direct")));
  const dirtyLog = wrap("dirty-log", () => has("dirty-log") && flag("dirty-log", get("dirty-log")));
  if (direct && backstore.backstore !== "file")
    throw new OptionError(at(v.get("direct"), `--direct: O_DIRECT is for file backstores (this is ${backstore.backstore})`));
  const numjobs = wrap("numjobs", () => int("numjobs", str("numjobs", "1"), 1, 64));
  const queues = wrap("queues", () => int("queues", str("queues", String(numjobs)), 1, 128));
  if (numjobs > queues) throw new OptionError(at(v.get("queues"), `--numjobs: ${numjobs} jobs need at least as many --queues (${queues})`));
  const engine = str("engine", "wasm");
  if (engine !== "wasm" && engine !== "ts") throw new OptionError(at(v.get("engine"), `--engine: '${engine}' must be wasm or ts`));
  const device = str("device", "scsi");
  if (device !== "scsi" && device !== "blk") throw new OptionError(at(v.get("device"), `--device: '${device}' must be scsi or blk`));
  const rateIops = wrap("rate_iops", () => int("rate_iops", str("rate_iops", "0"), 0, 1e9));
  const verify = wrap("verify", () => has("verify") && !["0", "none", "false", "off", "no"].includes((get("verify") ?? "1").toLowerCase()));
  if (verify && (rw === "trim" || rw === "randtrim")) throw new OptionError(at(v.get("verify"), "--verify: trims leave nothing to verify"));
  if (verify && bs !== bsWrite)
    throw new OptionError(at(v.get("verify"), "--verify: reads and writes of different sizes (--bs=R,W) cannot check each other's blocks"));
  if (engine === "ts") {
    const wasmOnly = [
      ["bs", bs !== bsWrite],
      ["rw", rw === "trim" || rw === "randtrim"],
      ["device", device === "blk"],
    ] as const;
    for (const [k, used] of wasmOnly) if (used) throw new OptionError(at(v.get(k), `--${k}=${get(k)}: needs the WebAssembly engine (--engine=wasm)`));
  }
  for (const k of ["write_iops_log", "write_bw_log", "write_lat_log"]) if (has(k)) str(k, "");
  const runtimeGiven = has("runtime");
  if (has("ramp_time") && !runtimeGiven) throw new OptionError(at(v.get("ramp_time"), "--ramp_time: needs --runtime (a job of --size bytes counts them all)"));
  return {
    name: str("name", section.name),
    rw,
    bs,
    bsWrite,
    iodepth: wrap("iodepth", () => int("iodepth", str("iodepth", "32"), 1, 4096)),
    queues,
    numjobs,
    runtimeMs: runtimeGiven ? wrap("runtime", () => parseTime("runtime", str("runtime", ""))) : size ? 0 : 5000,
    rampMs: wrap("ramp_time", () => parseTime("ramp_time", str("ramp_time", "0"))),
    size,
    offset,
    rwmixread: wrap("rwmixread", () => int("rwmixread", str("rwmixread", "50"), 0, 100)),
    rateIops,
    verify,
    iopsLog: get("write_iops_log"),
    bwLog: get("write_bw_log"),
    latLog: get("write_lat_log"),
    logAvgMsec: wrap("log_avg_msec", () => int("log_avg_msec", str("log_avg_msec", "0"), 0, 3_600_000)) || 100,
    stonewall: wrap("stonewall", () => has("stonewall") && flag("stonewall", get("stonewall"))),
    newGroup: wrap("new_group", () => has("new_group") && flag("new_group", get("new_group"))),
    groupReporting: wrap("group_reporting", () => has("group_reporting") && flag("group_reporting", get("group_reporting"))),
    group: 0,
    ioengine: get("ioengine"),
    device,
    dirtyLog,
    backstore,
    backstoreArg,
    ioThreads: has("io-threads") ? wrap("io-threads", () => int("io-threads", str("io-threads", ""), 0, 64)) : undefined,
    direct,
    blockSize: blockSize as 512 | 4096,
    workers: wrap("workers", () => int("workers", str("workers", "1"), 1, 64)),
    engine,
    // Placed by placeRun() once the run's jobs are known.
    guestThreads: 1,
    busyPollUs: 0,
    guestPollUs: 0,
    guestCpus: undefined,
    workerCpus: undefined,
  };
}

/**
 * Places a run's threads: how many guest threads run its jobs' clones, the polling windows and
 * the CPUs, from the options given (`v`, the first job's, the same in all) or their defaults.
 */
function placeRun(jobs: FioOptions[], v: Map<string, OptionEntry>): void {
  const get = (k: string) => v.get(k)?.value;
  const wrap = locating(v);
  const clones = jobs.reduce((s, j) => s + j.numjobs, 0);
  const workers = jobs[0].workers;
  const guestThreads = wrap("guest-threads", () => int("guest-threads", get("guest-threads") ?? String(defaultGuestThreads(clones, workers)), 1, clones));
  const polls = defaultPolls(guestThreads, workers);
  const busyPollUs = wrap("busy-poll", () => int("busy-poll", get("busy-poll") ?? polls.busy, 0, 1_000_000));
  const guestPollUs = wrap("guest-poll", () => int("guest-poll", get("guest-poll") ?? polls.guest, 0, 1_000_000));
  const policy = get("cpus_allowed_policy") ?? "shared";
  if (policy !== "shared" && policy !== "split")
    throw new OptionError(at(v.get("cpus_allowed_policy"), `--cpus_allowed_policy: '${policy}' must be shared or split`));
  let placement: { guest?: number[][]; workers?: number[][] };
  if (!v.has("cpus_allowed") && !v.has("worker-cpus")) {
    placement = defaultPlacement(guestThreads, workers);
  } else {
    const guest = v.has("cpus_allowed") ? wrap("cpus_allowed", () => cpuListOption("cpus_allowed", get("cpus_allowed") ?? "")) : undefined;
    const work = v.has("worker-cpus") ? wrap("worker-cpus", () => cpuListOption("worker-cpus", get("worker-cpus") ?? "")) : undefined;
    placement = {
      guest: guest && (policy === "split" ? oneEach(guestThreads, guest) : Array.from({ length: guestThreads }, () => guest)),
      workers: work && oneEach(workers, work),
    };
  }
  for (const j of jobs) Object.assign(j, { guestThreads, busyPollUs, guestPollUs, guestCpus: placement.guest, workerCpus: placement.workers });
}

/** The device-level options a job gave, as text, for comparing jobs that share a device. */
const deviceText = (v: Map<string, OptionEntry>, k: string) => v.get(k)?.value ?? (v.has(k) ? "1" : "");

/**
 * Jobs in runs: a job with stonewall starts a new run (it waits for the ones before); jobs of a
 * run share one device, so they must agree on its options.
 */
function intoRuns(sections: JobSection[]): FioOptions[][] {
  const runs: { jobs: FioOptions[]; given: Map<string, OptionEntry>[] }[] = [];
  let group = 0;
  for (const [i, s] of sections.entries()) {
    const o = jobOptions(s);
    if (i > 0 && (o.stonewall || o.newGroup)) group++;
    o.group = group;
    const v = lastValues(s.entries);
    const run = runs.at(-1);
    if (!run || o.stonewall) {
      runs.push({ jobs: [o], given: [v] });
      continue;
    }
    const first = run.jobs[0];
    for (const k of DEVICE_KEYS) {
      if (deviceText(v, k) !== deviceText(run.given[0], k))
        throw new OptionError(
          at(
            v.get(k) ?? { key: k, value: undefined, where: s.where },
            `job ${o.name}: --${k} differs from job ${first.name}'s; jobs that run at the same time share one device (add stonewall to run it after)`,
          ),
        );
    }
    run.jobs.push(o);
    run.given.push(v);
  }
  for (const r of runs) placeRun(r.jobs, r.given[0]);
  return runs.map((r) => r.jobs);
}

/** Command-line words as option entries in order, and the positional words (a job file). */
function tokenize(argv: readonly string[]): { entries: OptionEntry[]; positional: string[] } {
  const entries: OptionEntry[] = [];
  const positional: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === "-h") {
      entries.push({ key: "help", value: undefined, where: "command line" });
      continue;
    }
    if (!a.startsWith("--") || a === "--") {
      if (a !== "--") positional.push(a);
      continue;
    }
    const eq = a.indexOf("=");
    const key = eq < 0 ? a.slice(2) : a.slice(2, eq);
    let value = eq < 0 ? undefined : a.slice(eq + 1);
    // `--key value`, as getopt takes it, for options that need a value (and unknown ones, to report them whole).
    if (value === undefined && !FLAGS.has(key) && i + 1 < argv.length && !argv[i + 1].startsWith("-")) value = argv[++i];
    entries.push({ key, value, where: "command line" });
  }
  return { entries, positional };
}

/** The program's options from the command line's entries. */
function programOptions(v: Map<string, OptionEntry>): ProgramOptions {
  const json = v.has("json") && flag("json", v.get("json")!.value);
  const formats = (v.get("output-format")?.value ?? (json ? "json" : "normal")).split(",").map((f) => f.trim()) as OutputFormat[];
  for (const f of formats) if (!["normal", "json", "json+"].includes(f)) throw new OptionError(`--output-format: '${f}' must be normal, json or json+`);
  if (json && !formats.includes("json")) formats.push("json");
  for (const k of ["output", "plot"]) if (v.has(k) && !v.get(k)!.value) throw new OptionError(`--${k}: needs a file name`);
  let references = new Set<ReferenceKind>(REFERENCES);
  const ref = v.get("reference")?.value;
  if (ref !== undefined) {
    const kinds = ref.split(",").map((s) => s.trim());
    if (kinds.includes("none")) references = new Set();
    else {
      for (const k of kinds)
        if (!REFERENCES.includes(k as ReferenceKind)) throw new OptionError(`--reference: '${k}' must be ${REFERENCES.join(", ")} or none`);
      references = new Set(kinds as ReferenceKind[]);
    }
  }
  if (v.has("no-reference")) references = new Set();
  return {
    formats: [...new Set(formats)],
    output: v.get("output")?.value,
    plot: v.get("plot")?.value,
    references,
    help: v.has("help"),
    version: v.has("version"),
  };
}

/** What reading a job file needs: its text by path (`-`: standard input), and the environment for ${VAR}. */
export interface JobFiles {
  readText(path: string): string;
  env: Record<string, string | undefined>;
}

/** Where there is no file to read (a page): a job file on the command line is an error saying so. */
const NO_FILES: JobFiles = {
  readText: () => {
    throw new Error("job files cannot be read here");
  },
  env: {},
};

/**
 * A command line: its options (fio's: before the first --name they apply to every job, each
 * --name starts a job), and a job file given by path or `-` (standard input), read through
 * `files`. Every unknown option is reported at once.
 */
export function parseCommandLine(argv: readonly string[], files: JobFiles = NO_FILES): CommandLine {
  const { entries, positional } = tokenize(argv);
  const program = programOptions(lastValues(entries.filter((e) => PROGRAM_KEYS.has(e.key))));
  const given = entries.filter((e) => !PROGRAM_KEYS.has(e.key));
  let sections: JobSection[];
  if (positional.length > 1) throw new OptionError(`one job file at most (given: ${positional.join(", ")})`);
  if (positional.length === 1) {
    const file = positional[0];
    let text: string;
    try {
      text = files.readText(file);
    } catch (e) {
      throw new OptionError(`${file}: ${(e as NodeJS.ErrnoException).code === "ENOENT" ? "no such job file" : (e as Error).message}`);
    }
    try {
      sections = parseJobFile(text, file === "-" ? "<stdin>" : file, files.env, files.readText);
    } catch (e) {
      if (e instanceof JobFileError) throw new OptionError(e.message);
      throw e;
    }
    // Options on the command line apply to every job of the file, after its own.
    if (given.some((e) => e.key === "name")) throw new OptionError("--name: with a job file, name the jobs in the file");
    for (const s of sections) s.entries.push(...given);
  } else {
    const firstName = given.findIndex((e) => e.key === "name");
    const global = firstName < 0 ? given : given.slice(0, firstName);
    sections = [];
    for (const e of firstName < 0 ? [] : given.slice(firstName)) {
      if (e.key === "name") sections.push({ name: e.value ?? "", where: "command line", entries: [...global, e] });
      else sections.at(-1)!.entries.push(e);
    }
    if (sections.length === 0) sections.push({ name: "vhost-scsi", where: "command line", entries: global });
  }
  // Each entry once (a global one is in every job's list).
  const all = [...new Set(sections.flatMap((s) => s.entries))];
  const unknown = all.filter((e) => !KNOWN.has(e.key));
  const misplaced = all.filter((e) => PROGRAM_KEYS.has(e.key));
  if (unknown.length || misplaced.length) {
    const lines = [
      ...unknown.map((e) => (e.where === "command line" ? `--${e.key}` : `${e.where}: ${e.key}`)),
      ...misplaced.map((e) => `${e.where}: ${e.key} is an option of the command line, not of a job`),
    ];
    throw new OptionError(`unknown option${lines.length > 1 ? "s" : ""}: ${lines.join(", ")}`);
  }
  if (program.help || program.version) return { program, runs: [] };
  return { program, runs: intoRuns(sections) };
}

/** The options of a command line of one job (the first job of the first run). */
export function parseOptions(argv: readonly string[]): FioOptions {
  return parseCommandLine(argv).runs[0][0];
}
