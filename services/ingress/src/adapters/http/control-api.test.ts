import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { runsPb } from "@longhaul/shared/proto";
import { resultUrlKey, signResultUrl } from "@longhaul/shared/result-url";
import { KEYS, TOKEN, type FakeMesh } from "../../../test/fake-mesh.js";
import type { Registry } from "@longhaul/shared/metrics";
import { DEV, errorOf, startHarness } from "../../../test/gateway-harness.js";

// The control API (`/v1/runs`, `/v1/apps`, `/v1/webhooks`) and `/metrics`
// over real HTTP and real gRPC against in-process fakes of the mesh.

let mesh: FakeMesh;
let base: string;
let registry: Registry;
let stop: () => Promise<void>;

beforeAll(async () => {
  ({ mesh, base, registry, stop } = await startHarness());
});

afterAll(async () => {
  await stop?.();
});

describe("runs API", () => {
  it("shows a run, long-polls within bounds, lists, cancels and retries", async () => {
    const run = mesh.addRun("dev", "echo");
    const got = await fetch(`${base}/v1/runs/${run.id}?wait=1`, { headers: DEV });
    expect(got.status).toBe(200);
    expect(await got.json()).toMatchObject({ run_id: run.id, status: "queued", app: "echo", webhook_state: "none" });
    expect((await fetch(`${base}/v1/runs/${run.id}?wait=61`, { headers: DEV })).status).toBe(400);

    const list = (await (await fetch(`${base}/v1/runs?app=echo&limit=500`, { headers: DEV })).json()) as {
      runs: { run_id: string }[];
    };
    expect(list.runs.map((r) => r.run_id)).toContain(run.id);
    expect((await fetch(`${base}/v1/runs?status=nope`, { headers: DEV })).status).toBe(400);

    const cancelled = await fetch(`${base}/v1/runs/${run.id}/cancel`, { method: "POST", headers: DEV });
    expect(await cancelled.json()).toMatchObject({ status: "cancelled" });
    const retried = await fetch(`${base}/v1/runs/${run.id}/retry`, { method: "POST", headers: DEV });
    expect(retried.status).toBe(202);
    const { run_id } = (await retried.json()) as { run_id: string };
    expect(retried.headers.get("location")).toBe(`/v1/runs/${run_id}`);
    expect(mesh.runs.get(run_id)?.retryOf).toBe(run.id);
  });

  it("gives the result raw by default, as JSON on request, and by signed link", async () => {
    const run = mesh.addRun("dev", "echo", runsPb.RunStatus.RUN_STATUS_SUCCEEDED);
    mesh.results.set(run.id, {
      runId: run.id,
      status: runsPb.RunStatus.RUN_STATUS_SUCCEEDED,
      statusCode: 201,
      headers: [{ name: "content-type", value: "image/png" }],
      body: Buffer.from([137, 80, 78, 71]),
      contentType: "image/png",
      bodyTruncated: false,
      bodyGone: false,
    });
    const raw = await fetch(`${base}/v1/runs/${run.id}/result`, { headers: DEV });
    expect(raw.status).toBe(200);
    expect(raw.headers.get("content-type")).toBe("image/png");
    expect(raw.headers.get("x-longhaul-status-code")).toBe("201");
    expect(Buffer.from(await raw.arrayBuffer())).toEqual(Buffer.from([137, 80, 78, 71]));

    const json = await fetch(`${base}/v1/runs/${run.id}/result?format=json`, { headers: DEV });
    expect(await json.json()).toMatchObject({ status: "succeeded", status_code: 201, body_base64: "iVBORw==" });

    const signed = new URL(signResultUrl(base, run.id, resultUrlKey(TOKEN), new Date(Date.now() + 60_000)));
    const viaLink = await fetch(signed);
    expect(viaLink.status).toBe(200);
    expect(Buffer.from(await viaLink.arrayBuffer())).toEqual(Buffer.from([137, 80, 78, 71]));
    signed.searchParams.set("signature", "forged");
    expect((await fetch(signed)).status).toBe(401);
    expect((await fetch(`${base}/v1/runs/${run.id}/result`)).status).toBe(401);

    const unfinished = mesh.addRun("dev", "echo", runsPb.RunStatus.RUN_STATUS_RUNNING);
    mesh.results.set(unfinished.id, { ...mesh.results.get(run.id)!, runId: unfinished.id, status: unfinished.status });
    const early = await fetch(`${base}/v1/runs/${unfinished.id}/result`, { headers: DEV });
    expect(early.status).toBe(409);
    expect((await errorOf(early)).message).toMatch(/running/);
  });

  it("answers a result whose body is gone with 410 result_gone raw, and body_gone in the envelopes", async () => {
    const run = mesh.addRun("dev", "echo", runsPb.RunStatus.RUN_STATUS_SUCCEEDED);
    mesh.results.set(run.id, {
      runId: run.id,
      status: runsPb.RunStatus.RUN_STATUS_SUCCEEDED,
      statusCode: 200,
      headers: [],
      body: Buffer.alloc(0),
      contentType: "",
      bodyTruncated: false,
      bodyGone: true,
    });
    const raw = await fetch(`${base}/v1/runs/${run.id}/result`, { headers: DEV });
    expect(raw.status).toBe(410);
    expect(raw.headers.get("content-type")).toMatch(/^application\/json/);
    expect(await errorOf(raw)).toMatchObject({ code: "result_gone", message: expect.stringMatching(/retention period, or erased/) });
    const viaLink = await fetch(signResultUrl(base, run.id, resultUrlKey(TOKEN), new Date(Date.now() + 60_000)));
    expect(viaLink.status).toBe(410);
    for (const format of ["json", "preview"]) {
      const res = await fetch(`${base}/v1/runs/${run.id}/result?format=${format}`, { headers: DEV });
      expect(res.status).toBe(200);
      expect(await res.json()).toMatchObject({ status_code: 200, body_gone: true });
    }
  });

  it("streams state changes as SSE frames, with heartbeats, and ends when finished", async () => {
    const run = mesh.addRun("dev", "echo");
    const res = await fetch(`${base}/v1/runs/${run.id}/events`, { headers: DEV });
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toMatch(/^text\/event-stream/);
    const reader = res.body!.getReader();
    let text = "";
    const readUntil = async (needle: string) => {
      while (!text.includes(needle)) {
        const r = await reader.read();
        if (r.done) throw new Error(`stream ended before ${needle}: ${text}`);
        text += Buffer.from(r.value).toString();
      }
    };
    await readUntil('"status":"queued"');
    await readUntil(": heartbeat");
    mesh.watch.emit(`run:${run.id}`, { ...run, status: runsPb.RunStatus.RUN_STATUS_RUNNING });
    mesh.watch.emit(`run:${run.id}`, { ...run, status: runsPb.RunStatus.RUN_STATUS_SUCCEEDED, statusCode: 200 });
    mesh.watch.emit(`end:${run.id}`);
    for (let r = await reader.read(); !r.done; r = await reader.read()) text += Buffer.from(r.value).toString();
    const frames = text.split("\n\n").filter((f) => f.startsWith("event: run"));
    expect(frames.map((f) => (JSON.parse(f.split("\ndata: ")[1]!) as { status: string }).status)).toEqual([
      "queued",
      "running",
      "succeeded",
    ]);

    const missing = await fetch(`${base}/v1/runs/${crypto.randomUUID()}/events`, { headers: DEV });
    expect(missing.status).toBe(404);
  });
});

