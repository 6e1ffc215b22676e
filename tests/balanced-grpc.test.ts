// Two schedulers behind one address list: the gateway's and the invoker's
// calls reach both, and while one is killed (-9) and started again, every
// submit is still accepted, once: a submit cut by the kill is sent again to
// the other copy under the same run id (chosen by the gateway, with or
// without an Idempotency-Key), so it never makes two runs.
import { randomUUID } from "node:crypto";
import fs from "node:fs";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { repoRoot } from "../scripts/lib/mesh.mjs";
import { expectEachAcceptedOnce, startTestMesh, type TestMesh } from "./helpers/mesh.js";
import { eventually, gateway, startPeer, type Peer } from "./helpers/peers.js";

let mesh: TestMesh;
let app: Peer;
let api: ReturnType<typeof gateway>;

beforeAll(async () => {
  app = await startPeer();
  mesh = await startTestMesh({
    services: { scheduler: 2 },
    // A run committed by the killed copy just before it could publish its dispatch
    // is republished by the reconciler of the other: soon, for the test.
    env: { SCHEDULER_TICK_MS: "200", SCHEDULER_REDISPATCH_AFTER_SECONDS: "3" },
  });
  api = gateway(mesh.ingressUrl, mesh.apiKey);
  expect((await api.putApp("echo", { url: app.url })).status).toBeLessThan(300);
});

afterAll(async () => {
  await mesh?.cleanup();
  await app?.close();
});

/**
 * Calls of `method` each scheduler copy answered OK (grpc_server_handled_total), or started (grpc_server_started_total).
 * The gateway's submits are messages on its SubmitRuns streams, not calls: {@link acceptedPerCopy} counts them.
 */
async function handledPerCopy(method: string, counter: "handled" | "started" = "handled"): Promise<number[]> {
  return Promise.all(
    mesh.processes
      .filter((p) => p.name === "scheduler")
      .map(async (p) => {
        const text = await (await fetch(`http://127.0.0.1:${p.ports.SCHEDULER_METRICS_PORT}/metrics`)).text();
        const re =
          counter === "handled"
            ? new RegExp(`^grpc_server_handled_total\\{[^}]*grpc_method="${method}"[^}]*grpc_code="OK"[^}]*\\} (\\d+)`, "gm")
            : new RegExp(`^grpc_server_started_total\\{[^}]*grpc_method="${method}"[^}]*\\} (\\d+)`, "gm");
        return [...text.matchAll(re)].reduce((n, m) => n + Number(m[1]), 0);
      }),
  );
}

/** Runs each scheduler copy accepted (`longhaul_runs_accepted_total`), whether the submit came by a stream message or a call. */
async function acceptedPerCopy(): Promise<number[]> {
  return Promise.all(
    mesh.processes
      .filter((p) => p.name === "scheduler")
      .map(async (p) => {
        const text = await fetch(`http://127.0.0.1:${p.ports.SCHEDULER_METRICS_PORT}/metrics`).then((r) => r.text(), () => "");
        return [...text.matchAll(/^longhaul_runs_accepted_total\{[^}]*\} (\d+)/gm)].reduce((n, m) => n + Number(m[1]), 0);
      }),
  );
}

async function submit(key?: string): Promise<{ status: number; runId?: string; body: string }> {
  const r = await api.call("POST", "/dev/echo/work?async=true", "x", key ? { "idempotency-key": key } : {});
  return { status: r.status, runId: r.json?.run_id, body: r.text };
}

describe("two schedulers", () => {
  it("the gateway's and the invoker's calls reach both copies", async () => {
    const ids: string[] = [];
    // Enough runs for the invoker to open its Attempts streams a few times
    // (each is replaced after 100 requests): round-robin puts them on both copies.
    for (let i = 0; i < 150; i++) {
      const r = await submit();
      expect(r.status, r.body).toBe(202);
      ids.push(r.runId!);
    }
    for (const id of ids) expect((await api.finished(id)).status).toBe("succeeded");
    const submits = await acceptedPerCopy();
    const claims = await handledPerCopy("Attempts", "started");
    expect(submits.every((n) => n > 0), `runs accepted per copy: ${submits}`).toBe(true);
    expect(claims.every((n) => n > 0), `Attempts streams per copy: ${claims}`).toBe(true);
  });

  it("no submit is refused while one copy is killed and started again", async () => {
    const results: { key: string; status: number; runId?: string; body: string }[] = [];
    let stop = false;
    const since = new Date();
    const load = (async () => {
      // Every other submit without an Idempotency-Key: the run id alone keeps it one run.
      for (let i = 0; !stop; i++) {
        const key = i % 2 ? randomUUID() : "";
        results.push({ key, ...(await submit(key || undefined)) });
      }
    })();
    const submitted = (n: number) =>
      new Promise<void>((resolve) => {
        const check = () => (results.length >= n ? resolve() : setTimeout(check, 20));
        check();
      });

    await submitted(10);
    // The first copy: the one a client dialling a single address would have used.
    await mesh.kill("scheduler", 0, "SIGKILL");
    const atKill = results.length;
    await submitted(atKill + 30);
    await mesh.start("scheduler", 0);
    const atRestart = results.length;
    await submitted(atRestart + 30);
    stop = true;
    await load;

    // One run per submit: the database holds exactly the runs the gateway named.
    await expectEachAcceptedOnce(mesh, app, since, results);
    // The copy started again takes submits once more, once the gateway reconnected
    // (grpc-js redials a lost address with a back-off of at most 1 s) and
    // renewed its submit streams (every 10 s), or by unary calls meanwhile.
    const later: number[] = [];
    await eventually(async () => {
      later.push((await submit()).status);
      return (await acceptedPerCopy())[0]! > 0;
    }, 30_000, "submits to reach the restarted copy");
    expect(later.every((s) => s === 202), `statuses ${later}`).toBe(true);
  });

  it("exports every metric the alerts and the Grafana dashboard of deploy/k8s name", async () => {
    const dir = path.join(repoRoot, "deploy/k8s/components/monitoring");
    const text = ["prometheus-rule.yaml", "grafana-dashboard.json"].map((f) => fs.readFileSync(path.join(dir, f), "utf8")).join("\n");
    const named = new Set([...text.matchAll(/\b((?:longhaul|grpc_server)_[a-z_]+)\b/g)].map((m) => m[1]!));
    expect(named.size).toBeGreaterThan(5);
    const urls = Object.values(mesh.metricsUrls).flat();
    const texts = await Promise.all(urls.map(async (u) => (await fetch(u)).text()));
    const exported = new Set(texts.flatMap((t) => [...t.matchAll(/^# TYPE (\S+) (\w+)/gm)].map((m) => m[1]!)));
    const missing = [...named].filter((n) => !exported.has(n) && !exported.has(n.replace(/_(bucket|count|sum)$/, "")));
    expect(missing).toEqual([]);
  });
});
