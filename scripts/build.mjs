// Builds the data plane (AssemblyScript -> dist/*.wasm), generates the TypeScript side of its
// interface from assembly/ (scripts/abi.mjs), builds the TypeScript (-> dist/) and bundles it for
// browsers (-> dist/browser/). A wasm step is skipped when its module and declarations are newer
// than every file in assembly/.
import { execFileSync } from "node:child_process";
import { copyFileSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, statSync, existsSync, writeFileSync } from "node:fs";
import * as esbuild from "esbuild";
import { join } from "node:path";
import { checkNoHandCopies, generateAbi } from "./abi.mjs";
import { checkAssemblyLayering, checkFolderLayering } from "./layering.mjs";

const root = new URL("..", import.meta.url).pathname;
const bin = (name) => join(root, "node_modules", ".bin", name);

const newest = (dir) => Math.max(...readdirSync(dir, { recursive: true }).map((f) => statSync(join(dir, f)).mtimeMs));

mkdirSync(join(root, "dist"), { recursive: true });
// Two builds of the same data plane: static data at the bottom of the memory (the default
// layout), and relocated to 16 MiB for a memory it shares with a module that owns the bottom
// (an emulator: src/memory/shared-memory.ts RELOCATED_STATIC_BASE). And the benchmark's guest
// load engine, which shares the memory too and so must have no static data at all.
// A third build adds the test devices and the step-by-step ring entry points for the tests and
// micro-benchmarks (assembly/testing.ts).
const builds = [
  { name: "dataplane", entry: "assembly/index.ts", base: 0 },
  { name: "dataplane-reloc", entry: "assembly/index.ts", base: 16 << 20 },
  { name: "dataplane-testing", entry: "assembly/testing.ts", base: 0 },
  { name: "guest-engine", entry: "assembly/guest/engine.ts", base: 0, noData: true },
];
mkdirSync(join(root, "dist", "bindings"), { recursive: true });
const sourcesChanged = Math.max(newest(join(root, "assembly")), ...["build.mjs", "abi.mjs"].map((f) => statSync(join(root, "scripts", f)).mtimeMs));
for (const { name, entry, base, noData } of builds) {
  const wasm = join(root, "dist", `${name}.wasm`);
  const wat = join(root, "dist", `${name}.wat`);
  const dts = join(root, "dist", "bindings", `${name}.d.ts`);
  if (!existsSync(wasm) || !existsSync(dts) || statSync(wasm).mtimeMs < sourcesChanged) {
    execFileSync(
      bin("asc"),
      [
        entry,
        "--outFile",
        `dist/${name}.wasm`,
        "--textFile",
        `dist/${name}.wat`,
        "--bindings",
        "raw",
        "--runtime",
        "stub",
        "--importMemory",
        "--sharedMemory",
        "--initialMemory",
        String(Math.floor(base / 65536) + 1),
        "--maximumMemory",
        "65536",
        ...(base ? ["--memoryBase", String(base)] : []),
        "--enable",
        "threads",
        "--optimizeLevel",
        "3",
        "--shrinkLevel",
        "0",
        "--converge",
        "--noAssert",
      ],
      { cwd: root, stdio: "inherit" },
    );
    // asc writes its declarations beside the module; only the .d.ts is kept, for the generator.
    renameSync(join(root, "dist", `${name}.d.ts`), dts);
    rmSync(join(root, "dist", `${name}.js`));
  }
  // No module may allocate: per-instance heaps would overlap in the one shared memory, and the
  // runtime's bump heap starts right after the static data. A module that links the runtime
  // allocator is refused here, and one that must share the bottom of the memory with the data
  // plane is refused if it has any static data.
  const text = readFileSync(wat, "utf8");
  if (/\$~lib\/rt\//.test(text)) throw new Error(`${wat} uses the AssemblyScript runtime allocator: it must not allocate`);
  if (noData && /\(data /.test(text)) throw new Error(`${wat} has static data: it would overlap the data plane's`);
}

// The TypeScript side of each interface, generated; rewritten only when it changes.
const read = (name) => readFileSync(join(root, "dist", "bindings", `${name}.d.ts`), "utf8");
const module = (name) => new WebAssembly.Module(readFileSync(join(root, "dist", `${name}.wasm`)));
const asFiles = (dir) =>
  readdirSync(join(root, dir))
    .filter((f) => f.endsWith(".ts"))
    .map((f) => `${dir}/${f}`);
const dataplane = generateAbi({
  root,
  sourceFiles: [...asFiles("assembly"), ...asFiles("assembly/scsi"), ...asFiles("assembly/blk")],
  wasm: module("dataplane"),
  interfaces: [
    {
      dts: read("dataplane"),
      iface: "DataplaneExports",
      doc: "The data plane's exports (assembly/index.ts) as a raw instance gives them: u32 results arrive as i32, u64 as bigint.",
    },
    {
      dts: read("dataplane-testing"),
      iface: "DataplaneTestExports",
      extendsIface: "DataplaneExports",
      doc: "The test build's exports (assembly/testing.ts): the data plane's and the test devices'.",
    },
  ],
});
const engine = generateAbi({
  root,
  sourceFiles: ["assembly/guest/engine.ts"],
  wasm: module("guest-engine"),
  interfaces: [{ dts: read("guest-engine"), iface: "EngineExports", doc: "The benchmark's guest load engine's exports (assembly/guest/engine.ts)." }],
});
const write = (file, text) => {
  const path = join(root, file);
  if (!existsSync(path) || readFileSync(path, "utf8") !== text) writeFileSync(path, text);
};
write("src/wasm/abi.generated.ts", dataplane.text);
write("bench/engine-abi.generated.ts", engine.text);
write(
  "bench/version.generated.ts",
  `// Written by scripts/build.mjs from package.json.\n/** The package's version. */\nexport const VERSION = ${JSON.stringify(JSON.parse(readFileSync(join(root, "package.json"), "utf8")).version)};\n`,
);
checkNoHandCopies(root, [...dataplane.names, ...engine.names], ["src", "bench"], ["src/wasm/", "bench/engine-abi.generated.ts"]);

checkFolderLayering(join(root, "src"));
checkAssemblyLayering(join(root, "assembly"));

execFileSync(bin("tsc"), ["-p", "tsconfig.json"], { cwd: root, stdio: "inherit" });

// The browser bundle (dist/browser/): the browser entry and every module a thread runs, one file
// each beside the others (compiledModule() finds them there), with the wasm builds. Bundled for
// the browser platform and its package condition, it cannot hold a node: module: one fails the build.
rmSync(join(root, "dist", "browser"), { recursive: true, force: true });
const bundle = await esbuild.build({
  entryPoints: {
    "vhost-scsi-wasm": "dist/src/browser.js",
    wire: "dist/src/wire.js",
    "thread-main": "dist/src/worker/thread-main.js",
    "io-thread": "dist/src/backstore/io-thread.js",
    opfs: "dist/src/backstore/opfs.js",
    job: "dist/bench/job.js",
    v86: "dist/src/v86/browser.js",
    "opfs-reference": "dist/bench/opfs-reference.js",
    demo: "dist/demo/demo.js",
  },
  absWorkingDir: root,
  bundle: true,
  splitting: true,
  format: "esm",
  platform: "browser",
  target: "es2022",
  outdir: "dist/browser",
  entryNames: "[name]",
  chunkNames: "chunk-[hash]",
  metafile: true,
  logLevel: "error",
  // The compiled JS, resolved as a browser resolves the package (not through tsconfig's paths, which point at Node's).
  tsconfigRaw: {},
});
const nodeModules = Object.keys(bundle.metafile.inputs).filter((f) => f.startsWith("node:"));
if (nodeModules.length) throw new Error(`the browser bundle imports ${nodeModules.join(", ")}`);
for (const f of ["dataplane.wasm", "dataplane-reloc.wasm", "guest-engine.wasm"]) copyFileSync(join(root, "dist", f), join(root, "dist", "browser", f));
