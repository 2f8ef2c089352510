// A v86 snapshot with its disk (issue 28, item 4): one process boots Linux with a filesystem on
// the virtio-scsi RAM LUN, writes files (one only in the page cache), stops the machine and saves
// v86's state and the disk's; another process restores both and the guest goes on: the files
// check out, the filesystem takes more, all survive a remount (scripts/guest-snapshot.mjs).
import { describe, expect, it } from "vitest";
import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
// @ts-expect-error: a plain JavaScript script
import { guestImages } from "../../scripts/guest-image.mjs";

let missing: string | undefined;
try {
  guestImages();
} catch (e) {
  missing = (e as Error).message;
}

/** Runs scripts/guest-snapshot.mjs in a process of its own; its one JSON line. */
function step(what: "save" | "restore", dir: string): Record<string, unknown> {
  const r = spawnSync(process.execPath, ["scripts/guest-snapshot.mjs", what, dir], { encoding: "utf8", timeout: 200_000 });
  expect(r.status, `${what}: ${r.stderr}`).toBe(0);
  return JSON.parse(r.stdout.trim().split("\n").pop()!);
}

describe("a v86 snapshot with its virtio-scsi disk", () => {
  it("is saved in one process and restored in another: the mounted filesystem goes on, files written before check out", (ctx) => {
    if (missing) {
      console.warn(`skipped: ${missing}`);
      ctx.skip();
    }
    const dir = mkdtempSync(join(tmpdir(), "vhost-snapshot-"));
    try {
      const saved = step("save", dir);
      expect(saved.ready).toMatch(/^=== SNAPSHOT READY( [0-9a-f]{16}){4}/);
      const restored = step("restore", dir);
      expect(restored.results).toEqual({ "snapshot-files": "ok", "snapshot-remount": "ok" });
      // The guest's I/O after the restore went through the restored device.
      expect(restored.requests).toBeGreaterThan(10);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }, 400_000);
});
