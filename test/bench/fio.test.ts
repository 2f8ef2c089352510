// The benchmark's command line as a user runs it (dist/bench/fio.js, the package's bin): fixed
// amounts of work (--size without --runtime), and what the output must contain, never how fast.
import { describe, expect, it } from "vitest";
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { chmodSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { availableParallelism, tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { until } from "../helpers/backstores.js";
import { allowedCpus, canPinThreads } from "../../src/sys/affinity.js";
import { BENCH, has, runBench as run, runBenchWith } from "../helpers/bench-cli.js";
import { FakeNbdServer } from "../helpers/nbd-server.js";

const FIO = has("fio");
const GCC = has("gcc");
const NBDKIT = has("nbdkit");
const QEMU_NBD = has("qemu-nbd");
if (!FIO)
  console.warn("fio is not installed (Debian package fio): the benchmark's fio yardsticks and fio's own runs of the same command lines are not checked");
if (!NBDKIT) console.warn("skipped: the NBD benchmark runs need nbdkit (Debian package nbdkit)");
if (!QEMU_NBD) console.warn("skipped: the run on a one-client qemu-nbd needs qemu-nbd (Debian package qemu-utils)");

const MiB = 2 ** 20;
const root = fileURLToPath(new URL("../..", import.meta.url));

/** Runs body with a fresh temporary folder, removed after. */
async function inTmp(body: (dir: string) => Promise<void>): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), "fio-cli-"));
  try {
    await body(dir);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** A server process, stopped after body. */
async function withServer(cmd: string, args: string[], ready: () => boolean, body: () => Promise<void>): Promise<void> {
  const server: ChildProcess = spawn(cmd, args, { stdio: "ignore" });
  try {
    await until(ready, 10_000);
    await body();
  } finally {
    server.kill("SIGKILL");
  }
}

describe("the benchmark CLI", () => {
  it("--help lists the fio-style options and names the command as invoked", async () => {
    const r = await runBenchWith(["--help"], { cwd: root, env: { ...process.env, npm_lifecycle_event: "" } });
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^usage: node dist\/bench\/fio\.js \[options\] \[JOBFILE \| -\]/);
    expect(r.stdout).toContain("ram, null, file:PATH");
    for (const o of ["--io-threads", "--rw", "--bs", "--iodepth", "--queues", "--numjobs", "--workers", "--runtime", "--size", "--offset", "--backstore"])
      expect(r.stdout).toContain(o);
    for (const o of [
      "--name",
      "--filename",
      "--direct",
      "--time_based",
      "--ramp_time",
      "--rate_iops",
      "--group_reporting",
      "--stonewall",
      "--output",
      "--reference",
    ])
      expect(r.stdout).toContain(o);
    const v = await run("--version");
    expect(v.stdout).toBe(`vhost-scsi-bench ${JSON.parse(readFileSync(join(root, "package.json"), "utf8")).version}\n`);
  });

  it("a bad option value is a one-line error, no stack trace, exit 1; every unknown option is named at once", async () => {
    const r = await run("--bs=banana");
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/^vhost-scsi-bench: --bs: 'banana' is not a size/);
    expect(r.stderr).not.toMatch(/at .*\.js:\d+/);
    const u = await run("--fsync=1", "--zonemode=zbd", "--bs=4k");
    expect(u.code).toBe(1);
    expect(u.stderr).toMatch(/^vhost-scsi-bench: unknown options: --fsync, --zonemode\n/);
  });

  it("--json prints one JSON object in fio's shape for a run of --size bytes", async () => {
    const r = await run("--json", "--size=64m");
    expect(r.code).toBe(0);
    const j = JSON.parse(r.stdout);
    const read = j.jobs[0].read;
    // Without --runtime the job moves exactly its region.
    expect(read.total_ios).toBe(16384);
    expect(read.io_bytes).toBe(64 * MiB);
    expect(Math.abs(read.bw_bytes - read.iops * 4096)).toBeLessThan(read.iops * 4096 * 0.001 + 1);
    expect(Object.keys(read.clat_ns.percentile)).toContain("99.900000");
    expect(read.clat_ns.min).toBeLessThanOrEqual(read.clat_ns.percentile["50.000000"]);
    expect(j.jobs[0]).toMatchObject({ jobname: "vhost-scsi", error: 0, total_err: 0 });
    expect(j.device.workers).toHaveLength(1);
    expect(j.device.lun_bytes).toBe(64 * MiB);
    // Where the threads ran: the default placement, or nothing pinned on a single CPU.
    const cpus = allowedCpus();
    expect(j.device.placement).toEqual(
      cpus && cpus.length >= 2 && canPinThreads() ? { guest_threads: [[cpus[0]]], workers: [[cpus[1]]] } : { guest_threads: null, workers: null },
    );
    // The C request loop ran right before and right after at the same block size and region
    // size (where gcc is installed), and their mean.
    if (GCC) {
      expect(j.device.native_reference.disk_bytes).toBe(64 * MiB);
      const [before, after] = j.device.native_reference.mode2_iops_before_after;
      expect(before).toBeGreaterThan(0);
      expect(after).toBeGreaterThan(0);
      expect(Math.abs(j.device.native_reference.mode2_iops - (before + after) / 2)).toBeLessThanOrEqual(1);
      expect(typeof j.device.native_reference.mode2_meaningful).toBe("boolean");
    } else expect(j.device.native_reference.missing).toMatch(/gcc/);
  });

  it("--no-reference and --reference choose the yardsticks; the report comes first", async () => {
    const none = await run("--size=16m", "--no-reference", "--json");
    expect(JSON.parse(none.stdout).device.native_reference).toBeUndefined();
    const text = await run("--size=16m", "--reference=c");
    expect(text.code).toBe(0);
    const lines = text.stdout.trimEnd().split("\n");
    // The yardstick's lines follow the run's whole report.
    const guest = lines.findIndex((l) => l.startsWith("  guest jobs:"));
    const c = lines.findIndex((l) => l.startsWith("  C reference"));
    expect(guest).toBeGreaterThan(0);
    expect(c).toBeGreaterThan(guest);
  });

  it.skipIf(!GCC)("builds the C yardstick in the user's cache folder; a folder it cannot write is a 'not run' reason, never fatal", () =>
    inTmp(async (dir) => {
      const cache = join(dir, "cache");
      const ok = await runBenchWith(["--size=8m", "--reference=c", "--json"], { env: { ...process.env, XDG_CACHE_HOME: cache } });
      expect(ok.code).toBe(0);
      expect(readdirSync(join(cache, "vhost-scsi-wasm")).some((f) => f.startsWith("vring_ref-"))).toBe(true);
      expect(JSON.parse(ok.stdout).device.native_reference.mode2_iops).toBeGreaterThan(0);
      // A cache folder under a regular file cannot be made, even by root.
      writeFileSync(join(dir, "file"), "");
      const bad = await runBenchWith(["--size=8m", "--reference=c"], { env: { ...process.env, XDG_CACHE_HOME: join(dir, "file", "cache") } });
      expect(bad.code).toBe(0);
      expect(bad.stdout).toMatch(/C reference \(bench\/perf-ref\/vring_ref\.c\): not run: cannot create the cache folder .*ENOTDIR/);
      expect(bad.stdout).toContain("read: IOPS=");
    }),
  );

  it("says when the busy threads outnumber the cores", async () => {
    const r = await run("--size=8m", `--queues=${availableParallelism()}`, `--workers=${availableParallelism()}`, "--numjobs=2", "--guest-threads=2");
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
        `fitting configuration \\(${fitting}, same run\\): (\\S+) IOPS \\(mean of \\S+ right before this run and \\S+ right after(?:; [^)]*)?\\), (this run (\\S+)x of it|the ratio is not meaningful)`,
      ).exec(r.stdout);
      expect(m, r.stdout).not.toBeNull();
    } else expect(r.stdout).not.toContain("fitting configuration");
  });

  it("reports the fitting configuration in JSON beyond the cores, and none for a run that fits", async () => {
    const cores = availableParallelism();
    const beyond = await run("--json", "--size=16m", `--queues=${cores + 1}`, `--workers=${cores + 1}`);
    expect(beyond.code).toBe(0);
    const f = JSON.parse(beyond.stdout).device.fitting_reference;
    if (cores >= 2) {
      expect(f.options).toBe(`--queues ${cores + 1} --workers ${cores - 1} --numjobs 1`);
      expect(f.iops_before_after).toHaveLength(2);
      for (const x of f.iops_before_after) expect(x).toBeGreaterThan(0);
      expect(Math.abs(f.iops - (f.iops_before_after[0] + f.iops_before_after[1]) / 2)).toBeLessThanOrEqual(1);
    } else expect(f).toBeUndefined();
    const fits = await run("--json", "--size=16m", "--reference=fitting");
    expect(JSON.parse(fits.stdout).device.fitting_reference).toBeUndefined();
  });

  it("--verify on randrw reports 0 mismatches", async () => {
    const r = await run("--verify", "--rw=randrw", "--size=16m", "--no-reference");
    expect(r.code).toBe(0);
    const m = /verify: (\d+) blocks checked, (\d+) mismatches/.exec(r.stdout)!;
    expect(Number(m[1])).toBeGreaterThan(0);
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
      // Each clone checks its own half of the region: 4 MiB, 1024 requests.
      expect(j.read.total_ios + j.write.total_ios).toBe(1024);
      expect(j.write.total_ios).toBeGreaterThan(0);
      expect(j.verify.blocks).toBeGreaterThan(0);
      expect(j.verify.mismatches).toBe(0);
      expect(j.error).toBe(0);
    }
  });

  it.each(["ram", "file"])("--device=blk on a %s backstore: randrw with --verify over two queues and trims, 0 mismatches, 0 errors", async (kind) => {
    await inTmp(async (dir) => {
      const backstore = kind === "ram" ? "--backstore=ram" : `--backstore=file:${join(dir, "blk.img")}`;
      const r = await run(
        "--json",
        "--device=blk",
        backstore,
        "--verify",
        "--rw=randrw",
        "--size=8m",
        "--queues=2",
        "--numjobs=2",
        "--busy-poll=0",
        "--no-reference",
      );
      expect(r.code, r.stderr).toBe(0);
      const jobs = JSON.parse(r.stdout).jobs;
      for (const j of jobs) {
        expect(j["job options"].device).toBe("blk");
        expect(j.read.total_ios + j.write.total_ios).toBe(1024);
        expect(j.verify.blocks).toBeGreaterThan(0);
        expect(j.verify.mismatches).toBe(0);
        expect(j.error).toBe(0);
      }
    });
    const t = await run("--json", "--device=blk", "--rw=randtrim", "--size=4m", "--no-reference");
    expect(t.code, t.stderr).toBe(0);
    const trim = JSON.parse(t.stdout).jobs[0].trim;
    expect(trim.total_ios).toBe(1024);
    expect(JSON.parse(t.stdout).jobs[0].error).toBe(0);
  });

  it("reports CPU seconds per million I/Os for the guest jobs, the vhost workers and the file's I/O threads (text and JSON)", async () => {
    await inTmp(async (dir) => {
      const file = join(dir, "cpu.img");
      const args = [`--backstore=file:${file}`, "--io-threads=1", "--rw=randwrite", "--size=4m", "--no-reference"];
      const text = await run(...args);
      expect(text.code, text.stderr).toBe(0);
      expect(text.stdout).toMatch(/I\/O threads: cpu usr=\d+\.\d\ds sys=\d+\.\d\ds/);
      expect(text.stdout).toMatch(/cpu per million I\/Os \(usr\+sys\): guest jobs \d+\.\d\ds, vhost workers \d+\.\d\ds, I\/O threads \d+\.\d\ds/);
      const j = JSON.parse((await run("--json", ...args)).stdout);
      const per = j.device.cpu_s_per_million_ios;
      expect(Object.keys(per).sort()).toEqual(["guest_jobs", "io_threads", "vhost_workers"]);
      // CPU time comes in 10 ms ticks: a short run may read 0; what matters is that each is measured.
      for (const v of Object.values(per)) expect(Number.isFinite(v) && (v as number) >= 0).toBe(true);
      expect(Object.keys(j.device.io_threads_cpu_ms).sort()).toEqual(["system", "user"]);
    });
    // No I/O threads (a RAM disk): the guest jobs and the workers only.
    const ram = JSON.parse((await run("--json", "--size=4m", "--no-reference")).stdout);
    expect(Object.keys(ram.device.cpu_s_per_million_ios).sort()).toEqual(["guest_jobs", "vhost_workers"]);
    expect(ram.device.io_threads_cpu_ms).toBeUndefined();
  });

  it("without --runtime, each of several jobs on one guest thread writes its own region, all checked", async () => {
    const r = await run("--json", "--verify", "--rw=write", "--size=6m", "--queues=3", "--numjobs=3", "--guest-threads=1");
    expect(r.code).toBe(0);
    const jobs = JSON.parse(r.stdout).jobs;
    expect(jobs).toHaveLength(3);
    const region = Math.floor((6 << 20) / 3 / 4096) * 4096;
    for (const j of jobs) {
      expect(j.write.io_bytes).toBe(region);
      expect(j.verify.blocks).toBe(region / 4096);
      expect(j.verify.mismatches).toBe(0);
    }
  });

  it("drives several queues with several workers and jobs", async () => {
    const r = await run("--json", "--size=8m", "--queues=2", "--workers=2", "--numjobs=2", "--busy-poll=0", "--no-reference");
    const j = JSON.parse(r.stdout);
    expect(j.jobs).toHaveLength(2);
    for (const job of j.jobs) expect(job.read.total_ios).toBe(2048);
    expect(j.device.workers).toHaveLength(2);
  });

  it("--rw=randtrim sends UNMAP; --bs=R,W sizes reads and writes apart; --offset moves the region", async () => {
    const trim = JSON.parse((await run("--json", "--rw=randtrim", "--size=4m", "--no-reference")).stdout).jobs[0];
    expect(trim.trim).toMatchObject({ total_ios: 1024, io_bytes: 4 * MiB });
    expect(trim.read.total_ios + trim.write.total_ios).toBe(0);
    const mixed = JSON.parse((await run("--json", "--rw=randrw", "--bs=4k,16k", "--size=8m", "--no-reference")).stdout).jobs[0];
    expect(mixed.read.io_bytes).toBe(mixed.read.total_ios * 4096);
    expect(mixed.write.io_bytes).toBe(mixed.write.total_ios * 16384);
    expect(mixed.read.total_ios).toBeGreaterThan(0);
    expect(mixed.write.total_ios).toBeGreaterThan(0);
    const off = await run("--offset=32m", "--size=16m", "--rw=write", "--verify", "--no-reference");
    expect(off.code).toBe(0);
    expect(off.stdout).toContain("size=16MiB at offset 32MiB of the 48MiB LUN");
    expect(off.stdout).toContain("verify: 4096 blocks checked, 0 mismatches");
  });

  it("--rate_iops holds a job back: N requests at R per second take at least (N-1)/R seconds", async () => {
    const j = JSON.parse((await run("--json", "--rate_iops=1000", "--size=400k", "--no-reference")).stdout).jobs[0];
    expect(j.read.total_ios).toBe(100);
    expect(j.job_runtime).toBeGreaterThanOrEqual(99);
    expect(j["job options"].rate_iops).toBe("1000");
  });

  it("--ramp_time runs before counting; --output writes the reports to a file", () =>
    inTmp(async (dir) => {
      const out = join(dir, "report.json");
      const r = await run("--json", "--ramp_time=200ms", "--runtime=200ms", "--no-reference", `--output=${out}`);
      expect(r.code).toBe(0);
      expect(r.stdout).toBe("");
      const j = JSON.parse(readFileSync(out, "utf8")).jobs[0];
      expect(j["job options"].ramp_time).toBe("0.2");
      expect(j.job_runtime).toBeGreaterThanOrEqual(200);
    }));

  it("checks the files it will write before the run: a folder that is not there is an error before any I/O", () =>
    inTmp(async (dir) => {
      for (const opt of [`--write_lat_log=${join(dir, "no", "lat")}`, `--plot=${join(dir, "no", "x.svg")}`, `--output=${join(dir, "no", "out.txt")}`]) {
        const r = await run("--size=1m", "--no-reference", opt);
        expect(r.code).toBe(1);
        expect(r.stderr).toMatch(/cannot write in .*\/no \(ENOENT\)/);
        expect(r.stdout).toBe("");
      }
    }));

  it("Ctrl-C stops the jobs and prints the partial report, exit 130", async () => {
    const r = await runBenchWith(["--runtime=60", "--no-reference"], { interruptAfterMs: 2500 });
    expect(r.code).toBe(130);
    expect(r.stdout).toMatch(/read: IOPS=\d/);
    expect(r.stdout).toContain("interrupted (Ctrl-C)");
    expect(r.stderr).toContain("interrupted; stopping the jobs");
  });
});

