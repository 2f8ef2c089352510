// Crash consistency (issue 29, item 1): Linux in v86 writes, fsyncs, renames and deletes files on an
// ext4 filesystem with a journal on a virtio-scsi file LUN behind a recording backstore; every
// crash image built from the log (at each flush, and random subsets of the writes between
// flushes) must pass the host's e2fsck and keep every file made durable before the crash
// (scripts/guest-crash.mjs; a longer campaign is `node scripts/guest-crash.mjs --rounds 20`).
import { describe, expect, it } from "vitest";
import { spawnSync } from "node:child_process";
// @ts-expect-error: a plain JavaScript script
import { guestImages } from "../../scripts/guest-image.mjs";

let missing: string | undefined;
try {
  guestImages();
} catch (e) {
  missing = (e as Error).message;
}
const tools = ["mkfs.ext4", "e2fsck", "debugfs"].filter((t) => spawnSync("sh", ["-c", `command -v ${t}`]).status !== 0);
if (tools.length) missing ??= `${tools.join(", ")} not installed (Debian package e2fsprogs)`;
if (missing) console.warn(`skipped: ${missing}`);

describe.skipIf(missing)("crash consistency of ext4 on a virtio-scsi LUN", () => {
  it("every crash image passes e2fsck and keeps the files fsynced before it", () => {
    const r = spawnSync(process.execPath, ["scripts/guest-crash.mjs", "--rounds", "4", "--between", "3"], { encoding: "utf8", timeout: 280_000 });
    const line = r.stdout.trim().split("\n").pop() ?? "";
    expect(r.status, `${r.stderr}\n${line}`).toBe(0);
    const out = JSON.parse(line) as { images: number; flushes: number; durableFiles: number; failures: string[] };
    expect(out.failures).toEqual([]);
    expect(out.durableFiles).toBe(4);
    // Every flush is a crash point, and three more between each two.
    expect(out.images).toBeGreaterThanOrEqual(out.flushes);
    expect(out.flushes).toBeGreaterThan(4);
  }, 300_000);
});
