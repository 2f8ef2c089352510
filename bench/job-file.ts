// fio's job file format (fio's HOWTO, "Job file format"), read into the option entries the
// command line also gives: `[name]` sections, `[global]` options applying to the jobs after
// them, `key=value` or a bare `key` per line, `;` and `#` comment lines, `include FILE`, and
// `${VAR}` expanded from the environment (with fio's own `$ncpus`, `$pagesize` and
// `$mb_memory`). Nothing here knows what an option means; options.ts does.
import { platform } from "#platform";

/** One option as given: its name, its value (undefined for a bare flag), and where, for messages. */
export interface OptionEntry {
  key: string;
  value: string | undefined;
  where: string;
}

/** A job: its name, where it starts, and its options (the globals before it first, then its own). */
export interface JobSection {
  name: string;
  where: string;
  entries: OptionEntry[];
}

export class JobFileError extends Error {}

/** fio's predefined variables ($ncpus and friends), then the environment's ${VAR}. */
function expand(text: string, where: string, env: Record<string, string | undefined>): string {
  const fio: Record<string, string> = {
    ncpus: String(platform.cores()),
    pagesize: "4096",
    mb_memory: String(Math.floor(platform.totalMemory() / 2 ** 20)),
  };
  return text
    .replace(/\$\{([A-Za-z_][A-Za-z0-9_]*)\}/g, (_, name: string) => {
      const v = env[name];
      if (v === undefined) throw new JobFileError(`${where}: \${${name}} is not set in the environment`);
      return v;
    })
    .replace(/\$(ncpus|pagesize|mb_memory)\b/g, (_, name: string) => fio[name]);
}

/** A path named in `file`: as it is when absolute, else beside `file`. */
function besideFile(file: string, path: string): string {
  if (path.startsWith("/")) return path;
  const slash = file.lastIndexOf("/");
  return slash < 0 ? path : `${file.slice(0, slash + 1)}${path}`;
}

/** The lines of a file, with includes read in place: [text, where]. */
function lines(text: string, file: string, readText: (path: string) => string, depth: number): [string, string][] {
  const out: [string, string][] = [];
  text.split(/\r?\n/).forEach((raw, i) => {
    const where = `${file}:${i + 1}`;
    const line = raw.trim();
    const inc = /^include\s+(.+)$/.exec(line);
    if (!inc) {
      out.push([line, where]);
      return;
    }
    if (depth >= 8) throw new JobFileError(`${where}: includes nested too deep`);
    const path = besideFile(file, inc[1].trim());
    let body: string;
    try {
      body = readText(path);
    } catch (e) {
      throw new JobFileError(`${where}: include ${inc[1].trim()}: ${(e as Error).message}`);
    }
    out.push(...lines(body, path, readText, depth + 1));
  });
  return out;
}

/**
 * The jobs of a job file's text (`file` names it in messages and anchors includes). A job gets
 * the [global] options that come before it in the file, then its own.
 */
export function parseJobFile(text: string, file: string, env: Record<string, string | undefined>, readText: (path: string) => string): JobSection[] {
  const global: OptionEntry[] = [];
  const jobs: JobSection[] = [];
  let current: OptionEntry[] | undefined;
  for (const [line, where] of lines(text, file, readText, 0)) {
    if (line === "" || line.startsWith(";") || line.startsWith("#")) continue;
    const section = /^\[([^\]]*)\]$/.exec(line);
    if (section) {
      const name = section[1].trim();
      if (!name) throw new JobFileError(`${where}: a section needs a name`);
      if (name === "global") current = global;
      else {
        const job = { name, where, entries: [...global] };
        jobs.push(job);
        current = job.entries;
      }
      continue;
    }
    if (!current) throw new JobFileError(`${where}: '${line}' comes before any [section]`);
    const eq = line.indexOf("=");
    const key = (eq < 0 ? line : line.slice(0, eq)).trim();
    if (!/^[A-Za-z_][\w-]*$/.test(key)) throw new JobFileError(`${where}: '${line}' is not an option (key=value or key)`);
    current.push({ key, value: eq < 0 ? undefined : expand(line.slice(eq + 1).trim(), where, env), where });
  }
  if (jobs.length === 0) throw new JobFileError(`${file}: no jobs defined (only [global])`);
  return jobs;
}
