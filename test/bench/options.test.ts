// The benchmark's options as fio spells them: the command line (options before the first --name
// for every job, each --name a job), fio's job files, and how jobs that run at the same time share
// one device.
import { describe, expect, it } from "vitest";
import { availableParallelism } from "node:os";
import { OptionError, parseCommandLine, parseOptions, parseSize, parseTime } from "../../bench/options.js";
import { invokedAs } from "../../bench/fio.js";
import { parseJobFile } from "../../bench/job-file.js";
import { allowedCpus, canPinThreads } from "../../src/sys/affinity.js";

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
      size: undefined,
      queues: 1,
    });
    expect(parseCommandLine([]).program).toMatchObject({ formats: ["normal"], output: undefined });
    expect([...parseCommandLine([]).program.references].sort()).toEqual(["c", "fio", "fitting", "fs"]);
    expect(parseOptions(["--size=64m"]).runtimeMs).toBe(0);
    expect(parseCommandLine(["--output-format=json"]).program.formats).toEqual(["json"]);
    expect(parseCommandLine(["--output-format=normal,json+"]).program.formats).toEqual(["normal", "json+"]);
    expect(parseCommandLine(["--json"]).program.formats).toEqual(["json"]);
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
    [["--numjobs=2", "--queues=1"], /--queues/],
    [["--backstore=tape"], /unknown backstore tape; known: ram, null, file/],
    [["--backstore=file"], /needs a path/],
    [["--size=5g"], /4 GiB/],
    [["--nope"], /unknown option: --nope/],
    [["--engine=c"], /--engine: 'c' must be wasm or ts/],
    [["--output-format=xml"], /--output-format: 'xml' must be normal, json or json\+/],
    [["--write_lat_log="], /--write_lat_log: needs a value/],
    [["--log_avg_msec=-5"], /--log_avg_msec/],
  ])("refuses %j", (args, msg) => {
    expect(() => parseOptions(args)).toThrow(OptionError);
    expect(() => parseOptions(args)).toThrow(msg);
  });
});

