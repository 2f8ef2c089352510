/**
 * The compiled JavaScript of one of this package's modules, for code that must load it in a
 * worker thread. Name the module by its source (`new URL("./x.ts", import.meta.url)`): running
 * compiled, that is its sibling x.js in dist/; running from the TypeScript sources (vitest), its
 * copy in dist/; running from the browser bundle (every module one file beside the others in
 * dist/browser/), the bundle of that name.
 */
export function compiledModule(url: string | URL): URL {
  const s = url.toString();
  if (!s.endsWith(".ts")) return new URL(s);
  const js = `${s.slice(0, -3)}.js`;
  if (/\/dist\/(src|bench)\//.test(js)) return new URL(js);
  const m = /^(.*)\/(src|bench)\/(.*)$/.exec(js);
  if (!m) return new URL(js);
  return new URL(`${m[1]}/dist/${m[2]}/${m[3]}`);
}
