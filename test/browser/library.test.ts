// The library in a real browser (Chromium): the browser bundle loads in a cross-origin isolated
// page, runs vhost worker threads and an OPFS I/O thread as Web Workers, and serves a RAM LUN
// and an OPFS LUN, and a virtio-blk disk on OPFS, whose blocks are still there after the browser restarts.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { rmSync } from "node:fs";
import { CHROMIUM, launchPersistent, persistentProfile, startServer, watch } from "../helpers/browser.js";

interface Result {
  isolated: boolean;
  done?: boolean;
  error?: string;
  luns?: { lun: number; before: number[]; write: number; read: number; same: boolean }[];
  flush?: number;
  caw?: { first: number; again: number; key?: number; at: number; same: boolean };
  second?: string;
  blk?: { before: number[]; write: number; flush: number; read: number; same: boolean };
}

let server: Awaited<ReturnType<typeof startServer>>;
beforeAll(async () => {
  if (CHROMIUM) server = await startServer();
});
afterAll(async () => server?.close());

describe.skipIf(!CHROMIUM)("the library in Chromium", () => {
  it("serves a RAM LUN and an OPFS LUN from Web Workers (FLUSH is the file's flush, COMPARE AND WRITE compares and writes, a second LUN on the file is refused), and a virtio-blk disk on OPFS; the OPFS blocks outlive the browser", async () => {
    const profile = persistentProfile();
    try {
      const run = async (): Promise<Result> => {
        const ctx = await launchPersistent(profile);
        try {
          const page = await ctx.newPage();
          const said = watch(page);
          await page.goto(`${server.url}test/browser/pages/library.html`);
          await page.waitForFunction(
            () => (window as unknown as { result?: Result }).result?.done || (window as unknown as { result?: Result }).result?.error,
            null,
            {
              timeout: 30_000,
            },
          );
          const r = (await page.evaluate(() => (window as unknown as { result: Result }).result)) as Result;
          expect(r.error, said.join("\n")).toBeUndefined();
          return r;
        } finally {
          await ctx.close();
        }
      };
      const first = await run();
      expect(first.isolated).toBe(true);
      for (const l of first.luns!) expect(l).toMatchObject({ write: 0, read: 0, same: true });
      expect(first.flush).toBe(0);
      // COMPARE AND WRITE on the OPFS LUN: GOOD, then CHECK CONDITION MISCOMPARE at byte 0, the new block kept.
      expect(first.caw).toEqual({ first: 0, again: 2, key: 0x0e, at: 0, same: true });
      expect(first.second).toBe("opfs:library/disk.img is the backstore of another LUN already");
      // A fresh file reads as zeroes; after a browser restart the OPFS LUN has what was written.
      expect(first.luns![1].before).toEqual([0, 0, 0, 0]);
      // virtio-blk on an OPFS file: OK status for OUT, FLUSH and IN, the data back.
      expect(first.blk).toEqual({ before: [0, 0, 0, 0], write: 0, flush: 0, read: 0, same: true });
      const second = await run();
      expect(second.luns![0].before).toEqual([0, 0, 0, 0]);
      expect(second.luns![1].before).toEqual([1, 8, 15, 22]);
      expect(second.blk!.before).toEqual([3, 8, 13, 18]);
    } finally {
      rmSync(profile, { recursive: true, force: true });
    }
  });
});
