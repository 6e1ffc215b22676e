import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { runsPb } from "@longhaul/shared/proto";
import type { FakeMesh } from "../../../test/fake-mesh.js";
import { DEV, errorOf, startHarness } from "../../../test/gateway-harness.js";

// The API the dashboard added over real HTTP and real gRPC against
// in-process fakes of the mesh: the project, the project feed (SSE), a run's
// request, result previews and app outcome counts.

let mesh: FakeMesh;
let base: string;
let stop: () => Promise<void>;

beforeAll(async () => {
  ({ mesh, base, stop } = await startHarness());
});

afterAll(async () => {
  await stop?.();
});

/** Reads an SSE answer until `done(frames)` is true; returns the `event: run` payloads. */
async function readFrames(res: Response, done: (runs: { run_id: string; status: string }[]) => boolean) {
  const reader = res.body!.getReader();
  let text = "";
  const runs = () =>
    text
      .split("\n\n")
      .filter((f) => f.startsWith("event: run\n"))
      .map((f) => JSON.parse(f.slice(f.indexOf("data: ") + 6)) as { run_id: string; status: string });
  while (!done(runs())) {
    const r = await reader.read();
    if (r.done) break;
    text += Buffer.from(r.value).toString();
  }
  await reader.cancel();
  return { runs: runs(), text };
}

describe("GET /v1/project", () => {
  it("names the key's project", async () => {
    expect(await (await fetch(`${base}/v1/project`, { headers: DEV })).json()).toEqual({ project: "dev" });
    expect((await fetch(`${base}/v1/project`)).status).toBe(401);
  });
});

describe("GET /v1/events", () => {
  it("streams the project's runs as they change, the named ones first", async () => {
    const watched = mesh.addRun("dev", "echo", runsPb.RunStatus.RUN_STATUS_RUNNING);
    watched.createdAt = new Date(Date.now() - 60_000);
    mesh.addRun("other", "echo"); // another project's run never shows
    const res = await fetch(`${base}/v1/events?run=${watched.id}`, { headers: DEV });
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toMatch(/^text\/event-stream/);
    // The 200 comes once WatchRuns is live: nothing after it is missed.
    const fresh = mesh.addRun("dev", "echo");
    mesh.addRun("other", "echo");
    setTimeout(() => mesh.watch.emit("changed", { ...watched, status: runsPb.RunStatus.RUN_STATUS_SUCCEEDED }), 100);
    const { runs, text } = await readFrames(res, (rs) => rs.some((r) => r.run_id === fresh.id) && rs.some((r) => r.status === "succeeded"));
    expect(text.startsWith("retry: ")).toBe(true);
    expect(runs.map((r) => r.run_id)).toContain(fresh.id);
    expect(runs.filter((r) => r.run_id === watched.id).map((r) => r.status)).toEqual(["running", "succeeded"]);
    expect(runs.every((r) => mesh.runs.get(r.run_id)?.project === "dev")).toBe(true);
    expect(mesh.watchRunsCalls.at(-1)).toMatchObject({ app: "", runIds: [watched.id] });
    // `since` defaults to now, less the 5 s overlap.
    expect(Date.now() - mesh.watchRunsCalls.at(-1)!.createdAfter!.getTime()).toBeGreaterThan(4000);
  });

  it("filters by app and answers bad filters with a 400 before streaming", async () => {
    const res = await fetch(`${base}/v1/events?app=echo`, { headers: DEV });
    mesh.addRun("dev", "thumbs");
    const mine = mesh.addRun("dev", "echo");
    const { runs } = await readFrames(res, (rs) => rs.some((r) => r.run_id === mine.id));
    expect(new Set(runs.map((r) => mesh.runs.get(r.run_id)?.app))).toEqual(new Set(["echo"]));
    expect(mesh.watchRunsCalls.at(-1)).toMatchObject({ app: "echo" });

    const bad = await fetch(`${base}/v1/events?run=nope`, { headers: DEV });
    expect(bad.status).toBe(400);
    expect((await errorOf(bad)).message).toMatch(/run id/);
    const many = Array.from({ length: 6 }, () => `run=${crypto.randomUUID()}`).join("&");
    expect((await fetch(`${base}/v1/events?${many}`, { headers: DEV })).status).toBe(400); // harness: at most 5
    expect((await fetch(`${base}/v1/events?since=yesterday`, { headers: DEV })).status).toBe(400);
    expect((await fetch(`${base}/v1/events`)).status).toBe(401);
  });
});

