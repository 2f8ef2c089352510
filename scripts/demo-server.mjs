// A small static server for the browser demo and the browser tests (node:http, no framework).
// Every response is cross-origin isolated (COOP same-origin, COEP require-corp, CORP
// same-origin): SharedArrayBuffer and a shared WebAssembly.Memory need it. It serves the
// repository (the page in demo/, the bundle in dist/browser/), v86's build from node_modules,
// and the Linux guest's images from their cache (`npm run guest` fetches them) under /guest/.
import { createServer } from "node:http";
import { createReadStream, statSync } from "node:fs";
import { extname, join, normalize, sep } from "node:path";
import { fileURLToPath } from "node:url";
import { guestCacheDir } from "./guest-image.mjs";

const root = fileURLToPath(new URL("..", import.meta.url));
const TYPES = {
  ".html": "text/html; charset=utf-8",
  ".js": "text/javascript; charset=utf-8",
  ".mjs": "text/javascript; charset=utf-8",
  ".css": "text/css; charset=utf-8",
  ".wasm": "application/wasm",
  ".json": "application/json",
  ".svg": "image/svg+xml",
  ".png": "image/png",
};
const ISOLATED = {
  "Cross-Origin-Opener-Policy": "same-origin",
  "Cross-Origin-Embedder-Policy": "require-corp",
  "Cross-Origin-Resource-Policy": "same-origin",
  "Cache-Control": "no-store",
};

/** The file a URL path names: a mount's folder and what is below it, never outside. */
function resolvePath(pathname, extra) {
  const mounts = [...extra, ["/guest/", guestCacheDir()], ["/v86/", join(root, "node_modules", "v86", "build")], ["/", root]];
  for (const [prefix, dir] of mounts) {
    if (!pathname.startsWith(prefix)) continue;
    const file = normalize(join(dir, pathname.slice(prefix.length)));
    return file === dir || file.startsWith(dir.endsWith(sep) ? dir : dir + sep) ? file : undefined;
  }
  return undefined;
}

/**
 * Starts the server on `port` (0: any free one); resolves with its URL and a close(). `mounts`
 * adds [URL prefix, folder] pairs served before the others (a test's files).
 */
export function serve({ port = 0, host = "127.0.0.1", mounts = [] } = {}) {
  const server = createServer((req, res) => {
    let pathname;
    try {
      pathname = decodeURIComponent(new URL(req.url ?? "/", "http://x").pathname);
    } catch {
      res.writeHead(400, ISOLATED).end();
      return;
    }
    if (pathname === "/") pathname = "/demo/index.html";
    const file = resolvePath(pathname, mounts);
    let st;
    try {
      st = file && statSync(file);
    } catch {}
    if (!st?.isFile()) {
      res.writeHead(404, { ...ISOLATED, "Content-Type": "text/plain" }).end(`not found: ${pathname}\n`);
      return;
    }
    res.writeHead(200, { ...ISOLATED, "Content-Type": TYPES[extname(file)] ?? "application/octet-stream", "Content-Length": st.size });
    if (req.method === "HEAD") res.end();
    else createReadStream(file).pipe(res);
  });
  return new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, host, () => {
      const { port: p } = server.address();
      resolve({
        url: `http://${host === "0.0.0.0" ? "127.0.0.1" : host}:${p}/`,
        close: () => new Promise((r) => server.close(() => r()) && server.closeAllConnections()),
      });
    });
  });
}

if (process.argv[1] && fileURLToPath(import.meta.url) === normalize(process.argv[1])) {
  const port = Number(process.env.PORT ?? 8080);
  const { url } = await serve({ port, host: process.env.HOST ?? "127.0.0.1" });
  console.log(`vhost-scsi-wasm demo: open ${url} in Chromium (or another browser with OPFS and cross-origin isolation); Ctrl-C stops the server`);
}