describe("the benchmark on files", () => {
  it("runs on a file backstore with --size and no --runtime, doing --size bytes, beside an fs loop and fio on the same file", () =>
    inTmp(async (dir) => {
      const r = await run("--json", `--filename=${join(dir, "disk.img")}`, "--size=8m", "--rw=write", "--bs=64k", "--verify");
      expect(r.code).toBe(0);
      const j = JSON.parse(r.stdout);
      expect(j.jobs[0].write.io_bytes).toBe(8 << 20);
      expect(j.jobs[0].verify.mismatches).toBe(0);
      expect(j.jobs[0].verify.blocks).toBe(128);
      expect(j.device.notes[0]).toBe(`Laying out IO file ${join(dir, "disk.img")} (8MiB, sparse)`);
      // The yardsticks ran on the same file: a plain fs loop, and fio psync where fio is installed.
      expect(j.device.backstore_reference.node_sync_loop).toBeGreaterThan(0);
      if (FIO) expect(j.device.backstore_reference.fio_psync).toBeGreaterThan(0);
    }));

  it("never makes a file of a typo'd path; lays out a missing one only at the size given, and says so first", () =>
    inTmp(async (dir) => {
      const typo = join(dir, "dsik.img");
      const r = await run(`--filename=${typo}`, "--no-reference");
      expect(r.code).toBe(1);
      expect(r.stderr).toBe(`vhost-scsi-bench: ${typo} does not exist: give --size (and --offset) in bytes to lay it out\n`);
      expect(existsSync(typo)).toBe(false);
      const made = await run(`--filename=${typo}`, "--size=2m", "--rw=randwrite", "--no-reference");
      expect(made.code).toBe(0);
      expect(made.stdout.split("\n")[0]).toBe(`Laying out IO file ${typo} (2MiB, sparse)`);
      expect(statSync(typo).size).toBe(2 * MiB);
      // An existing file is the LUN as it is: a larger --size is an error, not growth.
      const big = await run(`--filename=${typo}`, "--size=4m", "--no-reference");
      expect(big.code).toBe(1);
      expect(big.stderr).toContain("--size 4MiB is larger than the LUN (2MiB)");
      expect(statSync(typo).size).toBe(2 * MiB);
    }));

  it("--direct=1 opens the file with O_DIRECT (guest buffers are page-aligned)", () =>
    inTmp(async (dir) => {
      const f = join(dir, "disk.img");
      writeFileSync(f, Buffer.alloc(4 * MiB));
      const r = await run("--json", `--filename=${f}`, "--direct=1", "--rw=randrw", "--size=4m", "--verify", "--reference=fs");
      expect(r.code).toBe(0);
      const j = JSON.parse(r.stdout);
      expect(j.jobs[0]["job options"].direct).toBe("1");
      expect(j.jobs[0].verify.mismatches).toBe(0);
      expect(j.device.backstore_reference.node_sync_loop).toBeGreaterThan(0);
    }));

  const asNobody = process.getuid?.() === 0 && spawnSync("setpriv", ["--reuid=65534", "--regid=65534", "--clear-groups", "true"]).status === 0;
  it.skipIf(process.getuid?.() === 0 && !asNobody)("reads a file it may not write: read-only jobs open it read-only", () =>
    inTmp(async (dir) => {
      const f = join(dir, "ro.img");
      writeFileSync(f, Buffer.alloc(4 * MiB));
      chmodSync(f, 0o444);
      chmodSync(dir, 0o755);
      // As root every file is writable: the run is made by an unprivileged user then.
      const r = asNobody
        ? await new Promise<{ code: number | null; stdout: string }>((resolve) => {
            const c = spawnSync(
              "setpriv",
              ["--reuid=65534", "--regid=65534", "--clear-groups", process.execPath, BENCH, `--filename=${f}`, "--rw=randread", "--size=4m", "--no-reference"],
              {
                encoding: "utf8",
              },
            );
            resolve({ code: c.status, stdout: c.stdout });
          })
        : await run(`--filename=${f}`, "--rw=randread", "--size=4m", "--no-reference");
      expect(r.code).toBe(0);
      expect(r.stdout).toContain("errors: 0");
    }),
  );
});

