// The folders of src/ are layers: a folder may import the folders below it, never one that
// imports it back, directly or around a longer cycle. The files at the top of src/ are the
// package's entry points, above everything. The build fails on a cycle and names the imports.
import { readFileSync, readdirSync } from "node:fs";
import { dirname, join, normalize } from "node:path";

/** The package's subpath imports (package.json "imports"): the folder each resolves to, on every platform. */
const SUBPATHS = { "#platform": "sys", "#backstores": "backstore" };

/** src/ folder -> folders it imports -> one import that does it ("file -> specifier"). */
export function folderGraph(src) {
  const edges = new Map();
  for (const f of readdirSync(src, { recursive: true }).filter((f) => f.endsWith(".ts"))) {
    if (!f.includes("/")) continue; // an entry point
    const from = f.split("/")[0];
    if (!edges.has(from)) edges.set(from, new Map());
    for (const m of readFileSync(join(src, f), "utf8").matchAll(/(?:from|import)\s*\(?\s*"(\.{1,2}\/[^"]+|#[\w-]+)"/g)) {
      const to = m[1].startsWith("#") ? SUBPATHS[m[1]] : normalize(join(dirname(f), m[1])).split("/")[0];
      if (to !== from && !edges.get(from).has(to)) edges.get(from).set(to, `src/${f} -> ${m[1]}`);
    }
  }
  return edges;
}

/** Throws when the folders of `src` import each other in a cycle. */
export function checkFolderLayering(src) {
  const edges = folderGraph(src);
  throwOnCycle(edges, "src/ folders");
  return edges;
}

/**
 * Throws when the graph (node -> node it imports -> one import that does it) has a cycle, naming
 * `what` imports each other, the cycle and the import behind each step.
 */
function throwOnCycle(edges, what) {
  const state = new Map(); // 1: on the path, 2: done
  const path = [];
  const visit = (n) => {
    state.set(n, 1);
    path.push(n);
    for (const m of edges.get(n)?.keys() ?? []) {
      if (state.get(m) === 1) {
        const cycle = [...path.slice(path.indexOf(m)), m];
        const how = cycle.slice(0, -1).map((a, i) => edges.get(a).get(cycle[i + 1]));
        throw new Error(`${what} import each other in a cycle: ${cycle.join(" -> ")}\n  ${how.join("\n  ")}`);
      }
      if (!state.has(m)) visit(m);
    }
    path.pop();
    state.set(n, 2);
  };
  for (const n of edges.keys()) if (!state.has(n)) visit(n);
}

/**
 * assembly/ in one direction: its top-level files are the core (rings, chains, memory, copies),
 * its folders the devices and programs built on it (scsi/, guest/). No core file imports a
 * folder's (only the entry points, `entries`, which assemble a build, may), and no file imports
 * itself back through any chain of imports. Throws naming the imports; returns the file graph.
 */
export function checkAssemblyLayering(assembly, entries = ["index.ts", "testing.ts"]) {
  const files = readdirSync(assembly, { recursive: true }).filter((f) => f.endsWith(".ts"));
  const edges = new Map();
  for (const f of files) {
    const out = new Map();
    for (const m of readFileSync(join(assembly, f), "utf8").matchAll(/(?:from|import)\s*\(?\s*"(\.{1,2}\/[^"]+)"/g)) {
      const to = `${normalize(join(dirname(f), m[1]))}.ts`;
      out.set(to, `assembly/${f} -> ${m[1]}`);
      if (!f.includes("/") && !entries.includes(f) && to.includes("/"))
        throw new Error(`assembly/${f} is the core and imports a device's file: assembly/${f} -> ${m[1]}`);
    }
    edges.set(f, out);
  }
  throwOnCycle(edges, "assembly/ files");
  return edges;
}
