// A project feed (`GET /v1/events`, over RunService/WatchRuns) open on a
// scheduler copy that is stopped (SIGTERM, as in a deploy) goes on on the
// other copy without an `event: error` frame: runs created around the switch
// reach the client, and a run is not sent again in a state it was sent in.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { readSse } from "../services/client/src/sse.js";
import { meshGauge, startTestMesh, type TestMesh } from "./helpers/mesh.js";
import { eventually, gateway, startPeer, type Peer } from "./helpers/peers.js";

let mesh: TestMesh;
let app: Peer;
let api: ReturnType<typeof gateway>;
const closers: (() => void)[] = [];

beforeAll(async () => {
  app = await startPeer();
  app.handle((_req, res) => {
    res.writeHead(200, { "content-type": "text/plain" });
    res.end("done");
  });
  mesh = await startTestMesh({ services: { scheduler: 2 } });
  api = gateway(mesh.ingressUrl, mesh.apiKey);
  expect((await api.putApp("quick", { url: app.url })).status).toBe(201);
});

afterAll(async () => {
  for (const close of closers.splice(0)) close();
  await mesh?.cleanup();
  await app?.close();
});

/** `longhaul_project_watchers` of scheduler copy `index` (WatchRuns streams open on it). */
const projectWatchers = (index: number) => meshGauge(mesh, "scheduler", index, "longhaul_project_watchers");

interface Feed {
  /** `<run id>:<status>:<webhook state>` of each `event: run` frame, and `error:<code>` frames, in order. */
  frames: string[];
  /** Resolves when the stream ended. */
  done: Promise<void>;
}

/** `GET /v1/events` of the dev project, its frames collected. */
async function openFeed(): Promise<Feed> {
  const ac = new AbortController();
  closers.push(() => ac.abort());
  const res = await fetch(`${mesh.ingressUrl}/v1/events`, { headers: { authorization: `Bearer ${mesh.apiKey}` }, signal: ac.signal });
  expect(res.status).toBe(200);
  const feed: Feed = { frames: [], done: Promise.resolve() };
  feed.done = (async () => {
    for await (const { event, data } of readSse(res.body!, () => undefined)) {
      if (event === "run" && data) {
        const run = JSON.parse(data) as { run_id: string; status: string; webhook_state: string };
        feed.frames.push(`${run.run_id}:${run.status}:${run.webhook_state}`);
      }
      if (event === "error" && data) feed.frames.push(`error:${(JSON.parse(data) as { error: { code: string } }).error.code}`);
    }
  })().catch((err: unknown) => {
    // A stream cut by anything but the test's own abort fails the assertions on error frames.
    if (!ac.signal.aborted) feed.frames.push(`error:${String(err)}`);
  });
  return feed;
}

const submit = async () => {
  const r = await api.call("POST", "/dev/quick/go?async=true", "x");
  expect(r.status).toBe(202);
  return r.json.run_id as string;
};

describe("project feed failover", () => {
  it("a feed on a scheduler copy that stops goes on on the other copy: no error frame, the runs created around the switch sent, no state sent twice", async () => {
    // Feeds, spread over both copies, until copy 0 serves one of them.
    const feeds: Feed[] = [];
    for (let i = 0; (await projectWatchers(0)) < 1; i++) {
      expect(i, "a feed on copy 0").toBeLessThan(20);
      feeds.push(await openFeed());
      await eventually(async () => (await projectWatchers(0)) + (await projectWatchers(1)) >= feeds.length, 10_000, "the feed listening");
    }
    const sawSucceeded = (id: string) => (f: Feed) => f.frames.includes(`${id}:succeeded:none`);

    const before = await submit();
    await eventually(async () => feeds.every(sawSucceeded(before)), 20_000, "every feed sees the run before the stop");

    // Copy 0 stops; runs are submitted while it does and after.
    const exited = mesh.kill("scheduler", 0, "SIGTERM", 30_000);
    const during = await submit();
    expect((await exited).code).toBe(0);
    const after = await submit();
    for (const id of [during, after]) expect((await api.finished(id)).status, id).toBe("succeeded");

    await eventually(async () => feeds.every((f) => sawSucceeded(during)(f) && sawSucceeded(after)(f)), 20_000, "every feed sees the runs submitted during and after the stop");
    for (const f of feeds) {
      expect(f.frames.filter((x) => x.startsWith("error:"))).toEqual([]);
      // The catch-up of the new copy skips a run in the state the feed was sent: each run's end is sent once.
      for (const id of [before, during, after]) expect(f.frames.filter((x) => x === `${id}:succeeded:none`), f.frames.join(", ")).toHaveLength(1);
    }
    // The feeds are still open, all on copy 1 now.
    await eventually(async () => (await projectWatchers(1)) >= feeds.length, 10_000, "every feed on copy 1");
  });
});