describe("the benchmark on NBD", () => {
  it("clamps the region to the export, refuses a --size larger than it before any I/O, and says failed I/Os first with a non-zero exit", async () => {
    const server = new FakeNbdServer({ size: 4 * MiB });
    await server.listen();
    try {
      const r = await run("--json", `--backstore=${server.uri}`, "--size=100%", "--no-reference");
      expect(r.code).toBe(0);
      const j = JSON.parse(r.stdout);
      expect(j.device.lun_bytes).toBe(4 * MiB);
      expect(j.jobs[0].read.total_ios).toBe(1024);
      const text = await run(`--backstore=${server.uri}`, "--no-reference", "--runtime=200ms");
      expect(text.stdout.split("\n")[0]).toMatch(/size=4MiB \(the whole LUN\)$/);
      const before = server.requests.length;
      const big = await run(`--backstore=${server.uri}`, "--size=256m", "--no-reference");
      expect(big.code).toBe(1);
      expect(big.stderr).toContain("--size 256MiB is larger than the LUN (4MiB)");
      expect(big.stdout).toBe("");
      expect(server.requests.length).toBe(before);
    } finally {
      await server.close();
    }
    // A server that fails every read: the run says so first, exits 1, compares with nothing.
    const failing = new FakeNbdServer({ size: 4 * MiB, script: (q) => (q.type === 0 ? { reply: "error", errno: 5 } : undefined) });
    await failing.listen();
    try {
      const r = await run(`--backstore=${failing.uri}`, "--size=1m");
      expect(r.code).toBe(1);
      const lines = r.stdout.split("\n");
      expect(lines[1]).toMatch(
        /^ {2}error: \d+ I\/Os failed, err=5 \(Input\/output error\); the first: read of 4096 bytes at offset \d+: CHECK CONDITION, MEDIUM ERROR/,
      );
      expect(r.stdout).toContain("yardsticks: not run: the run had errors");
      expect(r.stdout).not.toMatch(/x of it/);
      const j = JSON.parse((await run("--json", `--backstore=${failing.uri}`, "--size=1m", "--no-reference")).stdout).jobs[0];
      expect(j.error).toBe(5);
      expect(j.total_err).toBeGreaterThan(0);
      expect(j.read.total_ios).toBe(0);
    } finally {
      await failing.close();
    }
  });

  it.skipIf(!NBDKIT)("runs on an nbdkit export and compares with fio's nbd engine on it, same run", () =>
    inTmp(async (dir) => {
      const sock = join(dir, "nbd.sock");
      await withServer(
        "nbdkit",
        ["-f", "-U", sock, "memory", "64M"],
        () => existsSync(sock),
        async () => {
          const r = await run("--json", `--backstore=nbd+unix:///?socket=${sock}`, "--size=8m", "--rw=randwrite", "--busy-poll=0");
          expect(r.code).toBe(0);
          const j = JSON.parse(r.stdout);
          expect(j.jobs[0].write.total_ios).toBe(2048);
          expect(j.jobs[0].error).toBe(0);
          if (FIO) expect(j.device.backstore_reference.fio_nbd).toBeGreaterThan(0);
        },
      );
    }),
  );

  it.skipIf(!QEMU_NBD || !FIO)("closes its connections before fio uses a one-client qemu-nbd: the yardstick runs, nothing hangs", () =>
    inTmp(async (dir) => {
      const sock = join(dir, "q.sock");
      const img = join(dir, "q.img");
      writeFileSync(img, Buffer.alloc(16 * MiB));
      // qemu-nbd's default: one client at a time (no -e); -t: stay up after it leaves.
      await withServer(
        "qemu-nbd",
        ["-k", sock, "-x", "disk1", "-t", "-f", "raw", img],
        () => existsSync(sock),
        async () => {
          const r = await runBenchWith([`--backstore=nbd+unix:///disk1?socket=${sock}`, "--size=8m", "--reference=fio"], { timeoutMs: 60_000 });
          expect(r.signal).toBeNull();
          expect(r.code).toBe(0);
          expect(r.stdout).toMatch(/fio --ioengine=nbd, iodepth 32, one job: \S+ IOPS, this run \S+x of it/);
        },
      );
    }),
  );
});

