// A v86 snapshot with its disk (issue 28, item 4): one process boots Linux with a filesystem on
// the virtio-scsi RAM LUN, writes files (one only in the page cache), stops the machine and saves
// v86's state and the disk's; another process restores both and the guest goes on: the files
// check out, the filesystem takes more, all survive a remount (scripts/guest-snapshot.mjs). The
// same snapshot is then restored in a Chromium page (test/browser/pages/snapshot.html).
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
// @ts-expect-error: a plain JavaScript script
import { guestImages } from "../../scripts/guest-image.mjs";
// @ts-expect-error: a plain JavaScript script
import { SNAPSHOT_LUN0, SNAPSHOT_WWPN } from "../../scripts/guest-snapshot.mjs";
import { CHROMIUM, launchPersistent, persistentProfile, startServer, watch } from "../helpers/browser.js";

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

const dir = mkdtempSync(join(tmpdir(), "vhost-snapshot-"));
let saved: Record<string, unknown> | undefined;
beforeAll(() => {
  if (!missing) saved = step("save", dir);
}, 250_000);
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe.skipIf(missing)("a v86 snapshot with its virtio-scsi disk", () => {
  it("is saved in one process and restored in another: the mounted filesystem goes on, files written before check out", () => {
    expect(saved!.ready).toMatch(/^=== SNAPSHOT READY( [0-9a-f]{16}){4}/);
    const restored = step("restore", dir);
    expect(restored.results).toEqual({ "snapshot-files": "ok", "snapshot-remount": "ok" });
    // The guest's I/O after the restore went through the restored device.
    expect(restored.requests).toBeGreaterThan(10);
  }, 250_000);

  it.skipIf(!CHROMIUM)(
    "restores in a Chromium page as well, and the guest goes on there",
    async () => {
      const server = await startServer([["/snapshot/", dir]]);
      const ctx = await launchPersistent(persistentProfile());
      try {
        const page = await ctx.newPage();
        const said = watch(page);
        const q = new URLSearchParams({ wwpn: SNAPSHOT_WWPN, lunBytes: String(SNAPSHOT_LUN0.size), serial: SNAPSHOT_LUN0.serial });
        await page.goto(`${server.url}test/browser/pages/snapshot.html?${q}`);
        type Result = { done?: boolean; error?: string; isolated: boolean; results?: Record<string, string>; requests?: number; lines: string[] };
        const get = () => page.evaluate(() => (window as unknown as { result: Result }).result) as Promise<Result>;
        await page
          .waitForFunction(() => (window as unknown as { result?: Result }).result?.done || (window as unknown as { result?: Result }).result?.error, null, {
            timeout: 120_000,
          })
          .catch(async () => expect.fail(`no result: ${JSON.stringify((await get()).lines.slice(-10))}\n${said.slice(-30).join("\n")}`));
        const r = await get();
        expect(r.error, said.join("\n")).toBeUndefined();
        expect(r.isolated).toBe(true);
        expect(r.results).toEqual({ "snapshot-files": "ok", "snapshot-remount": "ok" });
        expect(r.requests).toBeGreaterThan(10);
      } finally {
        await ctx.close();
        await server.close();
      }
    },
    200_000,
  );
});
