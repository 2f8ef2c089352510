// NBD over TLS (issue 29, item 3): nbds:// and nbds+unix:// against nbdkit with X.509 certificates
// and with a PSK, and qemu-nbd with tls-creds-x509, carrying the integrity stress through the
// SCSI path; a wrong CA, a wrong PSK and a server without TLS are refused with a clear error, and
// nothing goes in clear text before TLS is up. Credentials are made here with openssl.
import { afterAll, afterEach, describe, expect, it } from "vitest";
import { spawnSync, type ChildProcess } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync, truncateSync, writeFileSync, copyFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { randomBytes } from "node:crypto";
import { NbdBackstore } from "../../src/backstore/nbd.js";
import { stress } from "../helpers/stress.js";
import { FakeNbdServer } from "../helpers/nbd-server.js";
import { until } from "../helpers/backstores.js";
import { freePort, startListening, type ListenAt } from "../helpers/server-process.js";

const has = (cmd: string) => spawnSync("sh", ["-c", `command -v ${cmd}`]).status === 0;
const OPENSSL = has("openssl");
const NBDKIT = has("nbdkit") && OPENSSL;
const QEMU_NBD = has("qemu-nbd") && OPENSSL;
if (!OPENSSL) console.warn("skipped: the TLS tests make their credentials with openssl, which is not installed");
if (!has("nbdkit")) console.warn("skipped: the nbdkit TLS tests need nbdkit (Debian package nbdkit)");
if (!has("qemu-nbd")) console.warn("skipped: the qemu-nbd TLS test needs qemu-nbd (Debian package qemu-utils)");

