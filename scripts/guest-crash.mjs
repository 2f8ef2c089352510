// Crash consistency under a journaling filesystem (issue 29): `node scripts/guest-crash.mjs
// [--rounds N] [--between K] [--seed S]`. An ext4 filesystem with a journal is made on the host in
// a file; Linux in v86 mounts it from a virtio-scsi file LUN wrapped in a RecordingBackstore and
// writes, fsyncs, renames and deletes files ("vhost.crash=N" in scripts/guest/init.sh), saying
// which files it made durable. Then crash images are built from the log: at every FLUSH
// (everything completed before it applied), and K states between two flushes in which a random
// subset of the writes completed since the last flush is applied (FUA writes always). Each image
// must pass the host's `e2fsck -fy` (exit 0 or 1), then `e2fsck -fn` clean, and every file made
// durable before the crash point must read back (debugfs) with its checksum. `--out-of-order`
// answers each batch's operations in a random order, as I/O threads do. Prints one JSON line.
import { mkdtempSync, readFileSync, rmSync, truncateSync, writeFileSync } from "node:fs";
import { createHash } from "node:crypto";
import { spawnSync } from "node:child_process";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { guestImages } from "./guest-image.mjs";
import { serialLines, v86Options } from "./guest.mjs";

const dist = new URL("../dist/src/", import.meta.url);
const IMAGE_BYTES = 32 << 20;

