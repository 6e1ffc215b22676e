// The gateway's submits travel as messages on SchedulerInternalService/
// SubmitRuns streams. On a mesh with two schedulers: one stream carries
// concurrent submits of which some fail (bad input, a bad key, a key without
// the scope, a project over its limit) and each is answered with its own
// status, the same error a unary SubmitRun gives; the unary RunService/
// SubmitRun still serves direct gRPC clients; and a scheduler killed (-9)
// with submits in flight on its stream loses none and doubles none: they
// fail over, under the same run id, to the other copy.
import { randomUUID } from "node:crypto";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { LonghaulError } from "@longhaul/shared/errors";
import { callUnary, createClient, errorFromFields, internalMetadata } from "@longhaul/shared/grpc";
import { runsPb, schedulerPb } from "@longhaul/shared/proto";
import { expectEachAcceptedOnce, startTestMesh, type TestMesh } from "./helpers/mesh.js";
import { eventually, gateway, startPeer, type Peer } from "./helpers/peers.js";

let mesh: TestMesh;
let app: Peer;
let api: ReturnType<typeof gateway>;
let operator: ReturnType<typeof gateway>;

beforeAll(async () => {
  [mesh, app] = await Promise.all([
    startTestMesh({
      services: { scheduler: 2 },
      // A run committed by the killed copy just before it could publish its dispatch
      // is republished by the reconciler of the other: soon, for the test.
      env: { SCHEDULER_TICK_MS: "200", SCHEDULER_REDISPATCH_AFTER_SECONDS: "3" },
    }),
    startPeer(),
  ]);
  api = gateway(mesh.ingressUrl, mesh.apiKey);
  operator = gateway(mesh.ingressUrl, mesh.adminKey);
  expect((await api.putApp("echo", { url: app.url })).status).toBeLessThan(300);
});

afterAll(async () => {
  await mesh?.cleanup();
  await app?.close();
});

const schedulerPorts = () => mesh.processes.filter((p) => p.name === "scheduler").map((p) => p.ports.SCHEDULER_GRPC_PORT);

/** The sum of `metric{labels…}` samples on each scheduler copy. */
async function perCopy(metric: string, labels = ""): Promise<number[]> {
  return Promise.all(
    mesh.processes
      .filter((p) => p.name === "scheduler")
      .map(async (p) => {
        // A copy that is down counts nothing.
        const text = await fetch(`http://127.0.0.1:${p.ports.SCHEDULER_METRICS_PORT}/metrics`).then((r) => r.text(), () => "");
        const re = new RegExp(`^${metric}\\{[^}]*${labels}[^}]*\\} (\\d+)`, "gm");
        return [...text.matchAll(re)].reduce((n, m) => n + Number(m[1]), 0);
      }),
  );
}

const submit = async (path = "/work", headers: Record<string, string> = {}, client = api) => {
  const r = await client.call("POST", `/dev/echo${path}?async=true`, "x", headers);
  return { status: r.status, runId: r.json?.run_id as string | undefined, body: r.text, headers: r.headers };
};

/** A project with tight limits (one submit, then one per 100 s) and a key with every scope. */
async function tightProject(name: string): Promise<string> {
  expect((await operator.call("POST", "/v1/admin/projects", { name })).status).toBe(201);
  expect((await operator.call("PATCH", `/v1/admin/projects/${name}`, { limits: { submits_per_second: 0.01, burst: 1 } })).status).toBe(200);
  const key = (await operator.call("POST", `/v1/admin/projects/${name}/keys`, { name: "k", scopes: ["read", "invoke", "admin"] })).json.key as string;
  expect((await gateway(mesh.ingressUrl, key).putApp("work", { url: app.url })).status).toBe(201);
  return key;
}