describe("fio's options on the command line", () => {
  it("takes a typical fio line unchanged: --name, --ioengine (ignored), --direct, --group_reporting, --time_based, and --queues follows --numjobs", () => {
    const cl = parseCommandLine([
      "--name=randread",
      "--ioengine=libaio",
      "--direct=1",
      "--filename=/tmp/disk.img",
      "--rw=randread",
      "--bs=4k",
      "--iodepth=16",
      "--numjobs=2",
      "--runtime=2",
      "--time_based",
      "--group_reporting",
    ]);
    expect(cl.runs).toHaveLength(1);
    expect(cl.runs[0][0]).toMatchObject({
      name: "randread",
      ioengine: "libaio",
      direct: true,
      backstore: { backstore: "file", path: "/tmp/disk.img" },
      numjobs: 2,
      queues: 2,
      runtimeMs: 2000,
      groupReporting: true,
    });
  });

  it("takes --bs=R,W, --rw=readwrite|trim|randtrim, --size=N%, --offset, --ramp_time, --rate_iops, --output and --version", () => {
    expect(parseOptions(["--bs=4k,64k"])).toMatchObject({ bs: 4096, bsWrite: 65536 });
    expect(parseOptions(["--bs=8k"])).toMatchObject({ bs: 8192, bsWrite: 8192 });
    expect(parseOptions(["--rw=readwrite"]).rw).toBe("rw");
    expect(parseOptions(["--readwrite=randtrim"]).rw).toBe("randtrim");
    expect(parseOptions(["--rw=trim"]).rw).toBe("trim");
    expect(parseOptions(["--size=25%", "--offset=10%"])).toMatchObject({ size: { percent: 25 }, offset: { percent: 10 }, runtimeMs: 0 });
    expect(parseOptions(["--offset=1m"]).offset).toEqual({ bytes: 1 << 20 });
    expect(parseOptions(["--ramp_time=250ms", "--runtime=1"])).toMatchObject({ rampMs: 250, runtimeMs: 1000 });
    expect(parseOptions(["--rate_iops=500"]).rateIops).toBe(500);
    expect(parseCommandLine(["--output=/tmp/x.txt"]).program.output).toBe("/tmp/x.txt");
    expect(parseCommandLine(["--version"]).program.version).toBe(true);
    expect(parseCommandLine(["--no-reference"]).program.references.size).toBe(0);
    expect([...parseCommandLine(["--reference=c,fio"]).program.references]).toEqual(["c", "fio"]);
    expect(parseCommandLine(["--reference=none"]).program.references.size).toBe(0);
  });

  it("takes `--key value` as getopt does", () => {
    expect(parseOptions(["--bs", "8k", "--rw", "write", "--verify"])).toMatchObject({ bs: 8192, rw: "write", verify: true });
  });

  it("reports every unknown option at once", () => {
    expect(() => parseCommandLine(["--foo", "--bs=4k", "--bar=1", "--baz", "3"])).toThrow("unknown options: --foo, --bar, --baz");
  });

  it("makes a job of each --name, with the options before the first for all of them", () => {
    const cl = parseCommandLine(["--bs=8k", "--size=16m", "--name=r", "--rw=randread", "--name=w", "--rw=randwrite", "--iodepth=4"]);
    expect(cl.runs).toHaveLength(1);
    expect(cl.runs[0].map((o) => [o.name, o.rw, o.bs, o.iodepth])).toEqual([
      ["r", "randread", 8192, 32],
      ["w", "randwrite", 8192, 4],
    ]);
    // Jobs at the same time share the guest's threads: one per job while they fit the cores.
    const cores = availableParallelism();
    expect(cl.runs[0][0].guestThreads).toBe(cores >= 3 ? 2 : 1);
  });

  it("starts a run at each stonewall and a reporting group at each stonewall or new_group", () => {
    const cl = parseCommandLine(["--size=8m", "--name=a", "--name=b", "--new_group", "--name=c", "--stonewall", "--backstore=null"]);
    expect(cl.runs.map((r) => r.map((o) => [o.name, o.group]))).toEqual([
      [
        ["a", 0],
        ["b", 1],
      ],
      [["c", 2]],
    ]);
    expect(cl.runs[1][0].backstore.backstore).toBe("null");
  });

  it("refuses jobs at the same time that disagree on the device they share, naming stonewall", () => {
    expect(() => parseCommandLine(["--name=a", "--name=b", "--backstore=null"])).toThrow(/job b: --backstore differs from job a's; .* stonewall/);
    expect(() => parseCommandLine(["--name=a", "--name=b", "--workers=2"])).toThrow(/--workers differs/);
  });

  it.each([
    [["--bs=4k,4k,4k"], /READS\[,WRITES\]/],
    [["--size=0%"], /--size/],
    [["--offset=101%"], /--offset/],
    [["--offset=1000"], /multiple of the 512-byte block size/],
    [["--direct=1"], /O_DIRECT is for file backstores/],
    [["--direct=maybe", "--filename=/tmp/x"], /--direct: 'maybe' must be 0 or 1/],
    [["--rw=trim", "--verify"], /trims leave nothing to verify/],
    [["--bs=4k,8k", "--verify"], /different sizes/],
    [["--rw=trim", "--engine=ts"], /needs the WebAssembly engine/],
    [["--ramp_time=1", "--size=8m"], /--ramp_time: needs --runtime/],
    [["--reference=gpu"], /--reference: 'gpu'/],
    [["--output="], /--output: needs a file name/],
    [["--filename=/tmp/x", "--backstore=ram"], /--filename: a file backstore/],
    [["a.fio", "b.fio"], /one job file at most/],
  ])("refuses %j", (args, msg) => {
    expect(() => parseCommandLine(args)).toThrow(OptionError);
    expect(() => parseCommandLine(args)).toThrow(msg);
  });

  it("--help names the command as it was invoked", () => {
    expect(invokedAs("/usr/lib/node_modules/vhost-scsi-wasm/node_modules/.bin/vhost-scsi-bench", {})).toBe("vhost-scsi-bench");
    expect(invokedAs("/x/dist/bench/fio.js", { npm_lifecycle_event: "start" })).toBe("npm start --");
    expect(invokedAs(`${process.cwd()}/dist/bench/fio.js`, {})).toBe("node dist/bench/fio.js");
  });
});

/** Job files read from `read`, with no environment. */
const files = (read: (path: string) => string) => ({ readText: read, env: {} });

describe("fio job files", () => {
  const file = `; fio's HOWTO layout: a [global] section, then jobs
[global]
bs=\${BS}
size=16m
# a comment
ioengine=psync

[reader]
rw=randread
iodepth=8

[writer]
rw=randwrite
stonewall
`;

  const withBs = (bs: string) => file.replace(`${"$"}{BS}`, bs);

  it("reads [global] and job sections, comments and $VAR in braces from the environment", () => {
    const jobs = parseJobFile(file, "two.fio", { BS: "8k" }, () => "");
    expect(jobs.map((j) => j.name)).toEqual(["reader", "writer"]);
    expect(jobs[0].entries.map((e) => [e.key, e.value, e.where])).toEqual([
      ["bs", "8k", "two.fio:3"],
      ["size", "16m", "two.fio:4"],
      ["ioengine", "psync", "two.fio:6"],
      ["rw", "randread", "two.fio:9"],
      ["iodepth", "8", "two.fio:10"],
    ]);
    expect(jobs[1].entries.at(-1)).toEqual({ key: "stonewall", value: undefined, where: "two.fio:14" });
  });

  it("gives each job its options, the globals first; stonewall makes a second run", () => {
    const cl = parseCommandLine(
      ["two.fio"],
      files(() => withBs("8k")),
    );
    expect(cl.runs.map((r) => r.map((o) => [o.name, o.rw, o.bs, o.iodepth, o.size]))).toEqual([
      [["reader", "randread", 8192, 8, { bytes: 16 << 20 }]],
      [["writer", "randwrite", 8192, 32, { bytes: 16 << 20 }]],
    ]);
    // Options on the command line apply to every job of the file.
    const more = parseCommandLine(
      ["two.fio", "--bs=16k", "--iodepth=2"],
      files(() => withBs("8k")),
    );
    expect(more.runs.flat().map((o) => [o.bs, o.iodepth])).toEqual([
      [16384, 2],
      [16384, 2],
    ]);
  });

  it("expands fio's own variables and reads includes", () => {
    const jobs = parseJobFile("[j]\nnumjobs=$ncpus\ninclude more.fio\n", "/jobs/main.fio", {}, (p) => {
      expect(p).toBe("/jobs/more.fio");
      return "iodepth=4\n";
    });
    expect(jobs[0].entries.map((e) => [e.key, e.value])).toEqual([
      ["numjobs", String(availableParallelism())],
      ["iodepth", "4"],
    ]);
  });

  it("lists unknown options with their lines, and says what else is wrong where", () => {
    const text = "[global]\nbs=4k\nfsync_on_close=1\n[a]\nzonemode=zbd\nrw=read\n";
    expect(() =>
      parseCommandLine(
        ["x.fio"],
        files(() => text),
      ),
    ).toThrow("unknown options: x.fio:3: fsync_on_close, x.fio:5: zonemode");
    expect(() =>
      parseCommandLine(
        ["x.fio"],
        files(() => "[a]\nbs=3x\n"),
      ),
    ).toThrow("x.fio:2: --bs: '3x' is not a size");
    expect(() =>
      parseCommandLine(
        ["x.fio"],
        files(() => "bs=4k\n[a]\n"),
      ),
    ).toThrow("x.fio:1: 'bs=4k' comes before any [section]");
    expect(() =>
      parseCommandLine(
        ["x.fio"],
        files(() => "[global]\nbs=4k\n"),
      ),
    ).toThrow("no jobs defined");
    const unset = `[a]\nbs=${"$"}{NOPE_NOT_SET}\n`;
    expect(() =>
      parseCommandLine(
        ["x.fio"],
        files(() => unset),
      ),
    ).toThrow(`x.fio:2: ${"$"}{NOPE_NOT_SET} is not set`);
    expect(() =>
      parseCommandLine(
        ["x.fio"],
        files(() => "[a]\noutput-format=json\n"),
      ),
    ).toThrow("x.fio:2: output-format is an option of the command line");
    expect(() =>
      parseCommandLine(
        ["missing.fio"],
        files(() => {
          throw Object.assign(new Error("ENOENT"), { code: "ENOENT" });
        }),
      ),
    ).toThrow("missing.fio: no such job file");
  });
});
