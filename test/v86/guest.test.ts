// A real Linux guest (Debian's 686 kernel in v86) against the devices: its virtio_scsi and sd
// drivers probe the virtio-scsi one and its virtio_blk driver the virtio-blk one, and the workload
// of scripts/guest/init.sh runs (filesystem, O_DIRECT, a program run from the disk again and
// again for v86's JIT, LUN reset, driver reload, hot-plug; on /dev/vda filesystem, O_DIRECT, reload).
// The images come from Debian's packages on first use (scripts/guest-image.mjs); where they
// cannot be had the test says why and skips.
import { describe, expect, it } from "vitest";
// @ts-expect-error: a plain JavaScript script
import { guestImages } from "../../scripts/guest-image.mjs";
// @ts-expect-error: a plain JavaScript script
import { runGuest } from "../../scripts/guest.mjs";

let missing: string | undefined;
try {
  guestImages();
} catch (e) {
  missing = (e as Error).message;
}

describe("Linux in v86 with a virtio-scsi and a virtio-blk disk served by the data plane", () => {
  it("probes the disks and passes the whole workload", async (ctx) => {
    if (missing) {
      console.warn(`skipped: ${missing}`);
      ctx.skip();
    }
    const r = await runGuest({ timeoutMs: 200_000 });
    expect(r.timedOut, r.lines.slice(-20).join("\n")).toBe(false);
    expect(r.results).toEqual({
      scan: "ok",
      "block-limits": "ok",
      "cache-type": "ok",
      filesystem: "ok",
      "direct-io": "ok",
      "jit-invalidation": "ok",
      "lun-reset": "ok",
      "persistent-reservations": "ok",
      "compare-and-write": "ok",
      reload: "ok",
      hotplug: "ok",
      unplug: "ok",
      "blk-scan": "ok",
      "blk-filesystem": "ok",
      "blk-direct-io": "ok",
      "blk-reload": "ok",
    });
    // The guest moved data through the device (the scan, the filesystem, the O_DIRECT runs).
    expect(r.requests).toBeGreaterThan(100);
    expect(r.io["virtio-scsi read"]).toBeGreaterThan(0);
    // 1 MiB sequential O_DIRECT on the virtio-scsi disk and beside it on v86's IDE disk, in MiB/s.
    for (const k of ["virtio-scsi read 1MiB", "virtio-scsi write 1MiB", "ide read 1MiB", "ide write 1MiB"]) expect(r.io[k], k).toBeGreaterThan(0);
    // virtio-blk's queue counts from its last start: the driver reload (mount and checksums) since.
    expect(r.blkRequests).toBeGreaterThan(10);
    expect(r.io["virtio-blk read"]).toBeGreaterThan(0);
  }, 280_000);
});
