// Summarises a V8 .cpuprofile (as `node --cpu-prof` writes it): self time per
// frame and per package, from the samples and their time deltas.

/** The package a script belongs to: `pg`, `@grpc/grpc-js`, `node:internal`, or `longhaul:<service>`. */
export function packageOf(url) {
  if (!url) return "(native / idle / gc)";
  if (url.startsWith("node:")) return "node:internal";
  const nm = url.lastIndexOf("node_modules/");
  if (nm >= 0) {
    const rest = url.slice(nm + "node_modules/".length).split("/");
    return rest[0].startsWith("@") ? `${rest[0]}/${rest[1]}` : rest[0];
  }
  const svc = /services\/([^/]+)\//.exec(url);
  return svc ? `longhaul:${svc[1]}` : url;
}

/**
 * @param {{ nodes: {id:number, callFrame:{functionName:string,url:string,lineNumber:number}}[], samples:number[], timeDeltas:number[], startTime:number, endTime:number }} profile
 * @param {number} top frames to return
 */
export function summariseProfile(profile, top = 20) {
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const selfUs = new Map();
  for (let i = 0; i < profile.samples.length; i++) {
    const id = profile.samples[i];
    selfUs.set(id, (selfUs.get(id) ?? 0) + (profile.timeDeltas[i] ?? 0));
  }
  const frames = new Map();
  const packages = new Map();
  let total = 0;
  let idle = 0;
  for (const [id, us] of selfUs) {
    const node = byId.get(id);
    if (!node) continue;
    total += us;
    const { functionName, url, lineNumber } = node.callFrame;
    if (functionName === "(idle)" || functionName === "(program)") {
      if (functionName === "(idle)") idle += us;
      continue;
    }
    const short = url ? url.replace(/^.*node_modules\//, "").replace(/^.*\/services\//, "services/") : "";
    const key = `${functionName || "(anonymous)"} ${short}${url ? `:${lineNumber + 1}` : ""}`;
    frames.set(key, (frames.get(key) ?? 0) + us);
    const pkg = functionName === "(garbage collector)" ? "(gc)" : packageOf(url);
    packages.set(pkg, (packages.get(pkg) ?? 0) + us);
  }
  const active = total - idle;
  const rank = (m) =>
    [...m.entries()]
      .sort((a, b) => b[1] - a[1])
      .map(([name, us]) => ({ name, ms: us / 1000, pct: active > 0 ? (100 * us) / active : 0 }));
  return { totalMs: total / 1000, activeMs: active / 1000, frames: rank(frames).slice(0, top), packages: rank(packages) };
}
