// `npm run lint:proto` (part of `npm test`): buf lint, then buf breaking
// against the main branch, so a change that would break clients of the
// published protos fails the build (DESIGN.md "gRPC and events").
//
// What "main" is depends on the checkout: a local `main` branch (a clone,
// shallow or not: buf fetches what it needs), else `origin/main` (CI checkouts
// are often detached, with no local branch). On main itself this compares
// main with itself, which passes: the check guards branches. A checkout with
// neither (a source tarball, or CI that fetched one commit and no refs) has
// nothing to compare with: the check is skipped with a notice, never silently.
// LONGHAUL_BUF_AGAINST overrides the input (any buf input, e.g.
// `.git#tag=v1.2.0` or `https://github.com/org/longhaul.git#branch=main`).
import { spawnSync } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const buf = path.join(root, "node_modules", ".bin", "buf");

function run(cmd, args) {
  const r = spawnSync(cmd, args, { cwd: root, stdio: "inherit" });
  if (r.error) throw r.error;
  return r.status ?? 1;
}

function gitHas(ref) {
  const r = spawnSync("git", ["rev-parse", "--verify", "--quiet", `${ref}^{commit}`], { cwd: root, stdio: "ignore" });
  return r.status === 0;
}

function against() {
  if (process.env.LONGHAUL_BUF_AGAINST) return process.env.LONGHAUL_BUF_AGAINST;
  if (!fs.existsSync(path.join(root, ".git"))) return undefined;
  if (gitHas("refs/heads/main")) return ".git#branch=main";
  if (gitHas("refs/remotes/origin/main")) return ".git#ref=origin/main";
  return undefined;
}

let status = run(buf, ["lint"]);
if (status !== 0) process.exit(status);
const input = against();
if (!input) {
  console.log("buf breaking: skipped, no main branch here to compare with (set LONGHAUL_BUF_AGAINST to name one)");
  process.exit(0);
}
status = run(buf, ["breaking", "--against", input]);
if (status === 0) console.log(`buf lint and buf breaking (against ${input}): ok`);
process.exit(status);
