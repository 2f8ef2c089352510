// Storage servers as separate processes for the tests (nbdkit, qemu-nbd): a free TCP port, and
// starting one on a unix socket or a port and waiting until it takes connections.
import { spawn, type ChildProcess } from "node:child_process";
import { rmSync } from "node:fs";
import { createConnection, createServer, type AddressInfo } from "node:net";

/** Where a server listens: a unix socket's path or a TCP port on 127.0.0.1. */
export interface ListenAt {
  sock?: string;
  port?: number;
}

/** A TCP port nothing listens on now. */
export const freePort = () =>
  new Promise<number>((resolve) => {
    const srv = createServer().listen(0, "127.0.0.1", () => {
      const { port } = srv.address() as AddressInfo;
      srv.close(() => resolve(port));
    });
  });

/** Whether a connection to the unix socket or TCP port is taken now. */
const connectable = (where: ListenAt) =>
  new Promise<boolean>((resolve) => {
    const c = where.sock ? createConnection({ path: where.sock }) : createConnection({ port: where.port!, host: "127.0.0.1" });
    c.once("connect", () => (c.destroy(), resolve(true)));
    c.once("error", () => resolve(false));
  });

/** Waits until the server at `where` takes connections (a socket file may exist before it listens). */
async function listening(where: ListenAt): Promise<void> {
  const t0 = Date.now();
  while (!(await connectable(where))) {
    if (Date.now() - t0 > 10_000) throw new Error(`nothing listens at ${where.sock ?? where.port}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/**
 * Starts a server process that listens at `where` (a stale socket file removed first), adds it to
 * `servers` (the test kills what is there), and resolves once it takes connections.
 */
export async function startListening(cmd: string, args: string[], where: ListenAt, servers: unknown[]): Promise<ChildProcess> {
  if (where.sock) rmSync(where.sock, { force: true });
  const p = spawn(cmd, args, { stdio: "ignore" });
  servers.push(p);
  await listening(where);
  return p;
}
