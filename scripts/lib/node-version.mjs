// Longhaul runs on Node 24 LTS (Node 20 reached end of life in April 2026).
// The registry's `node` package, a devDependency, puts a Node 24 binary at
// node_modules/.bin/node, and npm scripts put that directory first on PATH:
// `npm start`, `npm test` and the benchmarks run on it even where the system
// Node is older. Run directly with an older Node, a script starts itself again
// on that binary instead of failing half way.
import { spawnSync } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";

/** The oldest Node major the project runs on (package.json `engines`). */
export const MIN_NODE_MAJOR = 24;

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..", "..");

/**
 * Returns when this process runs on Node ≥ 24. Otherwise runs the same script
 * with the project's Node 24 (node_modules/.bin/node) and exits with its code,
 * or exits 1 with what to do when that binary is missing.
 */
export function ensureNodeVersion() {
  const major = Number(process.versions.node.split(".")[0]);
  if (major >= MIN_NODE_MAJOR) return;
  const local = path.join(repoRoot, "node_modules", ".bin", "node");
  if (!fs.existsSync(local)) {
    console.error(
      `Longhaul needs Node ${MIN_NODE_MAJOR} or later (this is ${process.version}); run \`npm install\` first: it installs Node ${MIN_NODE_MAJOR} into node_modules/.bin.`,
    );
    process.exit(1);
  }
  const r = spawnSync(local, [...process.execArgv, ...process.argv.slice(1)], { stdio: "inherit" });
  process.exit(r.status ?? 1);
}
