import { describe, expect, it } from "vitest";
import { spawn } from "node:child_process";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { availableParallelism } from "node:os";
import { OptionError, parseOptions, parseSize, parseTime } from "../../bench/options.js";
import { until } from "../helpers/backstores.js";
import { allowedCpus, canPinThreads } from "../../src/sys/affinity.js";
import { has, runBench as run } from "../helpers/bench-cli.js";
import { fmtBracket } from "../../bench/report.js";

const FIO = has("fio");
const GCC = has("gcc");
const NBDKIT = has("nbdkit");
if (!FIO) console.warn("fio is not installed (Debian package fio): the benchmark's fio yardsticks are not checked");
if (!NBDKIT) console.warn("skipped: the NBD benchmark run needs nbdkit (Debian package nbdkit)");

describe("fio-like options", () => {
  it("parses fio sizes and times", () => {
    expect([parseSize("bs", "4k"), parseSize("bs", "128K"), parseSize("size", "1g"), parseSize("bs", "512")]).toEqual([4096, 131072, 1 << 30, 512]);
    expect([parseTime("runtime", "10"), parseTime("runtime", "500ms"), parseTime("runtime", "2m")]).toEqual([10000, 500, 120000]);
  });

  it("runs a thread per job while jobs and workers fit the cores, else the cores the workers leave (at least one)", () => {
    const cores = availableParallelism();
    const threads = (...a: string[]) => parseOptions([`--queues=${4 * cores}`, ...a]).guestThreads;
    expect(threads()).toBe(1);
    expect(threads(`--numjobs=${cores - 1}`)).toBe(cores - 1);
    expect(threads(`--numjobs=${2 * cores}`)).toBe(Math.max(1, cores - 1));
    expect(threads(`--numjobs=${2 * cores}`, `--workers=${cores}`)).toBe(1);
    expect(threads("--numjobs=3", "--guest-threads=2")).toBe(2);
    expect(() => parseOptions(["--queues=4", "--numjobs=2", "--guest-threads=3"])).toThrow(OptionError);
  });

  it("polls for 200 µs by default; beyond the cores the workers sleep between kicks, and the guest threads too once they are as many as the cores; given windows win", () => {
    const cores = availableParallelism();
    const polls = (...a: string[]) => {
      const o = parseOptions([`--queues=${2 * cores}`, ...a]);
      return [o.busyPollUs, o.guestPollUs];
    };
    if (cores >= 2) expect(polls()).toEqual([200, 200]);
    if (cores >= 2) expect(polls("--guest-threads=1", `--workers=${cores}`)).toEqual([0, 200]);
    expect(polls(`--numjobs=${cores}`, `--guest-threads=${cores}`, "--workers=1")).toEqual([0, 0]);
    expect(polls(`--numjobs=${cores}`, `--guest-threads=${cores}`, `--workers=${cores}`, "--busy-poll=50", "--guest-poll=20")).toEqual([50, 20]);
  });

  it("places each guest thread on a CPU of its own and the workers round robin on the others, while the guest threads are fewer than the CPUs; given lists win", () => {
    const cpus = allowedCpus();
    const place = (...a: string[]) => {
      const o = parseOptions(["--queues=8", ...a]);
      return [o.guestCpus, o.workerCpus];
    };
    if (cpus && cpus.length >= 2 && canPinThreads()) {
      const [c0, c1] = cpus;
      expect(place()).toEqual([[[c0]], [[c1]]]);
      const rest = cpus.slice(1);
      expect(place("--workers=3")).toEqual([[[c0]], [0, 1, 2].map((w) => [rest[w % rest.length]])]);
      expect(place("--cpus_allowed=all", "--worker-cpus=all")).toEqual([undefined, undefined]);
      expect(place(`--numjobs=2`, `--guest-threads=2`, `--cpus_allowed=${c0},${c1}`)).toEqual([
        [
          [c0, c1],
          [c0, c1],
        ],
        undefined,
      ]);
      expect(place(`--numjobs=2`, `--guest-threads=2`, `--cpus_allowed=${c0}-${c1}`, "--cpus_allowed_policy=split", `--worker-cpus=${c1}`)).toEqual([
        [[c0], [c1]],
        [[c1]],
      ]);
    }
    if (cpus) expect(place(`--numjobs=${cpus.length}`, `--guest-threads=${cpus.length}`)).toEqual([undefined, undefined]);
    expect(() => parseOptions(["--cpus_allowed=x"])).toThrow(/--cpus_allowed: 'x' is not a CPU list/);
    if (cpus) expect(() => parseOptions(["--worker-cpus=4095"])).toThrow(/--worker-cpus: CPU 4095 is not one this process may run on/);
    expect(() => parseOptions(["--cpus_allowed=0", "--cpus_allowed_policy=spread"])).toThrow(OptionError);
  });

  it("has defaults: randread 4k, iodepth 32, 5 s on a RAM disk", () => {
    expect(parseOptions([])).toMatchObject({
      rw: "randread",
      bs: 4096,
      iodepth: 32,
      runtimeMs: 5000,
      backstore: { backstore: "ram" },
      blockSize: 512,
      formats: ["normal"],
    });
    expect(parseOptions(["--size=64m"]).runtimeMs).toBe(0);
    expect(parseOptions(["--output-format=json"]).formats).toEqual(["json"]);
    expect(parseOptions(["--output-format=normal,json+"]).formats).toEqual(["normal", "json+"]);
    expect(parseOptions(["--json"]).formats).toEqual(["json"]);
    expect(parseOptions(["--write_iops_log=x"])).toMatchObject({ iopsLog: "x", logAvgMsec: 100 });
    expect(parseOptions(["--backstore=file:/tmp/x.img"]).backstore).toEqual({ backstore: "file", path: "/tmp/x.img" });
    expect(parseOptions(["--backstore=file:/tmp/x.img", "--io-threads=3"]).ioThreads).toBe(3);
  });

  it.each([
    [["--rw=sideways"], /--rw/],
    [["--bs=3x"], /--bs/],
    [["--bs=1000"], /multiple of the 512-byte block size/],
    [["--iodepth=0"], /--iodepth/],
    [["--block-size=1024"], /512 or 4096/],
    [["--numjobs=2"], /--queues/],
    [["--backstore=tape"], /unknown backstore tape; known: ram, null, file/],
    [["--backstore=file"], /needs a path/],
    [["--size=5g"], /4 GiB/],
    [["--nope"], /Unknown option/],
    [["--engine=c"], /--engine: 'c' must be wasm or ts/],
    [["--output-format=xml"], /--output-format: 'xml' must be normal, json or json\+/],
    [["--write_lat_log="], /--write_lat_log: needs a file name/],
    [["--log_avg_msec=-5"], /--log_avg_msec/],
  ])("refuses %j", (args, msg) => {
    expect(() => parseOptions(args)).toThrow(OptionError);
    expect(() => parseOptions(args)).toThrow(msg);
  });
});