describe("GET /v1/runs/{id}/request", () => {
  it("shows the stored request with secrets masked and the body as a capped preview", async () => {
    const run = mesh.addRun("dev", "echo");
    mesh.inputs.set(run.id, {
      method: "POST",
      path: "/render",
      query: "size=large&api_key=k1",
      headers: [
        { name: "content-type", value: "application/json" },
        { name: "authorization", value: "Bearer app-token" },
        { name: "x-session-token", value: "s3cr3t" },
      ],
      body: Buffer.from('{"image":"cat.png","pad":"' + "x".repeat(100) + '"}'),
    });
    const res = await fetch(`${base}/v1/runs/${run.id}/request?preview_bytes=20`, { headers: DEV });
    expect(res.status).toBe(200);
    const json = (await res.json()) as Record<string, unknown>;
    expect(json).toMatchObject({
      run_id: run.id,
      method: "POST",
      path: "/render",
      query: "size=large&api_key=%E2%80%A2%E2%80%A2%E2%80%A2%E2%80%A2%E2%80%A2%E2%80%A2",
      headers: [
        { name: "content-type", value: "application/json" },
        { name: "authorization", value: "Bearer ••••••" },
        { name: "x-session-token", value: "••••••" },
      ],
      body_stored: true,
      body_size: 128,
      body_encoding: "utf8",
      body: '{"image":"cat.png","',
      body_preview_truncated: true,
    });
    expect(JSON.stringify(json)).not.toMatch(/app-token|s3cr3t|k1/);
  });

  it("says when no body is stored, and keeps other projects' runs unknown", async () => {
    const run = mesh.addRun("dev", "echo");
    expect(await (await fetch(`${base}/v1/runs/${run.id}/request`, { headers: DEV })).json()).toMatchObject({ body_stored: false, body: null, body_size: null });
    const theirs = mesh.addRun("other", "echo");
    expect((await fetch(`${base}/v1/runs/${theirs.id}/request`, { headers: DEV })).status).toBe(404);
    expect((await fetch(`${base}/v1/runs/${run.id}/request?preview_bytes=x`, { headers: DEV })).status).toBe(400);
  });
});

describe("GET /v1/runs/{id}/result?format=preview", () => {
  it("gives the answer with masked headers; bytes as base64", async () => {
    const run = mesh.addRun("dev", "echo", runsPb.RunStatus.RUN_STATUS_SUCCEEDED);
    mesh.results.set(run.id, {
      runId: run.id,
      status: runsPb.RunStatus.RUN_STATUS_SUCCEEDED,
      statusCode: 200,
      headers: [
        { name: "content-type", value: "image/png" },
        { name: "set-cookie", value: "sid=abc" },
      ],
      body: Buffer.from([137, 80, 78, 71]),
      contentType: "image/png",
      bodyTruncated: false,
      bodyGone: false,
    });
    const json = await (await fetch(`${base}/v1/runs/${run.id}/result?format=preview`, { headers: DEV })).json();
    expect(json).toEqual({
      run_id: run.id,
      status: "succeeded",
      status_code: 200,
      content_type: "image/png",
      headers: [
        { name: "content-type", value: "image/png" },
        { name: "set-cookie", value: "••••••" },
      ],
      body_size: 4,
      body_encoding: "base64",
      body: "iVBORw==",
      body_preview_truncated: false,
      body_truncated: false,
      body_gone: false,
    });
    expect((await fetch(`${base}/v1/runs/${run.id}/result?format=xml`, { headers: DEV })).status).toBe(400);
  });
});

describe("GET /v1/apps/{app}/outcomes", () => {
  it("counts the app's runs of the window by status", async () => {
    const now = Date.now();
    const mk = (status: runsPb.RunStatus, ageMs: number) => {
      const r = mesh.addRun("dev", "counted", status);
      r.createdAt = new Date(now - ageMs);
    };
    mk(runsPb.RunStatus.RUN_STATUS_SUCCEEDED, 1000);
    mk(runsPb.RunStatus.RUN_STATUS_SUCCEEDED, 2000);
    mk(runsPb.RunStatus.RUN_STATUS_FAILED, 3000);
    mk(runsPb.RunStatus.RUN_STATUS_FAILED, 2 * 3600_000); // outside the hour
    const res = await fetch(`${base}/v1/apps/counted/outcomes`, { headers: DEV });
    expect(res.status).toBe(404); // no such app yet
    await fetch(`${base}/v1/apps/counted`, { method: "PUT", headers: DEV, body: JSON.stringify({ url: "http://127.0.0.1:1" }) });
    const json = (await (await fetch(`${base}/v1/apps/counted/outcomes`, { headers: DEV })).json()) as Record<string, unknown>;
    expect(json).toMatchObject({ app: "counted", counts: { succeeded: 2, failed: 1 }, total: 3, capped: false });
    expect(Date.parse(json.since as string)).toBeGreaterThan(now - 3600_000 - 5000);
    expect((await fetch(`${base}/v1/apps/counted/outcomes?window_seconds=0`, { headers: DEV })).status).toBe(400);
  });
});
