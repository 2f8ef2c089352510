// Builds the data plane (AssemblyScript -> dist/dataplane.wasm) and the TypeScript (-> dist/).
// The wasm step is skipped when dist/dataplane.wasm is newer than every file in assembly/.
import { execFileSync } from "node:child_process";
import { mkdirSync, readdirSync, readFileSync, statSync, existsSync } from "node:fs";
import { join } from "node:path";

const root = new URL("..", import.meta.url).pathname;
const bin = (name) => join(root, "node_modules", ".bin", name);

const newest = (dir) =>
  Math.max(...readdirSync(dir, { recursive: true }).map((f) => statSync(join(dir, f)).mtimeMs));

mkdirSync(join(root, "dist"), { recursive: true });
// Two builds of the same data plane: static data at the bottom of the memory (the default
// layout), and relocated to 16 MiB for a memory it shares with a module that owns the bottom
// (an emulator: src/memory/shared-memory.ts RELOCATED_STATIC_BASE). And the benchmark's guest
// load engine, which shares the memory too and so must have no static data at all.
const builds = [
  { name: "dataplane", entry: "assembly/index.ts", base: 0 },
  { name: "dataplane-reloc", entry: "assembly/index.ts", base: 16 << 20 },
  { name: "guest-engine", entry: "assembly/guest/engine.ts", base: 0, noData: true },
];
for (const { name, entry, base, noData } of builds) {
  const wasm = join(root, "dist", `${name}.wasm`);
  const wat = join(root, "dist", `${name}.wat`);
  if (!existsSync(wasm) || statSync(wasm).mtimeMs < Math.max(newest(join(root, "assembly")), statSync(new URL(import.meta.url)).mtimeMs)) {
    execFileSync(bin("asc"), [
      entry,
      "--outFile", `dist/${name}.wasm`,
      "--textFile", `dist/${name}.wat`,
      "--runtime", "stub",
      "--importMemory", "--sharedMemory", "--initialMemory", String(Math.floor(base / 65536) + 1), "--maximumMemory", "65536",
      ...(base ? ["--memoryBase", String(base)] : []),
      "--enable", "threads",
      "--optimizeLevel", "3", "--shrinkLevel", "0", "--converge", "--noAssert",
    ], { cwd: root, stdio: "inherit" });
  }
  // No module may allocate: per-instance heaps would overlap in the one shared memory, and the
  // runtime's bump heap starts right after the static data. A module that links the runtime
  // allocator is refused here, and one that must share the bottom of the memory with the data
  // plane is refused if it has any static data.
  const text = readFileSync(wat, "utf8");
  if (/\$~lib\/rt\//.test(text)) throw new Error(`${wat} uses the AssemblyScript runtime allocator: it must not allocate`);
  if (noData && /\(data /.test(text)) throw new Error(`${wat} has static data: it would overlap the data plane's`);
}
execFileSync(bin("tsc"), ["-p", "tsconfig.json"], { cwd: root, stdio: "inherit" });
