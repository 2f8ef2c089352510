// What the benchmark's report may say: a region no larger than the LUN, failed I/Os first and
// never as throughput, and no ratio to a yardstick that ran too unsteadily to mean anything.
import { describe, expect, it } from "vitest";
import { existsSync, mkdtempSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import hdr from "hdr-histogram-js";
import { parseCommandLine, parseOptions } from "../../bench/options.js";
import { fmtBracket, fmtFirstError, jsonReport, referenceLines, textReport, unsteady, type RunReport } from "../../bench/report.js";
import { latencyHistogram, type JobResult } from "../../bench/job-result.js";
import { lunFor, regionOf, RunError } from "../../bench/region.js";
import { lunOrFile } from "../../bench/file-lun.js";

const MiB = 2 ** 20;

describe("a job's region of the LUN", () => {
  it("is --size from --offset, the LUN's end where --size is not given, a share of it with N%", () => {
    expect(regionOf(parseOptions([]), 64 * MiB)).toEqual({ offset: 0, bytes: 64 * MiB });
    expect(regionOf(parseOptions(["--size=16m"]), 64 * MiB)).toEqual({ offset: 0, bytes: 16 * MiB });
    expect(regionOf(parseOptions(["--offset=16m"]), 64 * MiB)).toEqual({ offset: 16 * MiB, bytes: 48 * MiB });
    expect(regionOf(parseOptions(["--size=50%", "--offset=25%"]), 64 * MiB)).toEqual({ offset: 16 * MiB, bytes: 32 * MiB });
    // A share larger than what is left from the offset stops at the LUN's end.
    expect(regionOf(parseOptions(["--size=100%", "--offset=50%"]), 64 * MiB)).toEqual({ offset: 32 * MiB, bytes: 32 * MiB });
  });

  it("is an error before any I/O when --size in bytes does not fit the LUN", () => {
    expect(() => regionOf(parseOptions(["--size=256m"]), 64 * MiB)).toThrow(RunError);
    expect(() => regionOf(parseOptions(["--size=256m"]), 64 * MiB)).toThrow("job vhost-scsi: --size 256MiB is larger than the LUN (64MiB)");
    expect(() => regionOf(parseOptions(["--size=64m", "--offset=1m"]), 64 * MiB)).toThrow(
      "at offset 1MiB is larger than the LUN (64MiB, 63MiB from the offset)",
    );
    expect(() => regionOf(parseOptions(["--offset=64m"]), 64 * MiB)).toThrow("--offset 64MiB is not inside the 64MiB LUN");
    expect(() => regionOf(parseOptions(["--bs=1m"]), 512 * 1024)).toThrow("smaller than one I/O");
  });

  it("sizes a RAM disk for the farthest byte any job addresses, 256 MiB where none says", () => {
    const size = (args: string[]) => (lunFor(parseCommandLine(args).runs[0]).lun as { size: number }).size;
    expect(size([])).toBe(256 * MiB);
    expect(size(["--size=64m"])).toBe(64 * MiB);
    expect(size(["--size=8m", "--name=a", "--name=b", "--offset=32m"])).toBe(40 * MiB);
  });

  it("opens a file read-only when no job writes; lays out a missing file only at a size given, and says so", () => {
    const dir = mkdtempSync(join(tmpdir(), "region-"));
    try {
      const f = join(dir, "disk.img");
      writeFileSync(f, Buffer.alloc(MiB));
      expect(lunOrFile([parseOptions([`--filename=${f}`, "--rw=randread"])]).lun.readOnly).toBe(true);
      expect(lunOrFile([parseOptions([`--filename=${f}`, "--rw=randread", "--verify"])]).lun.readOnly).toBe(false);
      expect(lunOrFile([parseOptions([`--filename=${f}`, "--rw=randwrite"])]).lun.readOnly).toBe(false);
      const typo = join(dir, "dsik.img");
      expect(() => lunOrFile([parseOptions([`--filename=${typo}`])])).toThrow("does not exist: give --size");
      expect(() => lunOrFile([parseOptions([`--filename=${typo}`, "--size=1m"])])).toThrow("only reads it");
      expect(existsSync(typo)).toBe(false);
      const made = lunOrFile([parseOptions([`--filename=${typo}`, "--size=2m", "--offset=1m", "--rw=write"])]);
      expect(made.laidOut).toBe(`Laying out IO file ${typo} (3MiB, sparse)`);
      expect(statSync(typo).size).toBe(3 * MiB);
      // An existing file is never grown.
      lunOrFile([parseOptions([`--filename=${f}`, "--size=8m", "--rw=write"])]);
      expect(statSync(f).size).toBe(MiB);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

/** A job's result with `ios` reads and `errors` failures. */
function result(ios: number, errors: number): JobResult {
  const h = latencyHistogram();
  if (ios) h.recordValueWithCount(20_000, ios);
  const empty = { ios: 0, bytes: 0, histogram: hdr.encodeIntoCompressedBase64(latencyHistogram()) };
  return {
    index: 0,
    name: "vhost-scsi",
    job: 0,
    read: { ios, bytes: ios * 4096, histogram: hdr.encodeIntoCompressedBase64(h) },
    write: empty,
    trim: empty,
    errors,
    firstError: errors ? { op: "read", response: 0, status: 2, senseKey: 5, asc: 0x21, ascq: 0, offset: 268435456, length: 4096 } : undefined,
    verifyMismatches: 0,
    verifiedBlocks: 0,
    elapsedMs: 1000,
    cpu: undefined,
    kicks: 0,
    timeline: [],
  };
}

function report(r: JobResult, dev: Partial<RunReport["dev"]> = {}): RunReport {
  return {
    jobs: [parseOptions(["--runtime=1"])],
    results: [r],
    dev: { workers: [], guestCpu: { user: 0, system: 0 }, kicks: 0, references: [], ...dev },
    regions: [{ offset: 0, bytes: 64 * MiB }],
    capacity: 64 * MiB,
    before: [],
    notes: [],
  };
}

describe("the report", () => {
  it("says the region in the header line", () => {
    expect(textReport(report(result(1000, 0)))).toMatch(/^vhost-scsi: \(g=0\): rw=randread, .*, size=64MiB \(the whole LUN\)$/m);
  });

  it("says first that I/Os failed, with what the device answered the first, and counts only the rest", () => {
    const text = textReport(report(result(100, 163826)));
    const lines = text.split("\n");
    expect(lines[1]).toBe(
      "  error: 163826 I/Os failed, err=5 (Input/output error); the first: read of 4096 bytes at offset 268435456: CHECK CONDITION, ILLEGAL REQUEST, LOGICAL BLOCK ADDRESS OUT OF RANGE. The figures below count only the I/Os that succeeded.",
    );
    expect(text).toContain("read: IOPS=100,");
    expect(text).toContain("errors: 163826");
    expect(fmtFirstError({ op: "write", response: 4, status: 0, senseKey: 0, asc: 0, ascq: 0, offset: 0, length: 512 })).toBe(
      "write of 512 bytes at offset 0: virtio-scsi response 4",
    );
  });

  it("puts fio's errno in `error` and the count in total_err", () => {
    const bad = jsonReport([report(result(100, 7))]) as { jobs: Record<string, unknown>[] };
    expect(bad.jobs[0]).toMatchObject({ error: 5, total_err: 7, first_error: 5, first_error_detail: { asc: 0x21 } });
    const good = jsonReport([report(result(100, 0))]) as { jobs: Record<string, unknown>[] };
    expect(good.jobs[0]).toMatchObject({ error: 0, total_err: 0 });
  });

  it("gives no ratio to a yardstick whose slowest stretch ran at under half its fastest", () => {
    expect(unsteady([1_400_000, 1_600_000])).toBeUndefined();
    expect(unsteady([4048, 1_500_000])).toMatch(/^the ratio is not meaningful: the yardstick ran at 4048 to 1500k IOPS/);
    const native = (windowIops: [number, number]) => ({
      diskBytes: 64 * MiB,
      runs: [{ mode: 2 as const, iops: 1_000_000, windowIops, memcpyBw: 1e10, iopsEach: [1_000_000, 1_000_000] as [number, number] }],
    });
    const steady = referenceLines(report(result(1_500_000, 0), { native: native([900_000, 1_100_000]) }));
    expect(steady[0]).toMatch(/this run 1\.50x of it$/);
    const busy = referenceLines(report(result(1_500_000, 0), { native: native([4048, 1_100_000]) }));
    expect(busy[0]).toContain("the ratio is not meaningful");
    expect(busy[0]).not.toMatch(/x of it/);
    const json = jsonReport([report(result(1_500_000, 0), { native: native([4048, 1_100_000]) })]) as { device: { native_reference: Record<string, unknown> } };
    expect(json.device.native_reference).toMatchObject({ mode2_meaningful: false, mode2_iops_window_range: [4048, 1100000] });
    // The fitting configuration's runs before and after, the same way.
    const fit = referenceLines(report(result(1_500_000, 0), { fitting: { options: "--workers 1", iops: 600_000, iopsEach: [1_000_000, 200_000] } }));
    expect(fit[0]).toContain("the ratio is not meaningful");
  });

  it("says when a yardstick's runs before and after differ by more than a tenth", () => {
    expect(fmtBracket([1_000_000, 1_050_000])).toBe("(mean of 1000k right before this run and 1050k right after)");
    expect(fmtBracket([1_488_000, 1_226_000])).toBe(
      "(mean of 1488k right before this run and 1226k right after; they differ by 19%: the machine's state moved, the ratio is uncertain by about as much)",
    );
  });
});
