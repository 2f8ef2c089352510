// Debian's Chromium as the browser tests and `npm run bench:browser` start it, through
// playwright-core (no browser download): headless, sandbox off (as root it will not start
// otherwise), no background networking (the machine's network is closed), /dev/shm not trusted
// (Debian's wrapper misreads it in containers), with a profile folder kept on disk so that the
// site's Origin Private File System outlives a restart.
import { existsSync } from "node:fs";
import { chromium } from "playwright-core";

/** The system's Chromium, or undefined where it is not installed. */
export const CHROMIUM = ["/usr/bin/chromium", "/usr/bin/chromium-browser"].find(existsSync);

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

/** Chromium with the profile in `profile` (a folder), headless. */
export const launchChromium = (profile) => chromium.launchPersistentContext(profile, { executablePath: CHROMIUM, args: ARGS, headless: true });