const dir = mkdtempSync(join(tmpdir(), "vhost-nbd-tls-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const servers: (ChildProcess | FakeNbdServer)[] = [];
afterEach(async () => {
  for (const s of servers.splice(0)) {
    if (s instanceof FakeNbdServer) await s.close();
    else s.kill("SIGKILL");
  }
});

/**
 * A CA and a server certificate it signed (for localhost and 127.0.0.1), and with `clientCert` a
 * client certificate too, in the folder layout nbdkit and qemu read.
 */
function makeCredentials(name: string, clientCert = false): { server: string; client: string } {
  const at = join(dir, name);
  const server = join(at, "server");
  const client = join(at, "client");
  mkdirSync(server, { recursive: true });
  mkdirSync(client, { recursive: true });
  const ssl = (...args: string[]) => {
    const r = spawnSync("openssl", args, { cwd: at, encoding: "utf8" });
    if (r.status !== 0) throw new Error(`openssl ${args[0]}: ${r.stderr}`);
  };
  /** A key and a certificate for `subject` that the CA signed, with these extensions. */
  const issue = (key: string, cert: string, subject: string, extensions: string) => {
    writeFileSync(join(at, "ext.cnf"), extensions);
    ssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", "req.csr", "-subj", subject);
    ssl(
      "x509",
      "-req",
      "-in",
      "req.csr",
      "-CA",
      "server/ca-cert.pem",
      "-CAkey",
      "ca-key.pem",
      "-CAcreateserial",
      "-out",
      cert,
      "-days",
      "2",
      "-extfile",
      "ext.cnf",
    );
  };
  ssl(
    "req",
    "-x509",
    "-newkey",
    "rsa:2048",
    "-nodes",
    "-keyout",
    "ca-key.pem",
    "-out",
    "server/ca-cert.pem",
    "-days",
    "2",
    "-subj",
    `/CN=${name} CA`,
    "-addext",
    "basicConstraints=critical,CA:TRUE",
    "-addext",
    "keyUsage=critical,keyCertSign,cRLSign",
  );
  issue(
    "server/server-key.pem",
    "server/server-cert.pem",
    "/CN=localhost",
    "subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\nkeyUsage=critical,digitalSignature,keyEncipherment\n",
  );
  copyFileSync(join(server, "ca-cert.pem"), join(client, "ca-cert.pem"));
  if (clientCert) {
    issue(
      "client/client-key.pem",
      "client/client-cert.pem",
      "/CN=vhost-scsi-wasm",
      "extendedKeyUsage=clientAuth\nkeyUsage=critical,digitalSignature,keyEncipherment\n",
    );
  }
  return { server, client };
}

/** A PSK file of one identity. */
function pskFile(name: string, identity = "alice"): string {
  const f = join(dir, `${name}.psk`);
  writeFileSync(f, `${identity}:${randomBytes(32).toString("hex")}\n`);
  return f;
}

/** Starts a server process; resolves once it takes connections on the socket or port. */
const start = (cmd: string, args: string[], where: ListenAt) => startListening(cmd, args, where, servers);

const sock = (name: string) => join(dir, `${name}-${Math.random()}.sock`);
const q = (params: Record<string, string>) => new URLSearchParams(params).toString();

describe.skipIf(!OPENSSL)("NBD over TLS", () => {
  it.skipIf(!NBDKIT)("nbdkit with X.509 certificates, over a unix socket and TCP: every block of the stress exact", async () => {
    const creds = makeCredentials("x509");
    const s = sock("x509");
    await start("nbdkit", ["-f", "-U", s, "--tls=require", `--tls-certificates=${creds.server}`, "memory", "16M"], { sock: s });
    const port = await freePort();
    await start("nbdkit", ["-f", "-i", "127.0.0.1", "-p", String(port), "--tls=require", `--tls-certificates=${creds.server}`, "memory", "16M"], { port });
    for (const uri of [
      `nbds+unix:///?${q({ socket: s, "tls-certificates": creds.client })}`,
      `nbds://127.0.0.1:${port}/?${q({ "tls-certificates": creds.client })}`,
    ]) {
      expect(await stress({ luns: [{ backstore: "nbd", uri }], queues: 2, queueSize: 64 }, 4)).toMatchObject({ mismatches: 0, failed: 0 });
    }
  });

  it.skipIf(!NBDKIT)("nbdkit with a PSK (given in the LUN's config): every block of the stress exact", async () => {
    const psk = pskFile("good");
    const s = sock("psk");
    await start("nbdkit", ["-f", "-U", s, "--tls=require", `--tls-psk=${psk}`, "memory", "16M"], { sock: s });
    expect(
      await stress({ luns: [{ backstore: "nbd", uri: `nbds+unix:///?socket=${s}`, tlsPskFile: psk, tlsUsername: "alice" }], queues: 2, queueSize: 64 }, 4),
    ).toMatchObject({
      mismatches: 0,
      failed: 0,
    });
  });

  it.skipIf(!QEMU_NBD)("qemu-nbd with tls-creds-x509 over TCP, which asks for the client's certificate: every block of the stress exact", async () => {
    const creds = makeCredentials("qemu", true);
    const image = join(dir, "qemu.raw");
    writeFileSync(image, "");
    truncateSync(image, 16 << 20);
    const port = await freePort();
    await start(
      "qemu-nbd",
      [
        "--object",
        `tls-creds-x509,id=tls0,endpoint=server,dir=${creds.server}`,
        "--tls-creds",
        "tls0",
        "-f",
        "raw",
        "-t",
        "-e",
        "4",
        "-b",
        "127.0.0.1",
        "-p",
        String(port),
        image,
      ],
      { port },
    );
    const uri = `nbds://127.0.0.1:${port}/?${q({ "tls-certificates": creds.client, "tls-hostname": "localhost" })}`;
    expect(await stress({ luns: [{ backstore: "nbd", uri }], queues: 2, queueSize: 64 }, 4)).toMatchObject({ mismatches: 0, failed: 0 });
  });

  it.skipIf(!NBDKIT)(
    "refuses a server whose certificate another CA signed, a wrong PSK, a certificate for another name, and TLS where it is required but not given",
    async () => {
      const creds = makeCredentials("right");
      const other = makeCredentials("other");
      const s = sock("refuse");
      await start("nbdkit", ["-f", "-U", s, "--tls=require", `--tls-certificates=${creds.server}`, "memory", "16M"], { sock: s });
      await expect(NbdBackstore.connect({ uri: `nbds+unix:///?${q({ socket: s, "tls-certificates": other.client })}`, timeoutMs: 5000 })).rejects.toThrow(
        /TLS: .*(certificate|verify)/i,
      );
      await expect(
        NbdBackstore.connect({
          uri: `nbds+unix:///?${q({ socket: s, "tls-certificates": creds.client, "tls-hostname": "storage.example" })}`,
          timeoutMs: 5000,
        }),
      ).rejects.toThrow(/TLS: .*(altnames|storage\.example)/i);
      await expect(NbdBackstore.connect({ uri: `nbd+unix:///?socket=${s}`, timeoutMs: 5000 })).rejects.toThrow(/requires TLS: use an nbds/);
      const p = sock("wrong-psk");
      await start("nbdkit", ["-f", "-U", p, "--tls=require", `--tls-psk=${pskFile("server")}`, "memory", "16M"], { sock: p });
      await expect(NbdBackstore.connect({ uri: `nbds+unix:///?${q({ socket: p, "tls-psk-file": pskFile("client") })}`, timeoutMs: 5000 })).rejects.toThrow(
        /TLS: /,
      );
      // The settings are checked before anything is opened.
      await expect(NbdBackstore.connect({ uri: `nbds+unix:///?socket=${s}` })).rejects.toThrow(/TLS needs credentials/);
    },
  );

  it("a server without TLS: required, the connection ends after NBD_OPT_STARTTLS with nothing else sent; preferred, it goes on in clear", async () => {
    const creds = makeCredentials("plain");
    const f = new FakeNbdServer({ size: 1 << 20 });
    await f.listen();
    servers.push(f);
    await expect(
      NbdBackstore.connect({ uri: `nbds+unix:///?${q({ socket: f.socketPath, "tls-certificates": creds.client })}`, timeoutMs: 5000 }),
    ).rejects.toThrow(/does not offer TLS .*nothing was sent in clear text/);
    // NBD_OPT_STARTTLS (5), then only NBD_OPT_ABORT (2): no export name went out.
    await until(() => f.options.includes(2));
    expect(f.options).toEqual([5, 2]);
    const b = await NbdBackstore.connect({
      uri: `nbd+unix:///?${q({ socket: f.socketPath, "tls-certificates": creds.client })}`,
      tls: "prefer",
      connections: 1,
    });
    expect(b.size).toBe(1 << 20);
    await b.close();
  });
});
