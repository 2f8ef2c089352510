// The browser entry points hold no Node module: bundled for the browser platform (esbuild, with
// the package's "browser" condition), nothing they import is a node: module, and nothing fails
// to resolve. The build does the same and fails on it; this says which module, as a test.
import { describe, expect, it } from "vitest";
import { fileURLToPath } from "node:url";
import * as esbuild from "esbuild";

const root = fileURLToPath(new URL("../..", import.meta.url));

describe("the browser bundle", () => {
  it.each([
    ["the library", "dist/src/browser.js"],
    ["a vhost worker thread", "dist/src/worker/thread-main.js"],
    ["an I/O thread", "dist/src/backstore/io-thread.js"],
    ["the OPFS backstore", "dist/src/backstore/opfs.js"],
    ["a guest thread of the benchmark", "dist/bench/job.js"],
    ["v86's embedding", "dist/src/v86/browser.js"],
    ["the demo page", "dist/demo/demo.js"],
  ])("%s (%s) imports no node: module", async (_what, entry) => {
    const r = await esbuild.build({
      entryPoints: [entry],
      absWorkingDir: root,
      bundle: true,
      write: false,
      format: "esm",
      platform: "browser",
      metafile: true,
      logLevel: "silent",
      tsconfigRaw: {},
    });
    expect(r.errors).toEqual([]);
    expect(Object.keys(r.metafile.inputs).filter((f) => f.startsWith("node:"))).toEqual([]);
    // The Node implementation of the platform is not in it; the browser's is.
    expect(Object.keys(r.metafile.inputs)).not.toContain("dist/src/sys/platform-node.js");
    expect(Object.keys(r.metafile.inputs)).toContain("dist/src/sys/platform-browser.js");
  });
});
