// Finding runs end to end through the real mesh: labels set at submit
// (X-Longhaul-Labels), listing by label, by a prefix of the run id, by
// creation time and by the app's status code; every filter the API does not
// understand is a 400 naming the parameter.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startTestMesh, type TestMesh } from "./helpers/mesh.js";
import { gateway, startPeer, type Peer } from "./helpers/peers.js";

let mesh: TestMesh;
let app: Peer;
let api: ReturnType<typeof gateway>;

beforeAll(async () => {
  [mesh, app] = await Promise.all([startTestMesh(), startPeer()]);
  api = gateway(mesh.ingressUrl, mesh.apiKey);
  app.handle((req, res) => {
    const status = Number(new URL(req.url, "http://x").searchParams.get("status") ?? 200);
    res.writeHead(status, { "content-type": "text/plain" });
    res.end("done");
  });
  expect((await api.putApp("search", { url: app.url, retry: { max_attempts: 1 } })).status).toBe(201);
});

afterAll(async () => {
  await mesh?.cleanup();
  await app?.close();
});

async function submit(path: string, headers: Record<string, string> = {}): Promise<string> {
  const r = await api.call("POST", `/dev/search${path}${path.includes("?") ? "&" : "?"}async=true`, "{}", headers);
  expect(r.status, r.text).toBe(202);
  return r.json.run_id as string;
}

const listed = async (query: string) => {
  const r = await api.call("GET", `/v1/runs?${query}`);
  expect(r.status, r.text).toBe(200);
  return (r.json.runs as { run_id: string }[]).map((x) => x.run_id);
};

describe("run search", () => {
  it("keeps the labels a client sets at submit and lists runs by label", async () => {
    const ml = await submit("/a", { "X-Longhaul-Labels": "team=ml, job=42" });
    const ml2 = await submit("/b", { "X-Longhaul-Labels": "team=ml,job=43" });
    const cv = await submit("/c", { "X-Longhaul-Labels": "team=cv" });
    const plain = await submit("/d");
    const run = (await api.finished(ml)) as { labels: Record<string, string> };
    expect(run.labels).toEqual({ team: "ml", job: "42" });
    expect((await api.getRun(plain)).json.labels).toEqual({});
    // The app never sees Longhaul's headers.
    const received = await app.waitFor(4);
    expect(received.every((r) => r.headers["x-longhaul-labels"] === undefined)).toBe(true);

    expect((await listed("label=team:ml")).sort()).toEqual([ml, ml2].sort());
    expect(await listed("label=team:ml&label=job:43")).toEqual([ml2]);
    expect(await listed("label=team:cv")).toEqual([cv]);
    expect(await listed("label=team:nlp")).toEqual([]);
    // Retrying a run keeps its labels.
    const retried = (await api.call("POST", `/v1/runs/${cv}/retry`)).json.run_id as string;
    expect((await api.getRun(retried)).json.labels).toEqual({ team: "cv" });
  });

  it("refuses bad labels at submit with a 400 naming the header, and stores nothing", async () => {
    const before = (await listed("limit=500")).length;
    for (const value of ["team", "team=ml,team=cv", "bad key=x", Array.from({ length: 11 }, (_, i) => `k${i}=v`).join(",")]) {
      const r = await api.call("POST", "/dev/search/x?async=true", "{}", { "X-Longhaul-Labels": value });
      expect(r.status, value).toBe(400);
      expect(r.json.error.message).toContain("X-Longhaul-Labels");
    }
    expect((await listed("limit=500")).length).toBe(before);
  });

  it("opens a run by a prefix of its id; a shorter prefix is a 400", async () => {
    const id = await submit("/prefix");
    expect(await listed(`id_prefix=${id.slice(0, 8)}`)).toContain(id);
    expect(await listed(`id_prefix=${id.slice(0, 13).toUpperCase()}`)).toEqual([id]);
    expect(await listed(`id_prefix=${id}`)).toEqual([id]);
    const short = await api.call("GET", `/v1/runs?id_prefix=${id.slice(0, 7)}`);
    expect(short.status).toBe(400);
    expect(short.json.error.message).toContain("id_prefix");
    const notHex = await api.call("GET", "/v1/runs?id_prefix=zzzzzzzz");
    expect(notHex.status).toBe(400);
    expect(notHex.json.error.message).toContain("id_prefix");
  });

  it("filters by the app's status code and by a creation time range", async () => {
    const bad = await submit("/x?status=502", { "X-Longhaul-Labels": "case=codes" });
    const missing = await submit("/x?status=404", { "X-Longhaul-Labels": "case=codes" });
    const good = await submit("/x", { "X-Longhaul-Labels": "case=codes" });
    for (const id of [bad, missing, good]) await api.finished(id);
    expect(await listed("label=case:codes&status_code=502")).toEqual([bad]);
    expect(await listed("label=case:codes&status_code=4xx")).toEqual([missing]);
    expect((await listed("label=case:codes&status_code=2xx")).sort()).toEqual([good]);

    const created = new Date((await api.getRun(missing)).json.created_at as string);
    const after = new Date(created.getTime() - 1).toISOString();
    const before = new Date(created.getTime() + 1).toISOString();
    expect(await listed(`label=case:codes&created_after=${after}&created_before=${before}`)).toEqual([missing]);
  });

  it.each([
    ["stauts=failed", "stauts"],
    ["status=done", "status"],
    ["status_code=abc", "status_code"],
    ["created_before=yesterday", "created_before"],
    ["label=nocolon", "label"],
    ["limit=many", "limit"],
    ["app=a&app=b", "app"],
    ["../events?app=search&ap=search", "ap"],
    ["../apps/search/outcomes?window=3600", "window"],
    ["../runs/00000000-0000-4000-8000-000000000000?wiat=5", "wiat"],
  ])("GET /v1/runs?%s is a 400 naming %s", async (query, param) => {
    // The last cases are other listings and reads, given as paths from /v1/runs/.
    const r = await api.call("GET", query.startsWith("../") ? `/v1/${query.slice(3)}` : `/v1/runs?${query}`);
    expect(r.status, r.text).toBe(400);
    expect(r.json.error.code).toBe("invalid_argument");
    expect(r.json.error.message).toContain(param);
  });
});
