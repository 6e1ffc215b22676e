// Certificates for the gRPC TLS tests, made at run time by the `openssl` CLI
// in a temp dir: a CA, a certificate of the mesh it signed (loopback names,
// server and client use), and the same again under a CA nobody trusts.
import { execFileSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";

/** Paths of one certificate, its key and the CA that signed it. */
export interface TestIdentity {
  ca: string;
  cert: string;
  key: string;
}

export interface TestPki extends TestIdentity {
  dir: string;
  /** A certificate with the same names, signed by another CA. */
  rogue: TestIdentity;
  /**
   * Signs one more certificate of the mesh under the trusted CA (its own key),
   * written to `<name>.crt` / `<name>.key`; a new serial each time.
   */
  issue(name: string): TestIdentity;
  /** Removes the temp dir. */
  cleanup(): void;
}

function openssl(args: string[], cwd: string): void {
  // A missing openssl throws ENOENT here: the test fails loudly, it never skips.
  execFileSync("openssl", args, { cwd, stdio: ["ignore", "ignore", "pipe"] });
}

function makeCa(dir: string, name: string): { crt: string; key: string } {
  const crt = path.join(dir, `${name}.crt`);
  const key = path.join(dir, `${name}.key`);
  openssl(
    ["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", key, "-out", crt, "-days", "2", "-subj", `/CN=${name}`],
    dir,
  );
  return { crt, key };
}

function makeLeaf(dir: string, ca: { crt: string; key: string }, name: string): TestIdentity {
  const key = path.join(dir, `${name}.key`);
  const csr = path.join(dir, `${name}.csr`);
  const crt = path.join(dir, `${name}.crt`);
  const ext = path.join(dir, `${name}.ext`);
  // One certificate per service in production; the test mesh shares one that
  // names the loopback addresses it dials, usable by servers and clients.
  writeFileSync(ext, "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth,clientAuth\nbasicConstraints=CA:FALSE\n");
  openssl(["req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", key, "-out", csr, "-subj", `/CN=${name}`], dir);
  const serial = `0x${Date.now().toString(16)}${Math.floor(Math.random() * 0xffff).toString(16)}`;
  openssl(["x509", "-req", "-in", csr, "-CA", ca.crt, "-CAkey", ca.key, "-set_serial", serial, "-out", crt, "-days", "2", "-extfile", ext], dir);
  return { ca: ca.crt, cert: crt, key };
}

/** Makes a fresh PKI in a temp dir (a few hundred ms of openssl). */
export function createTestPki(): TestPki {
  const dir = mkdtempSync(path.join(tmpdir(), "longhaul-pki-"));
  const ca = makeCa(dir, "ca");
  const rogueCa = makeCa(dir, "rogue-ca");
  return {
    dir,
    ...makeLeaf(dir, ca, "mesh"),
    rogue: makeLeaf(dir, rogueCa, "rogue"),
    issue: (name) => makeLeaf(dir, ca, name),
    cleanup: () => rmSync(dir, { recursive: true, force: true }),
  };
}