/** A small seeded generator (mulberry32), so that a run can be replayed. */
function rng(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const run = (cmd, args) => spawnSync(cmd, args, { encoding: "utf8" });

/** Boots the guest on a fresh ext4 image behind a recorder; resolves with the base image, the log and what the guest made durable. */
export async function recordWorkload({ rounds = 8, dir, log = () => {}, timeoutMs = 200_000, shuffleSeed }) {
  const img = join(dir, "disk.img");
  writeFileSync(img, "");
  truncateSync(img, IMAGE_BYTES);
  const mk = run("mkfs.ext4", ["-q", "-F", "-J", "size=4", "-E", "lazy_itable_init=0,lazy_journal_init=0", img]);
  if (mk.status !== 0) throw new Error(`mkfs.ext4: ${mk.stderr}`);
  const base = readFileSync(img);
  const { createV86WithSharedMemory, attachVirtioScsi } = await import(new URL("v86/index.js", dist).href);
  const { openBackstore } = await import(new URL("backstore/index.js", dist).href);
  const { RecordingBackstore } = await import(new URL("testing/index.js", dist).href);
  const { emulator, shm, cpu } = await createV86WithSharedMemory({
    v86: v86Options(guestImages(), { cmdline: `vhost.crash=${rounds}` }),
    deviceBytes: 32 << 20,
  });
  const recorder = new RecordingBackstore(
    await openBackstore({ backstore: "file", path: img, ioThreads: 0 }, shm),
    shuffleSeed === undefined ? undefined : rng(shuffleSeed),
  );
  const disk = await attachVirtioScsi({ emulator, shm, cpu }, { luns: [{ backstore: recorder }] });
  const durable = new Map();
  const lines = [];
  let finish;
  const done = new Promise((r) => (finish = r));
  serialLines(emulator, (l) => {
    lines.push(l);
    log(l);
    const m = /^=== DURABLE (\S+) ([0-9a-f]{64})/.exec(l);
    if (m) {
      durable.set(m[1], m[2]);
      recorder.mark(m[1]);
    }
    if (l === "=== DONE") finish();
  });
  emulator.run();
  const timer = setTimeout(() => finish("timeout"), timeoutMs);
  const outcome = await done;
  clearTimeout(timer);
  await emulator.stop();
  await disk.close();
  await emulator.destroy();
  if (outcome === "timeout") throw new Error(`the guest did not finish; last lines:\n${lines.slice(-15).join("\n")}`);
  const failed = lines.filter((l) => /^=== RESULT \S+ FAIL/.test(l));
  if (failed.length) throw new Error(failed.join("\n"));
  return { base, log: recorder.log, durable };
}

/** Applies recorded operations to an image. */
function apply(image, ops) {
  for (const o of ops) {
    if (o.op === "write") image.set(o.data, o.offset);
    else if (o.op === "zero" || o.op === "discard") image.fill(0, o.offset, o.offset + o.length);
  }
}

/** Checks one crash image: fsck repairs it to clean, and each durable file reads back. */
function checkImage(image, expected, dir) {
  const f = join(dir, "crash.img");
  writeFileSync(f, image);
  const fix = run("e2fsck", ["-fy", f]);
  if (fix.status !== 0 && fix.status !== 1) return `e2fsck -fy exited ${fix.status}: ${fix.stdout.slice(-400)}`;
  const again = run("e2fsck", ["-fn", f]);
  if (again.status !== 0) return `e2fsck -fn after the repair exited ${again.status}: ${again.stdout.slice(-400)}`;
  for (const [name, sum] of expected) {
    const out = join(dir, "out.bin");
    rmSync(out, { force: true });
    const d = run("debugfs", ["-R", `dump /${name} ${out}`, f]);
    let got;
    try {
      got = createHash("sha256").update(readFileSync(out)).digest("hex");
    } catch {
      return `${name} (made durable before the crash) is missing: ${d.stderr.trim().slice(-200)}`;
    }
    if (got !== sum) return `${name} (made durable before the crash) has other contents`;
  }
  return undefined;
}

/**
 * Builds the crash images of a recorded run and checks each: at every flush, and `between`
 * random states between flushes. Resolves with the counts and the first failures.
 */
export function checkCrashes({ base, log, durable }, { between = 8, seed = 1, dir }) {
  const random = rng(seed);
  const state = Buffer.from(base);
  const pending = []; // writes completed since the last flush, with the marks after them
  const marks = []; // labels of durable files seen so far (before the current position)
  let images = 0;
  let flushes = 0;
  const failures = [];
  const check = (image, expected, where) => {
    images++;
    const why = checkImage(
      image,
      expected.map((n) => [n, durable.get(n)]),
      dir,
    );
    if (why && failures.length < 5) failures.push(`${where}: ${why}`);
    else if (why) failures.push(where);
  };
  /** K states between the last flush and now: a cut, and a random subset of the writes before it (FUA ones always). */
  const betweenStates = (label) => {
    const writes = pending.filter((p) => p.op !== "mark");
    if (writes.length === 0) return;
    for (let k = 0; k < between; k++) {
      const cut = 1 + Math.floor(random() * pending.length);
      const image = Buffer.from(state);
      const kept = pending.slice(0, cut).filter((p) => p.op !== "mark" && (p.fua || random() < 0.5));
      apply(image, kept);
      const seen = [
        ...marks,
        ...pending
          .slice(0, cut)
          .filter((p) => p.op === "mark")
          .map((p) => p.label),
      ];
      check(image, seen, `${label}, ${kept.length} of the first ${cut} operations after it`);
    }
  };
  for (const o of log) {
    if (o.op === "flush") {
      betweenStates(`between flush ${flushes} and ${flushes + 1}`);
      apply(
        state,
        pending.filter((p) => p.op !== "mark"),
      );
      for (const p of pending) if (p.op === "mark") marks.push(p.label);
      pending.length = 0;
      flushes++;
      check(Buffer.from(state), marks, `at flush ${flushes}`);
    } else pending.push(o);
  }
  betweenStates(`after the last flush (${flushes})`);
  return { images, flushes, writes: log.filter((o) => o.op === "write").length, durableFiles: durable.size, failures };
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const arg = (name, d) => {
    const i = process.argv.indexOf(`--${name}`);
    return i > 0 ? Number(process.argv[i + 1]) : d;
  };
  const seed = arg("seed", Math.floor(Math.random() * 2 ** 31));
  const dir = mkdtempSync(join(tmpdir(), "vhost-crash-"));
  try {
    const t0 = Date.now();
    const rec = await recordWorkload({
      rounds: arg("rounds", 8),
      dir,
      log: process.argv.includes("--verbose") ? console.log : () => {},
      shuffleSeed: process.argv.includes("--out-of-order") ? seed : undefined,
    });
    const r = checkCrashes(rec, { between: arg("between", 8), seed, dir });
    console.log(JSON.stringify({ seed, outOfOrder: process.argv.includes("--out-of-order"), ...r, seconds: Math.round((Date.now() - t0) / 1000) }));
    process.exit(r.failures.length ? 1 : 0);
  } catch (e) {
    console.error(`guest-crash: ${e.message}`);
    process.exit(1);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