describe("fio's command lines and job files, unchanged", () => {
  /** fio itself on the same arguments: its exit code and JSON. */
  const fio = (args: string[], env: NodeJS.ProcessEnv = process.env) => {
    const r = spawnSync("fio", [...args, "--output-format=json"], { encoding: "utf8", env });
    return { code: r.status, json: r.status === 0 ? JSON.parse(r.stdout.slice(r.stdout.indexOf("{"))) : undefined, stderr: r.stderr };
  };

  it("runs a typical fio command line as fio does", () =>
    inTmp(async (dir) => {
      const f = join(dir, "disk.img");
      writeFileSync(f, Buffer.alloc(8 * MiB));
      const line = [
        "--name=randread",
        "--ioengine=psync",
        "--direct=1",
        `--filename=${f}`,
        "--rw=randread",
        "--bs=4k",
        "--iodepth=4",
        "--numjobs=2",
        "--size=4m",
        "--group_reporting",
      ];
      const ours = await run(...line, "--json", "--no-reference");
      expect(ours.code).toBe(0);
      const j = JSON.parse(ours.stdout);
      // group_reporting: one entry for the group, as fio gives.
      expect(j.jobs).toHaveLength(1);
      expect(j.jobs[0]).toMatchObject({ jobname: "randread", error: 0 });
      expect(j.jobs[0].read.total_ios).toBe(2048);
      const text = await run(...line, "--no-reference");
      expect(text.stdout).toContain("note: --ioengine=psync ignored");
      if (FIO) {
        const theirs = fio(line);
        expect(theirs.code, theirs.stderr).toBe(0);
        expect(theirs.json.jobs).toHaveLength(1);
        expect(theirs.json.jobs[0].read.total_ios).toBe(2048);
      }
    }));

  const JOB_FILE = `; Two jobs on one file, one after the other (fio's HOWTO: [global], then job sections)
[global]
filename=\${DISK}
size=4m
bs=4k
ioengine=psync

[seq-write]
rw=write

[rand-read]
stonewall
rw=randread
iodepth=8
`;

  it("runs examples/seq-then-rand.fio, the README's job file, as fio does", () =>
    inTmp(async (dir) => {
      const file = join(root, "examples", "seq-then-rand.fio");
      const env = { ...process.env, DISK: join(dir, "disk.img") };
      const ours = await runBenchWith([file, "--json", "--no-reference"], { env });
      expect(ours.code, ours.stderr).toBe(0);
      const j = JSON.parse(ours.stdout);
      expect(j.jobs.map((x: { jobname: string; error: number }) => [x.jobname, x.error])).toEqual([
        ["seq-write", 0],
        ["rand-read", 0],
      ]);
      expect(j.jobs[0].write.io_bytes).toBe(64 * MiB);
      expect(j.jobs[1]["job options"]).toMatchObject({ rw: "randread", bs: "4096", direct: "1" });
      if (FIO) {
        rmSync(join(dir, "disk.img"));
        const theirs = fio([file], env);
        expect(theirs.code, theirs.stderr).toBe(0);
        expect(theirs.json.jobs.map((x: { jobname: string; error: number }) => [x.jobname, x.error])).toEqual([
          ["seq-write", 0],
          ["rand-read", 0],
        ]);
      }
    }));

  it("runs a job file with [global] and two jobs as fio does, from a path or stdin", () =>
    inTmp(async (dir) => {
      const file = join(dir, "two.fio");
      writeFileSync(file, JOB_FILE);
      const env = { ...process.env, DISK: join(dir, "disk.img") };
      const ours = await runBenchWith([file, "--json", "--no-reference"], { env });
      expect(ours.code, ours.stderr).toBe(0);
      const j = JSON.parse(ours.stdout);
      expect(j.jobs.map((x: { jobname: string; groupid: number; run: number }) => [x.jobname, x.groupid, x.run])).toEqual([
        ["seq-write", 0, 0],
        ["rand-read", 1, 1],
      ]);
      expect(j.jobs[0].write.io_bytes).toBe(4 * MiB);
      expect(j.jobs[1].read.io_bytes).toBe(4 * MiB);
      expect(j.device).toHaveLength(2);
      const piped = await runBenchWith(["-", "--no-reference"], { env, input: JOB_FILE });
      expect(piped.code).toBe(0);
      expect(piped.stdout).toMatch(/^seq-write: \(g=0\): rw=write/m);
      expect(piped.stdout).toMatch(/^rand-read: \(g=1\): rw=randread, bs=4096B, iodepth=8/m);
      if (FIO) {
        rmSync(join(dir, "disk.img"));
        const theirs = fio([file], env);
        expect(theirs.code, theirs.stderr).toBe(0);
        expect(theirs.json.jobs.map((x: { jobname: string }) => x.jobname)).toEqual(["seq-write", "rand-read"]);
      }
    }));
});
