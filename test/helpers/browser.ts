// Chromium for the browser tests: Debian's /usr/bin/chromium driven by playwright-core (no
// browser download: the system's, as .ci/run installs it), headless, sandbox off as root, no
// background networking (the machine's network is closed), and the demo server serving the
// repository cross-origin isolated.
import { existsSync, mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { chromium, type BrowserContext, type Page } from "playwright-core";
// @ts-expect-error: a script of the repository, untyped
import { serve } from "../../scripts/demo-server.mjs";

export const CHROMIUM = ["/usr/bin/chromium", "/usr/bin/chromium-browser"].find(existsSync);
if (!CHROMIUM) console.warn("skipped: the browser tests need Chromium (Debian package chromium)");

const ARGS = [
  "--no-sandbox",
  "--disable-dev-shm-usage",
  "--disable-gpu",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
  "--no-first-run",
  "--disable-features=Translate,OptimizationHints,MediaRouter",
];

/** A browser with a profile folder of its own, kept across its restarts (OPFS data persists in it). */
export function persistentProfile(): string {
  return mkdtempSync(join(tmpdir(), "chromium-profile-"));
}
export const launchPersistent = (profile: string): Promise<BrowserContext> =>
  chromium.launchPersistentContext(profile, { executablePath: CHROMIUM, args: ARGS, headless: true });

/** The demo server on a free port: its URL and close(). */
export const startServer = (): Promise<{ url: string; close(): Promise<void> }> => serve({ port: 0 });

/** Collects what a page says on its console and the errors it throws, for failure messages. */
export function watch(page: Page): string[] {
  const lines: string[] = [];
  page.on("console", (m) => lines.push(`console.${m.type()}: ${m.text()}`));
  page.on("pageerror", (e) => lines.push(`pageerror: ${e.message}`));
  return lines;
}
