// Chromium for the browser tests (scripts/chromium.mjs: the system's, as .ci/run installs it) and
// the demo server serving the repository cross-origin isolated.
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { BrowserContext, Page } from "playwright-core";
// @ts-expect-error: a script of the repository, untyped
import { CHROMIUM, launchChromium } from "../../scripts/chromium.mjs";
// @ts-expect-error: a script of the repository, untyped
import { serve } from "../../scripts/demo-server.mjs";

export { CHROMIUM };
if (!CHROMIUM) console.warn("skipped: the browser tests need Chromium (Debian package chromium)");

/** A browser with a profile folder of its own, kept across its restarts (OPFS data persists in it). */
export function persistentProfile(): string {
  return mkdtempSync(join(tmpdir(), "chromium-profile-"));
}
export const launchPersistent = (profile: string): Promise<BrowserContext> => launchChromium(profile);

/** The demo server on a free port (with extra [URL prefix, folder] mounts): its URL and close(). */
export const startServer = (mounts: [string, string][] = []): Promise<{ url: string; close(): Promise<void> }> => serve({ port: 0, mounts });

/** Collects what a page says on its console and the errors it throws, for failure messages. */
export function watch(page: Page): string[] {
  const lines: string[] = [];
  page.on("console", (m) => lines.push(`console.${m.type()}: ${m.text()}`));
  page.on("pageerror", (e) => lines.push(`pageerror: ${e.message}`));
  return lines;
}
