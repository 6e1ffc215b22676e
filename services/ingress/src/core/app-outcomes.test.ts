import { describe, expect, it } from "vitest";
import { runsPb } from "@longhaul/shared/proto";
import { countAppOutcomes } from "./app-outcomes.js";
import type { Caller, RunsPort } from "./ports.js";

const caller: Caller = { project: "dev", scopes: ["read"], authorization: "Bearer k" };
const S = runsPb.RunStatus;

/** A RunsPort whose listing pages through `statuses` with an offset cursor. */
function listing(statuses: runsPb.RunStatus[]) {
  const calls: runsPb.ListRunsRequest[] = [];
  const port = {
    async listRuns(_c: Caller, req: runsPb.ListRunsRequest) {
      calls.push(req);
      const from = Number(req.cursor || 0);
      const page = statuses.slice(from, from + req.limit).map((status) => runsPb.Run.fromPartial({ status }));
      return { runs: page, nextCursor: from + req.limit < statuses.length ? String(from + req.limit) : "" };
    },
  } as unknown as RunsPort;
  return { port, calls };
}

const name = (s: runsPb.RunStatus) => runsPb.runStatusToJSON(s).replace("RUN_STATUS_", "").toLowerCase();

describe("app outcome counts", () => {
  it("counts the window's runs by status over every page", async () => {
    const statuses = [...Array(600).fill(S.RUN_STATUS_SUCCEEDED), S.RUN_STATUS_FAILED, S.RUN_STATUS_RUNNING];
    const { port, calls } = listing(statuses);
    const now = new Date("2026-05-01T12:00:00Z");
    const out = await countAppOutcomes(port, caller, { app: "a", windowSeconds: 3600, now, statusName: name });
    expect(out).toEqual({
      app: "a",
      since: new Date("2026-05-01T11:00:00Z"),
      counts: { succeeded: 600, failed: 1, running: 1 },
      total: 602,
      capped: false,
    });
    expect(calls.map((c) => [c.app, c.limit, c.cursor, c.createdAfter?.toISOString()])).toEqual([
      ["a", 500, "", "2026-05-01T11:00:00.000Z"],
      ["a", 500, "500", "2026-05-01T11:00:00.000Z"],
    ]);
  });

  it("stops at the bound and says so", async () => {
    const { port, calls } = listing(Array(1000).fill(S.RUN_STATUS_FAILED));
    const out = await countAppOutcomes(port, caller, { app: "a", windowSeconds: 60, maxRuns: 700, now: new Date(), statusName: name });
    expect(out).toMatchObject({ counts: { failed: 700 }, total: 700, capped: true });
    expect(calls.map((c) => c.limit)).toEqual([500, 200]);
  });
});