describe("submits on SubmitRuns streams", () => {
  it("answers concurrent submits on one stream each with its own result; a failure is the error a unary SubmitRun gives", async () => {
    const tight = await tightProject("tight");
    const readOnly = (await operator.call("POST", "/v1/admin/projects/dev/keys", { name: "ro", scopes: ["read"] })).json.key as string;
    const port = schedulerPorts()[0]!;
    const internal = createClient(schedulerPb.SchedulerInternalServiceClient, `127.0.0.1:${port}`);
    const runs = createClient(runsPb.RunServiceClient, `127.0.0.1:${port}`);
    try {
      const call = internal.submitRuns(internalMetadata(mesh.internalToken));
      const answers = new Map<number, schedulerPb.SubmitRunsResponse["result"]>();
      call.on("data", (res: schedulerPb.SubmitRunsResponse) => answers.set(res.id, res.result));
      call.on("error", () => undefined);
      const req = (app: string, more: Partial<runsPb.SubmitRunRequest> = {}) =>
        runsPb.SubmitRunRequest.fromPartial({ app, request: { method: "POST", path: "/x", body: Buffer.from("{}") }, ...more });
      const sent: Array<[number, string, runsPb.SubmitRunRequest]> = [
        [1, `Bearer ${mesh.apiKey}`, req("echo")],
        [2, `Bearer ${mesh.apiKey}`, req("echo", { webhookUrl: "ftp://example.com/hook" })],
        [3, "Bearer lh_not_a_key_at_all", req("echo")],
        [4, `Bearer ${readOnly}`, req("echo")],
        [5, `Bearer ${tight}`, req("work")],
        [6, `Bearer ${tight}`, req("work")],
        [7, `Bearer ${mesh.apiKey}`, req("echo", { runId: randomUUID() })],
        [8, `Bearer ${mesh.apiKey}`, req("no-such-app")],
        [9, "", req("echo")],
      ];
      // All at once: the scheduler handles them concurrently.
      for (const [id, authorization, submit] of sent) call.write({ id, authorization, submit, traceparent: "", tracestate: "" });
      await eventually(async () => answers.size === sent.length, 10_000, "every message answered");
      const codeOf = (id: number) => {
        const r = answers.get(id);
        return r?.$case === "submitted" ? "ok" : r?.$case === "error" ? r.value.code : "none";
      };
      // The two submits of the tight project race for its single token: one wins.
      const tightCodes = [codeOf(5), codeOf(6)].sort();
      expect(tightCodes).toEqual(["ok", "resource_exhausted"]);
      expect([1, 2, 3, 4, 7, 8, 9].map(codeOf)).toEqual([
        "ok",
        "invalid_argument",
        "unauthenticated",
        "permission_denied",
        "ok",
        "not_found",
        "unauthenticated",
      ]);
      const sentId = sent[6]![2].runId;
      expect(answers.get(7)).toEqual({ $case: "submitted", value: { runId: sentId, existing: false } });
      // The accepted runs exist, and the stream is still open for more.
      for (const id of [1, 7]) {
        const r = answers.get(id);
        if (r?.$case !== "submitted") throw new Error(`message ${id} not accepted`);
        expect((await api.getRun(r.value.runId)).json.status).toBeTruthy();
      }
      call.write({ id: 10, authorization: `Bearer ${mesh.apiKey}`, submit: req("echo", { runId: sentId }), traceparent: "", tracestate: "" });
      await eventually(async () => answers.has(10), 10_000, "the stream still answers");
      // Sent again under the same run id: the same run, never a second one.
      expect(answers.get(10)).toEqual({ $case: "submitted", value: { runId: sentId, existing: true } });

      // Each refusal reads back as the unary call's: same code, message, limit and Retry-After.
      const unary = async (authorization: string, r: runsPb.SubmitRunRequest) => {
        const md = new (await import("@grpc/grpc-js")).Metadata();
        if (authorization) md.set("authorization", authorization);
        return callUnary(runs.submitRun.bind(runs), r, md, 10_000).then(
          () => undefined,
          (e: unknown) => e as LonghaulError,
        );
      };
      for (const id of [2, 3, 4, 5, 6, 8, 9]) {
        const r = answers.get(id);
        if (r?.$case !== "error") continue;
        const [, authorization, submit] = sent.find(([i]) => i === id)!;
        const viaStream = errorFromFields(r.value);
        const viaCall = await unary(authorization, submit);
        expect(viaCall, `message ${id}`).toBeInstanceOf(LonghaulError);
        expect({ code: viaStream.code, message: viaStream.message, limit: viaStream.quota?.limit }, `message ${id}`).toEqual({
          code: viaCall!.code,
          message: viaCall!.message,
          limit: viaCall!.quota?.limit,
        });
        expect(viaStream.retryAfterSeconds === undefined, `message ${id}`).toBe(viaCall!.retryAfterSeconds === undefined);
      }
      call.end();
    } finally {
      internal.close();
      runs.close();
    }
  });

  it("the gateway's submits go on its streams; a refusal reaches the HTTP client as before", async () => {
    // The first submit opens the streams (it goes by a unary call itself).
    expect((await submit()).status).toBe(202);
    await eventually(async () => {
      expect((await submit()).status).toBe(202);
      return (await perCopy("longhaul_stream_submits_total", 'code="ok"')).reduce((a, b) => a + b, 0) > 0;
    }, 10_000, "a submit answered on a stream");
    // With no exporter (this mesh), the message carries the request's trace: the app sees it.
    // A submit counts as streamed when the schedulers' stream counter grew by
    // exactly one over it (nothing else submits meanwhile); one that went by
    // the unary call (a stream renewing) is tried again with another trace.
    const streamed = async () => (await perCopy("longhaul_stream_submits_total", 'code="ok"')).reduce((a, b) => a + b, 0);
    const traced = await eventually(async () => {
      const traceId = randomUUID().replace(/-/g, "");
      const before = await streamed();
      const r = await submit(`/traced/${traceId}`, { traceparent: `00-${traceId}-00f067aa0ba902b7-01` });
      expect(r.status).toBe(202);
      return (await streamed()) === before + 1 && traceId;
    }, 10_000, "a traced submit on a stream");
    const [call] = await app.waitFor(1, `/traced/${traced}`);
    expect(String(call!.headers.traceparent).split("-")[1]).toBe(traced);
    const tight = await tightProject("tight-http");
    const tightApi = gateway(mesh.ingressUrl, tight);
    const results = await Promise.all([
      submit("/a"),
      tightApi.call("POST", "/tight-http/work/a?async=true", "x"),
      tightApi.call("POST", "/tight-http/work/b?async=true", "x"),
      submit("/b"),
      submit("/c", { "idempotency-key": "k1" }),
      submit("/c", { "idempotency-key": "k1" }),
    ]);
    expect(results.map((r) => r.status).sort()).toEqual([202, 202, 202, 202, 202, 429]);
    const refused = results.find((r) => r.status === 429)!;
    expect(JSON.parse("text" in refused ? refused.text : refused.body)).toMatchObject({ error: { code: "resource_exhausted", limit: "submits_per_second" } });
    expect(Number(refused.headers.get("retry-after"))).toBeGreaterThan(0);
    expect(refused.headers.get("ratelimit-policy")).toBe('"submits_per_second";q=1;w=100');
    // The Idempotency-Key made one run of the two.
    expect(results[4]!.status === 202 && "runId" in results[4]! ? results[4].runId : undefined).toBe(
      "runId" in results[5]! ? results[5].runId : "",
    );
  });

  it("RunService/SubmitRun still serves a direct gRPC client", async () => {
    const runs = createClient(runsPb.RunServiceClient, mesh.addresses.scheduler);
    try {
      const md = new (await import("@grpc/grpc-js")).Metadata();
      md.set("authorization", `Bearer ${mesh.apiKey}`);
      const res = await callUnary(runs.submitRun.bind(runs), runsPb.SubmitRunRequest.fromPartial({ app: "echo", request: { method: "GET", path: "/direct" } }), md, 10_000);
      expect((await api.finished(res.runId)).status).toBe("succeeded");
      const bad = await callUnary(runs.submitRun.bind(runs), runsPb.SubmitRunRequest.fromPartial({ app: "echo" }), new (await import("@grpc/grpc-js")).Metadata(), 10_000).catch(
        (e: unknown) => e,
      );
      expect(bad).toMatchObject({ code: "unauthenticated" });
    } finally {
      runs.close();
    }
  });

  it("a scheduler stopped (SIGTERM) under load, slow submits in flight on its streams, answers what its streams took; the rest go to the other copy: every submit accepted, once", async () => {
    const since = new Date();
    const results: { status: number; runId?: string; body: string }[] = [];
    let stop = false;
    const load = Promise.all(
      Array.from({ length: 12 }, async (_, i) => {
        for (let n = 0; !stop; n++) results.push(await submit(`/term/${i}/${n}`));
      }),
    );
    const submitted = (n: number) => eventually(async () => results.length >= n, 30_000, `${n} submits answered`);
    await submitted(40);
    // Both copies take submits on their streams before the stop.
    await eventually(async () => {
      const n = await perCopy("longhaul_stream_submits_total", 'code="ok"');
      return n.every((x) => x > 0);
    }, 30_000, "stream submits on both copies");
    // Slow submits: an app with a concurrency limit is submitted to under a
    // lock on its row, which the test holds across the SIGTERM; the streams
    // take them round-robin, so the stopped copy has some in flight.
    expect((await api.putApp("slow", { url: app.url, max_concurrency: 1000 })).status).toBeLessThan(300);
    const lock = new pg.Client({ connectionString: mesh.database.url });
    await lock.connect();
    await lock.query("begin");
    await lock.query("select 1 from apps where name = 'slow' for update");
    const slow = Promise.all(
      Array.from({ length: 8 }, async (_, i) => {
        const r = await api.call("POST", `/dev/slow/term/${i}?async=true`, "x");
        results.push({ status: r.status, runId: r.json?.run_id as string | undefined, body: r.text });
      }),
    );
    await new Promise((r) => setTimeout(r, 500));
    const stopping = mesh.kill("scheduler", 1, "SIGTERM");
    await new Promise((r) => setTimeout(r, 500));
    await lock.query("rollback");
    await lock.end();
    await stopping;
    await slow;
    const logs = mesh.logs("scheduler", 1);
    // Submits were in flight on its streams at the stop, and each was answered there.
    const draining = /"in_flight":(\d+)[^\n]*"msg":"draining SubmitRuns streams"/.exec(logs);
    const drained = /"answered":(\d+)[^\n]*"msg":"SubmitRuns streams drained"/.exec(logs);
    expect(Number(draining?.[1]), "submits in flight at SIGTERM").toBeGreaterThan(0);
    expect(Number(drained?.[1])).toBeGreaterThanOrEqual(Number(draining?.[1]));
    expect(logs).not.toMatch(/not drained in time/);
    expect(logs).toMatch(/"msg":"stopped"/);
    const atStop = results.length;
    await submitted(atStop + 60);
    await mesh.start("scheduler", 1);
    stop = true;
    await load;
    await expectEachAcceptedOnce(mesh, app, since, results);
  });

  it("a scheduler killed with submits in flight on its stream: each fails over under its run id, none lost, none doubled", async () => {
    const since = new Date();
    const results: { status: number; runId?: string; body: string }[] = [];
    let stop = false;
    // Twelve clients at once: a kill finds submits in flight on both streams.
    const load = Promise.all(
      Array.from({ length: 12 }, async (_, i) => {
        for (let n = 0; !stop; n++) results.push(await submit(`/load/${i}/${n}`, n % 3 === 0 ? { "idempotency-key": randomUUID() } : {}));
      }),
    );
    const submitted = (n: number) => eventually(async () => results.length >= n, 30_000, `${n} submits answered`);
    await submitted(60);
    // Both copies take submits on streams (a copy started again gets its
    // stream back when the gateway renews its streams, every 10 s).
    const streamedBefore = await eventually(async () => {
      const n = await perCopy("longhaul_stream_submits_total", 'code="ok"');
      return n.every((x) => x > 0) && n;
    }, 30_000, "stream submits on both copies");
    await mesh.kill("scheduler", 0, "SIGKILL");
    const atKill = results.length;
    await submitted(atKill + 120);
    stop = true;
    await load;

    // The survivor took the submits after the kill on its streams, not only by unary calls.
    const streamedAfter = await perCopy("longhaul_stream_submits_total", 'code="ok"');
    expect(streamedAfter[1]! - streamedBefore[1]!).toBeGreaterThan(0);
    await expectEachAcceptedOnce(mesh, app, since, results);
  });
});
