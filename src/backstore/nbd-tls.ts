// NBD over TLS (the NBD protocol's "TLS support"): after NBD_OPT_STARTTLS is acknowledged the
// client starts TLS on the same socket and the rest of the handshake and all of the transmission
// phase go through it. X.509 (the server verified against a CA, optionally a client certificate)
// or TLS-PSK (a key file of "identity:hexkey" lines, as nbdkit's --tls-psk and psktool write).
// The settings come from the LUN's config or from the URI's query, spelt as libnbd and nbdkit
// spell them (tls-certificates, tls-psk-file, tls-username, tls-hostname, tls-verify-peer).
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { isIP, type Socket } from "node:net";
import { connect as tlsConnect, type ConnectionOptions, type TLSSocket } from "node:tls";

/** Whether TLS is used: required (nbds URIs), used when the server offers it, or not at all. */
export type NbdTlsMode = "require" | "prefer" | "off";

/** TLS settings of an NBD LUN (NbdConfig's `tls*` fields). */
export interface NbdTlsConfig {
  /** Default "require" for nbds:// and nbds+unix:// URIs, else "off". */
  tls?: NbdTlsMode;
  /**
   * X.509: a folder with ca-cert.pem (the CA the server's certificate must chain to) and,
   * for a client certificate, client-cert.pem and client-key.pem (the names nbdkit and qemu use).
   */
  tlsCertificates?: string;
  /** TLS-PSK: a file of "identity:hexkey" lines. */
  tlsPskFile?: string;
  /** The PSK identity to use (default: the file's first). */
  tlsUsername?: string;
  /** The name the server's certificate must carry (default: the URI's host, or "localhost" over a unix socket). */
  tlsHostname?: string;
  /** Check the server's certificate (default true). */
  tlsVerifyPeer?: boolean;
}

/** The TLS settings a URI's scheme and query give, under those of the config. */
export function tlsSettings(u: URL, cfg: NbdTlsConfig): Required<Pick<NbdTlsConfig, "tls">> & NbdTlsConfig {
  const q = (k: string) => u.searchParams.get(k) ?? undefined;
  const secure = u.protocol === "nbds:" || u.protocol === "nbds+unix:";
  const verify = q("tls-verify-peer");
  const s = {
    tls: cfg.tls ?? (secure ? "require" : "off"),
    tlsCertificates: cfg.tlsCertificates ?? q("tls-certificates"),
    tlsPskFile: cfg.tlsPskFile ?? q("tls-psk-file"),
    tlsUsername: cfg.tlsUsername ?? q("tls-username"),
    tlsHostname: cfg.tlsHostname ?? q("tls-hostname"),
    tlsVerifyPeer: cfg.tlsVerifyPeer ?? (verify === undefined ? true : verify !== "false"),
  } as const;
  if (!["require", "prefer", "off"].includes(s.tls)) throw new RangeError(`tls "${s.tls}": require, prefer or off`);
  if (s.tls !== "off" && !s.tlsCertificates && !s.tlsPskFile) {
    throw new RangeError(`${u.href}: TLS needs credentials: tls-certificates=DIR (X.509) or tls-psk-file=FILE (PSK)`);
  }
  if (s.tlsCertificates && s.tlsPskFile) throw new RangeError(`${u.href}: give X.509 certificates or a PSK file, not both`);
  return s;
}

/** A PSK file's key for `identity` (or its first). */
function pskOf(file: string, identity: string | undefined): { identity: string; psk: Buffer } {
  for (const line of readFileSync(file, "utf8").split("\n")) {
    const m = /^([^:\s]+):([0-9a-fA-F]+)\s*$/.exec(line);
    if (m && (identity === undefined || m[1] === identity)) return { identity: m[1], psk: Buffer.from(m[2], "hex") };
  }
  throw new Error(`${file}: no PSK${identity ? ` for "${identity}"` : ""} (lines of identity:hexkey)`);
}

/** Reads a credential file, saying which one is missing. */
function pem(dir: string, name: string, optional = false): Buffer | undefined {
  try {
    return readFileSync(join(dir, name));
  } catch (e) {
    if (optional && (e as NodeJS.ErrnoException).code === "ENOENT") return undefined;
    throw new Error(`TLS credentials: ${join(dir, name)}: ${(e as Error).message}`);
  }
}

/** node:tls options for these settings (credentials read now, so that a missing file is an error before connecting). */
export function tlsOptions(s: NbdTlsConfig, host: string | undefined): ConnectionOptions {
  const servername = s.tlsHostname ?? host ?? "localhost";
  if (s.tlsPskFile) {
    const { identity, psk } = pskOf(s.tlsPskFile, s.tlsUsername);
    // Node's TLS-PSK is TLS 1.2 (its PSK ciphers); gnutls servers (nbdkit, qemu) offer them.
    return { pskCallback: () => ({ identity, psk }), ciphers: "PSK", maxVersion: "TLSv1.2", checkServerIdentity: () => undefined };
  }
  const dir = s.tlsCertificates!;
  return {
    ca: pem(dir, "ca-cert.pem"),
    cert: pem(dir, "client-cert.pem", true),
    key: pem(dir, "client-key.pem", true),
    servername: isIP(servername) ? undefined : servername, // SNI carries host names only
    host: servername,
    rejectUnauthorized: s.tlsVerifyPeer !== false,
  };
}

/** Starts TLS on a socket whose NBD_OPT_STARTTLS was acknowledged; resolves once the TLS handshake is done and the server verified. */
export function startTls(sock: Socket, opts: ConnectionOptions): Promise<TLSSocket> {
  return new Promise((resolve, reject) => {
    const t = tlsConnect({ ...opts, socket: sock }, () => {
      t.off("error", reject);
      resolve(t);
    });
    t.once("error", (e) => reject(new Error(`TLS: ${e.message}`)));
  });
}