describe("apps API", () => {
  it("creates (201), updates (200), reads, lists and deletes (204)", async () => {
    const body = { url: "http://127.0.0.1:9999", timeout_seconds: 30, retry: { max_attempts: 2 } };
    const put = (b: unknown) =>
      fetch(`${base}/v1/apps/thumbs`, { method: "PUT", headers: { ...DEV, "content-type": "application/json" }, body: JSON.stringify(b) });
    const created = await put(body);
    expect(created.status).toBe(201);
    expect(await created.json()).toMatchObject({ name: "thumbs", url: "http://127.0.0.1:9999", retry: { max_attempts: 2 } });
    expect((await put({ ...body, timeout_seconds: 60 })).status).toBe(200);
    expect(await (await fetch(`${base}/v1/apps/thumbs`, { headers: DEV })).json()).toMatchObject({ timeout_seconds: 60 });
    const list = (await (await fetch(`${base}/v1/apps`, { headers: DEV })).json()) as { apps: { name: string }[] };
    expect(list.apps.map((a) => a.name)).toContain("thumbs");
    expect((await fetch(`${base}/v1/apps/thumbs`, { method: "DELETE", headers: DEV })).status).toBe(204);
    expect((await fetch(`${base}/v1/apps/thumbs`, { headers: DEV })).status).toBe(404);
  });

  it("answers 400 for malformed JSON and a bad app", async () => {
    const malformed = await fetch(`${base}/v1/apps/x`, { method: "PUT", headers: DEV, body: "{not json" });
    expect(malformed.status).toBe(400);
    expect((await errorOf(malformed)).message).toMatch(/malformed JSON/);
    const bad = await fetch(`${base}/v1/apps/x`, { method: "PUT", headers: DEV, body: JSON.stringify({ url: 5 }) });
    expect(bad.status).toBe(400);
  });
});

describe("webhooks API", () => {
  it("serves deliveries, redelivery and the project's secret", async () => {
    const run = mesh.addRun("dev", "echo");
    const deliveries = await fetch(`${base}/v1/runs/${run.id}/deliveries`, { headers: DEV });
    expect(await deliveries.json()).toMatchObject({ run_id: run.id, state: "delivered" });
    const redeliver = await fetch(`${base}/v1/runs/${run.id}/webhook/redeliver`, { method: "POST", headers: DEV });
    expect(redeliver.status).toBe(202);
    expect(await (await fetch(`${base}/v1/webhooks/secret`, { headers: DEV })).json()).toEqual({
      secret: "whsec_dev",
      previous_secret: null,
      previous_expires_at: null,
    });
    const rotated = await fetch(`${base}/v1/webhooks/secret/rotate`, { method: "POST", headers: DEV });
    expect(await rotated.json()).toMatchObject({ secret: "whsec_dev_2", previous_secret: "whsec_dev" });
  });
});

describe("metrics", () => {
  it("counts requests by route pattern and accepted runs", async () => {
    expect((await fetch(`${base}/dev/echo/m?async=true`, { method: "POST", headers: DEV })).status).toBe(202);
    // Served on INGRESS_METRICS_PORT by main.ts, never on the public port.
    expect((await fetch(`${base}/metrics`)).status).toBe(404);
    const text = await registry.metrics();
    expect(text).toMatch(/longhaul_http_requests_total\{[^}]*route="\/:project\/:app\/\*"[^}]*status="202"/);
    expect(text).toMatch(/longhaul_runs_accepted_total\{[^}]*existing="false"[^}]*\} \d+/);
    expect(text).toContain("longhaul_http_request_duration_seconds_bucket");
    expect(Object.keys(KEYS)).toContain("key-dev");
  });
});
