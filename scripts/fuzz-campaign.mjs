// The hostile-guest campaign at scale: runs test/fuzz/hostile-guest.test.ts (virtio-scsi),
// test/fuzz/hostile-blk.test.ts (virtio-blk) and test/fuzz/hostile-nbd.test.ts (a hostile NBD
// server against the NBD backstore) in N processes at once (one per core by default),
// each with its own seed, for a given time, and sums up what they report. `npm run fuzz -- --minutes 12 --jobs 2 [--report FILE]`.
import { spawn } from "node:child_process";
import { availableParallelism } from "node:os";
import { readFileSync, rmSync } from "node:fs";
import { parseArgs } from "node:util";
import { join } from "node:path";
import { tmpdir } from "node:os";

const { values } = parseArgs({
  options: {
    minutes: { type: "string", default: "10" },
    jobs: { type: "string", default: String(availableParallelism()) },
    report: { type: "string" },
  },
});
const minutes = Number(values.minutes);
const jobs = Number(values.jobs);
if (!(minutes > 0) || !(jobs >= 1)) throw new Error("--minutes and --jobs must be positive");
// The files' properties run one after another: virtio-scsi's four full shares and three half
// shares of FUZZ_SECONDS (its invariant self-test takes none), virtio-blk's one (its model check
// runs a fixed number of cases), and the NBD file's one (its handshake property runs a fixed set).
const FILES = ["test/fuzz/hostile-guest.test.ts", "test/fuzz/hostile-blk.test.ts", "test/fuzz/hostile-nbd.test.ts"];
const SHARES = 4 + 3 * 0.5 - 1 + 1 + 1;
const perProperty = Math.max(1, Math.floor((minutes * 60) / SHARES));
const root = new URL("..", import.meta.url).pathname;
const reportFile = values.report ?? join(tmpdir(), `fuzz-campaign-${process.pid}.jsonl`);
rmSync(reportFile, { force: true });
const started = Date.now();
const seeds = Array.from({ length: jobs }, () => Math.floor(Math.random() * 2 ** 31));
console.log(`fuzz campaign: ${jobs} processes x ${minutes} min (FUZZ_SECONDS=${perProperty}), seeds ${seeds.join(", ")}`);
const runs = seeds.map(
  (seed) =>
    new Promise((resolve) => {
      const p = spawn(join(root, "node_modules/.bin/vitest"), ["run", ...FILES, "--testTimeout", String((perProperty + 120) * 1000), "--reporter", "dot"], {
        cwd: root,
        env: { ...process.env, FUZZ_SEED: String(seed), FUZZ_SECONDS: String(perProperty), FUZZ_REPORT: reportFile },
        stdio: ["ignore", "pipe", "pipe"],
      });
      let out = "";
      p.stdout.on("data", (d) => (out += d));
      p.stderr.on("data", (d) => (out += d));
      p.on("exit", (code) => resolve({ seed, code, out }));
    }),
);
const results = await Promise.all(runs);
const lines = readFileSync(reportFile, "utf8")
  .trim()
  .split("\n")
  .filter(Boolean)
  .map((l) => JSON.parse(l));
const sum = (k) => lines.reduce((s, l) => s + (l[k] ?? 0), 0);
const failed = results.filter((r) => r.code !== 0);
for (const f of failed) console.log(`seed ${f.seed} FAILED (replay: FUZZ_SEED=${f.seed} npx vitest run ${FILES.join(" ")})\n${f.out.slice(-4000)}`);
const seconds = (Date.now() - started) / 1000;
console.log(
  `${failed.length ? "FAILED" : "clean"}: ${sum("cases")} cases in ${(seconds / 60).toFixed(1)} min (${Math.round(sum("cases") / seconds)}/s), ` +
    `requests ${sum("requests")}, queue errors ${sum("queueErrors")}, CHECK CONDITION ${sum("checkConditions")}, OVERRUN ${sum("overruns")}, BAD_TARGET ${sum("badTargets")}; ` +
    `of them hostile NBD server ${sum("nbdCases")} (misbehaved ${sum("misbehaved")}, failed as errors ${sum("failedRequests")}, connections ${sum("connections")}); report ${reportFile}`,
);
process.exit(failed.length ? 1 : 0);
