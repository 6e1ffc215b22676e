// A call that may have reached an app not declared idempotent is never sent
// again: only a connection never made, or the app's own refusal (429, 503),
// is retried for it. An idempotent app keeps the wider policy. Real mesh,
// real app on loopback that breaks its connections on purpose.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startTestMesh, type TestMesh } from "./helpers/mesh.js";
import { gateway, startPeer, type Peer } from "./helpers/peers.js";

let mesh: TestMesh;
let app: Peer;
let api: ReturnType<typeof gateway>;

beforeAll(async () => {
  app = await startPeer();
  // /reset: the app reads the request, then the connection breaks before any answer.
  // /half: the app starts its answer, then the connection breaks.
  // /status?code=N: the app answers N.
  app.handle((req, res, raw) => {
    const url = new URL(req.url, "http://x");
    if (url.pathname === "/reset") return void raw.socket.destroy();
    if (url.pathname === "/half") {
      res.writeHead(200, { "content-type": "text/plain", "content-length": "1000" });
      res.write("the first part");
      setTimeout(() => raw.socket.destroy(), 50);
      return;
    }
    res.writeHead(Number(url.searchParams.get("code") ?? 200), { "content-type": "text/plain" });
    res.end("answer");
  });
  mesh = await startTestMesh();
  api = gateway(mesh.ingressUrl, mesh.apiKey);
  const retry = { max_attempts: 3, initial_backoff_seconds: 0.1 };
  await api.putApp("plain", { url: app.url, retry });
  await api.putApp("idem", { url: app.url, retry: { ...retry, idempotent: true } });
});

afterAll(async () => {
  await mesh?.cleanup();
  await app?.close();
});

async function runTo(appName: string, path: string): Promise<{ run: Record<string, unknown> & { attempts: unknown[] }; calls: number }> {
  const tag = Math.random().toString(36).slice(2);
  const r = await api.call("POST", `/dev/${appName}${path}${path.includes("?") ? "&" : "?"}async=true&tag=${tag}`, "body");
  expect(r.status).toBe(202);
  const run = await api.finished(r.json.run_id as string, 30_000);
  return { run, calls: app.received.filter((x) => x.url.includes(`tag=${tag}`)).length };
}

describe("sent means not again", () => {
  it("a connection reset after the app read the request: failed `interrupted` after one call, for an app not declared idempotent", async () => {
    const { run, calls } = await runTo("plain", "/reset");
    expect(run).toMatchObject({ status: "failed", error_code: "interrupted", attempt: 1 });
    expect(calls).toBe(1);
  });

  it("an answer cut half way: failed `interrupted` after one call", async () => {
    const { run, calls } = await runTo("plain", "/half");
    expect(run).toMatchObject({ status: "failed", error_code: "interrupted", attempt: 1 });
    expect(calls).toBe(1);
  });

  it.each([502, 504])("%i (a proxy may have forwarded it): failed `app_error` after one call", async (code) => {
    const { run, calls } = await runTo("plain", `/status?code=${code}`);
    expect(run).toMatchObject({ status: "failed", error_code: "app_error", status_code: code, attempt: 1 });
    expect(calls).toBe(1);
  });

  it("503, the app's own refusal, is retried until the attempts run out", async () => {
    const { run, calls } = await runTo("plain", "/status?code=503");
    expect(run).toMatchObject({ status: "failed", error_code: "app_error", attempt: 3 });
    expect(calls).toBe(3);
  });

  it("an idempotent app is called again after a reset, and after a cut answer", async () => {
    const reset = await runTo("idem", "/reset");
    expect(reset.run).toMatchObject({ status: "failed", error_code: "interrupted", attempt: 3 });
    expect(reset.calls).toBe(3);
    const half = await runTo("idem", "/half");
    expect(half.calls).toBe(3);
  });

  it("the user can still retry an interrupted run by hand", async () => {
    const { run } = await runTo("plain", "/reset");
    const retried = await api.call("POST", `/v1/runs/${run.run_id as string}/retry`);
    expect(retried.status).toBe(202);
    const again = await api.finished(retried.json.run_id as string, 30_000);
    expect(again).toMatchObject({ retry_of: run.run_id, error_code: "interrupted" });
  });
});