describe("the benchmark CLI", () => {
  it("--help lists the fio-style options", async () => {
    const r = await run("--help");
    expect(r.code).toBe(0);
    expect(r.stdout).toContain("ram, null, file:PATH");
    for (const o of [
      "--io-threads",
      "--rw",
      "--bs",
      "--iodepth",
      "--queues",
      "--numjobs",
      "--workers",
      "--runtime",
      "--size",
      "--backstore",
      "--block-size",
      "--verify",
      "--json",
      "--busy-poll",
      "--guest-poll",
      "--engine",
      "--output-format",
      "--write_iops_log",
      "--write_bw_log",
      "--write_lat_log",
      "--log_avg_msec",
      "--plot",
    ])
      expect(r.stdout).toContain(o);
  });

  it("a bad option value is a one-line error, no stack trace, exit 1", async () => {
    const r = await run("--bs=banana");
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/^vhost-scsi-bench: --bs: 'banana' is not a size/);
    expect(r.stderr).not.toMatch(/at .*\.js:\d+/);
  });

  it("--json prints one JSON object in fio's shape", async () => {
    const r = await run("--json", "--runtime=400ms");
    expect(r.code).toBe(0);
    const j = JSON.parse(r.stdout);
    const read = j.jobs[0].read;
    expect(read.iops).toBeGreaterThan(1000);
    expect(Math.abs(read.bw_bytes - read.iops * 4096)).toBeLessThan(read.iops * 4096 * 0.001 + 1);
    expect(read.io_bytes).toBe(read.total_ios * 4096);
    expect(Object.keys(read.clat_ns.percentile)).toContain("99.900000");
    expect(read.clat_ns.min).toBeLessThanOrEqual(read.clat_ns.percentile["50.000000"]);
    expect(j.jobs[0].error).toBe(0);
    expect(j.device.workers).toHaveLength(1);
    // Where the threads ran: the default placement, or nothing pinned on a single CPU.
    const cpus = allowedCpus();
    expect(j.device.placement).toEqual(
      cpus && cpus.length >= 2 && canPinThreads() ? { guest_threads: [[cpus[0]]], workers: [[cpus[1]]] } : { guest_threads: null, workers: null },
    );
    // The C request loop ran in the same run at the same block size and region size (where gcc
    // is installed). Right before and right after the run, and their mean.
    if (GCC) {
      expect(j.device.native_reference.disk_bytes).toBe(256 * 2 ** 20);
      const [before, after] = j.device.native_reference.mode2_iops_before_after;
      expect(before).toBeGreaterThan(0);
      expect(after).toBeGreaterThan(0);
      expect(Math.abs(j.device.native_reference.mode2_iops - (before + after) / 2)).toBeLessThanOrEqual(1);
    } else expect(j.device.native_reference.missing).toMatch(/gcc/);
  });

  it("says when the busy threads outnumber the cores", async () => {
    const r = await run("--runtime=300ms", `--queues=${availableParallelism()}`, `--workers=${availableParallelism()}`, "--numjobs=2", "--guest-threads=2");
    expect(r.code).toBe(0);
    // Two guest threads leave a CPU for the workers only beyond 2 CPUs.
    const cpus = allowedCpus();
    expect(r.stdout).toContain(
      cpus && cpus.length > 2 && canPinThreads()
        ? `placement: guest thread 0 on CPU ${cpus[0]}, guest thread 1 on CPU ${cpus[1]}; vhost worker 0 on CPU ${cpus[2]}`
        : "placement: guest threads where the scheduler puts them; vhost workers where the scheduler puts them",
    );
    expect(r.stdout).toMatch(
      new RegExp(
        `note: ${availableParallelism() + 2} busy threads \\(2 guest, ${availableParallelism()} vhost workers\\) on ${availableParallelism()} cores: .* polling is off`,
      ),
    );
    // The largest configuration that fits ran right before and after: a job per two cores, workers on the rest.
    const cores = availableParallelism();
    const fitJobs = Math.min(2, Math.max(1, Math.floor(cores / 2)));
    const fitting = `--queues ${cores} --workers ${Math.max(1, cores - fitJobs)} --numjobs ${fitJobs}`;
    if (fitJobs + Math.max(1, cores - fitJobs) <= cores) {
      const m = new RegExp(
        `fitting configuration \\(${fitting}, same run\\): (\\S+) IOPS \\(mean of \\S+ right before this run and \\S+ right after(?:; [^)]*)?\\), this run (\\S+)x of it`,
      ).exec(r.stdout);
      expect(m, r.stdout).not.toBeNull();
      expect(Number(m![2])).toBeGreaterThan(0);
    } else expect(r.stdout).not.toContain("fitting configuration");
  });

  it("says when a yardstick's runs before and after differ by more than a tenth", () => {
    expect(fmtBracket([1_000_000, 1_050_000])).toBe("(mean of 1000k right before this run and 1050k right after)");
    expect(fmtBracket([1_488_000, 1_226_000])).toBe(
      "(mean of 1488k right before this run and 1226k right after; they differ by 19%: the machine's state moved, the ratio is uncertain by about as much)",
    );
  });

  it("reports the fitting configuration in JSON beyond the cores, and none for a run that fits", async () => {
    const cores = availableParallelism();
    const beyond = await run("--json", "--runtime=300ms", "--size=16m", `--queues=${cores + 1}`, `--workers=${cores + 1}`);
    expect(beyond.code).toBe(0);
    const f = JSON.parse(beyond.stdout).device.fitting_reference;
    if (cores >= 2) {
      expect(f.options).toBe(`--queues ${cores + 1} --workers ${cores - 1} --numjobs 1`);
      expect(f.iops_before_after).toHaveLength(2);
      for (const x of f.iops_before_after) expect(x).toBeGreaterThan(0);
      expect(Math.abs(f.iops - (f.iops_before_after[0] + f.iops_before_after[1]) / 2)).toBeLessThanOrEqual(1);
    } else expect(f).toBeUndefined();
    const fits = await run("--json", "--runtime=300ms", "--size=16m");
    expect(JSON.parse(fits.stdout).device.fitting_reference).toBeUndefined();
  });

  it("--verify on randrw reports 0 mismatches", async () => {
    const r = await run("--verify", "--rw=randrw", "--runtime=400ms", "--size=16m");
    expect(r.code).toBe(0);
    const m = /verify: (\d+) blocks checked, (\d+) mismatches/.exec(r.stdout)!;
    expect(Number(m[1])).toBeGreaterThan(100);
    expect(Number(m[2])).toBe(0);
    expect(r.stdout).toMatch(/read: IOPS=.*\n.*lat \(nsec\)/);
  });

  it.each(["wasm", "ts"])("--engine %s: --verify counts every block that does not come back as written (null backstore)", async (engine) => {
    const r = await run("--json", "--backstore=null", "--verify", "--rw=write", "--size=1m", `--engine=${engine}`);
    expect(r.code).toBe(2);
    const v = JSON.parse(r.stdout).jobs[0].verify;
    expect(v.blocks).toBe(256);
    expect(v.mismatches).toBe(256);
  });

  it.each([
    ["wasm", 1],
    ["wasm", 2],
    ["ts", 1],
    ["ts", 2],
  ])("--engine %s: randrw with --verify over two queues and jobs on %i guest threads, 0 mismatches", async (engine, threads) => {
    const r = await run(
      "--json",
      "--verify",
      "--rw=randrw",
      "--runtime=300ms",
      "--size=8m",
      "--queues=2",
      "--numjobs=2",
      `--guest-threads=${threads}`,
      "--busy-poll=0",
      `--engine=${engine}`,
    );
    expect(r.code).toBe(0);
    const jobs = JSON.parse(r.stdout).jobs;
    expect(jobs).toHaveLength(2);
    for (const j of jobs) {
      expect(j.read.total_ios).toBeGreaterThan(100);
      expect(j.write.total_ios).toBeGreaterThan(100);
      expect(j.verify.blocks).toBeGreaterThan(0);
      expect(j.verify.mismatches).toBe(0);
      expect(j.error).toBe(0);
    }
  });

  it("without --runtime, each of several jobs on one guest thread writes its own region, all checked", async () => {
    const r = await run("--json", "--verify", "--rw=write", "--size=6m", "--queues=3", "--numjobs=3", "--guest-threads=1");
    expect(r.code).toBe(0);
    const jobs = JSON.parse(r.stdout).jobs;
    expect(jobs).toHaveLength(3);
    const region = Math.floor((6 << 20) / 3 / 4096) * 4096;
    for (const j of jobs) {
      expect(j.write.io_bytes).toBeGreaterThanOrEqual(region);
      expect(j.verify.blocks).toBe(region / 4096);
      expect(j.verify.mismatches).toBe(0);
    }
  });

  it("runs on a file backstore with --size and no --runtime, doing --size bytes", async () => {
    const dir = mkdtempSync(join(tmpdir(), "fio-"));
    try {
      const r = await run("--json", `--backstore=file:${join(dir, "disk.img")}`, "--size=8m", "--rw=write", "--bs=64k", "--verify");
      expect(r.code).toBe(0);
      const j = JSON.parse(r.stdout);
      expect(j.jobs[0].write.io_bytes).toBeGreaterThanOrEqual(8 << 20);
      expect(j.jobs[0].verify.mismatches).toBe(0);
      expect(j.jobs[0].verify.blocks).toBeGreaterThan(0);
      // The yardsticks ran on the same file: a plain fs loop, and fio psync where fio is installed.
      expect(j.device.backstore_reference.node_sync_loop).toBeGreaterThan(0);
      if (FIO) expect(j.device.backstore_reference.fio_psync).toBeGreaterThan(0);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it.skipIf(!NBDKIT)("runs on an NBD export and compares with fio's nbd engine on it, same run", async () => {
    const dir = mkdtempSync(join(tmpdir(), "fio-"));
    const sock = join(dir, "nbd.sock");
    const server = spawn("nbdkit", ["-f", "-U", sock, "memory", "64M"], { stdio: "ignore" });
    try {
      await until(() => existsSync(sock), 10_000);
      const r = await run("--json", `--backstore=nbd+unix:///?socket=${sock}`, "--size=64m", "--runtime=500ms", "--rw=randwrite", "--busy-poll=0");
      expect(r.code).toBe(0);
      const j = JSON.parse(r.stdout);
      expect(j.jobs[0].write.total_ios).toBeGreaterThan(100);
      expect(j.jobs[0].error).toBe(0);
      if (FIO) expect(j.device.backstore_reference.fio_nbd).toBeGreaterThan(0);
    } finally {
      server.kill("SIGKILL");
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("drives several queues with several workers and jobs", async () => {
    const r = await run("--json", "--runtime=400ms", "--queues=2", "--workers=2", "--numjobs=2", "--busy-poll=0");
    const j = JSON.parse(r.stdout);
    expect(j.jobs).toHaveLength(2);
    for (const job of j.jobs) expect(job.read.total_ios).toBeGreaterThan(1000);
    expect(j.device.workers).toHaveLength(2);
  });
});
