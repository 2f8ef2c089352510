// The demo page (`npm run demo`) in Chromium, used as a person uses it: the benchmark run with
// its form on a RAM disk and on an OPFS file, with verify, and the Linux guest booted twice with
// the browser restarted in between: the file the first boot wrote is there for the second, with
// the same checksum. Screenshots go to test-results/browser/ for a person to look at.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { existsSync, mkdirSync, rmSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import type { Page } from "playwright-core";
import { CHROMIUM, launchPersistent, persistentProfile, startServer, watch } from "../helpers/browser.js";
// @ts-expect-error: a script of the repository, untyped
import { guestCacheDir } from "../../scripts/guest-image.mjs";

const shots = fileURLToPath(new URL("../../test-results/browser/", import.meta.url));
const GUEST = existsSync(join(guestCacheDir(), "ready.json"));
if (CHROMIUM && !GUEST) console.warn("skipped: the guest in the browser needs the guest images (node scripts/guest-image.mjs fetches them)");

let server: Awaited<ReturnType<typeof startServer>>;
beforeAll(async () => {
  if (!CHROMIUM) return;
  server = await startServer();
  mkdirSync(shots, { recursive: true });
});
afterAll(async () => server?.close());

/** Opens the demo page in a browser with `profile`; runs body; closes the browser. */
async function withPage<T>(profile: string, body: (page: Page, said: string[]) => Promise<T>): Promise<T> {
  const ctx = await launchPersistent(profile);
  try {
    const page = await ctx.newPage();
    await page.setViewportSize({ width: 1200, height: 900 });
    const said = watch(page);
    await page.goto(server.url);
    await page.waitForFunction(() => (window as unknown as { demo?: { ready: boolean } }).demo?.ready, null, { timeout: 30_000 });
    return await body(page, said);
  } finally {
    await ctx.close();
  }
}

describe.skipIf(!CHROMIUM)("the demo page in Chromium", () => {
  it("is cross-origin isolated and runs a 3 s benchmark with verify on a RAM disk and on an OPFS file: 0 errors, 0 mismatches", async () => {
    const profile = persistentProfile();
    try {
      await withPage(profile, async (page, said) => {
        expect(await page.textContent("#isolation")).toMatch(/^cross-origin isolated: yes/);
        for (const backstore of ["ram", "opfs"]) {
          await page.selectOption("#backstore", backstore);
          await page.fill("#runtime", "3");
          await page.check("#verify");
          await page.click("#run");
          await page.waitForFunction(() => /verify: |failed: /.test(document.getElementById("report")!.textContent ?? ""), null, { timeout: 45_000 });
          const report = (await page.textContent("#report")) ?? "";
          expect(report, said.join("\n")).toMatch(new RegExp(`backstore=${backstore === "ram" ? "ram" : "opfs:bench/disk.img"}, `));
          expect(report).toMatch(/read: IOPS=\d/);
          expect(report).toContain("errors: 0");
          expect(report).toMatch(/verify: [1-9]\d* blocks checked, 0 mismatches/);
          if (backstore === "opfs") expect(report).toMatch(/one-thread sync-access-handle loop: (\S+ IOPS, this run \S+x of it|not run: .+)/);
          // The plot and the downloads are there.
          expect(await page.locator("#plot svg").count()).toBe(1);
          expect(await page.isEnabled("#save-json")).toBe(true);
          await page.screenshot({ path: join(shots, `benchmark-${backstore}.png`), fullPage: true });
        }
      });
    } finally {
      rmSync(profile, { recursive: true, force: true });
    }
  }, 120_000);

  it.skipIf(!GUEST)(
    "boots Linux on a disk in the OPFS; after a browser restart a second boot finds the file the first wrote, same checksum",
    async () => {
      const profile = persistentProfile();
      try {
        const boot = (n: number) =>
          withPage(profile, async (page, said) => {
            await page.click("#boot");
            await page
              .waitForFunction(() => /boot|failed/.test(document.getElementById("guest-state")!.textContent ?? ""), null, { timeout: 120_000 })
              .catch(() => {});
            const state = (await page.textContent("#guest-state")) ?? "";
            const consoleText = (await page.textContent("#console")) ?? "";
            await page.screenshot({ path: join(shots, `guest-boot-${n}.png`), fullPage: true });
            expect(state, `${consoleText}\n${said.join("\n")}`).toMatch(/sha256 [0-9a-f]{64}/);
            // The shell takes a command.
            await page.fill("#type", "cat /mnt/boots");
            await page.press("#type", "Enter");
            await page.waitForFunction(
              (b) =>
                (document.getElementById("console")!.textContent ?? "").trimEnd().endsWith(`\n${b}`) ||
                (document.getElementById("console")!.textContent ?? "").includes(`\n${b}\n`),
              String(n),
              { timeout: 20_000 },
            );
            return state;
          });
        const first = await boot(1);
        expect(first).toMatch(/^first boot: wrote hello\.bin, sha256 [0-9a-f]{64}/);
        const second = await boot(2);
        expect(second).toMatch(/^boot 2: found hello\.bin, sha256 [0-9a-f]{64}/);
        expect(/sha256 ([0-9a-f]{64})/.exec(second)![1]).toBe(/sha256 ([0-9a-f]{64})/.exec(first)![1]);
      } finally {
        rmSync(profile, { recursive: true, force: true });
      }
    },
    300_000,
  );
});
