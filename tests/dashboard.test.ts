// The dashboard end to end in headless Chromium (Debian's package, driven by
// playwright-core) against the real mesh. It signs in (landing on the
// overview), sees runs submitted through the API appear and change state
// live, opens runs, cancels a running one, checks that the overview's charts
// draw the API's figures (in the figures table and on hover), opens a run by
// a prefix of its id from the search box, filters runs by label, shows a
// run's queue deadline only when it has one, reads the apps page, takes the
// README's screenshots (runs at 1280 px, the overview at 1280 and 390 px)
// and checks that a 390 px phone never scrolls sideways.
import { tmpdir } from "node:os";
import { existsSync } from "node:fs";
import { mkdir } from "node:fs/promises";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { chromium, type Browser, type BrowserContext, type Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startTestMesh, type TestMesh } from "./helpers/mesh.js";
import { eventually, gateway, startPeer, type Peer } from "./helpers/peers.js";

const CHROMIUM = "/usr/bin/chromium";
const FLAGS = [
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
];
/**
 * The README's screenshot is rewritten only when asked (UPDATE_SCREENSHOT=1), so that a test run
 * leaves the work tree clean; otherwise it goes to the temp dir and is still taken and checked.
 */
const shot = (name: string) =>
  process.env.UPDATE_SCREENSHOT
    ? join(dirname(fileURLToPath(import.meta.url)), "..", "docs", `${name}.png`)
    : join(tmpdir(), `longhaul-${name}-${process.pid}.png`);
const SCREENSHOT = shot("dashboard");
/** Set to a folder to get a screenshot of every page checked at 390 px too (for reviewing the layout). */
const EXTRA_SHOTS = process.env.DASHBOARD_SCREENSHOTS_DIR;
/** How long the page may take to show a change the API made. */
const LIVE_MS = 10_000;

let mesh: TestMesh;
let app: Peer;
let hooks: Peer;
let browser: Browser;
let context: BrowserContext;
let page: Page;
let api: ReturnType<typeof gateway>;
const closedHolds = new Set<string>();

beforeAll(async () => {
  // Fail loudly: a missing browser is a broken machine, never a skipped test.
  if (!existsSync(CHROMIUM)) throw new Error(`${CHROMIUM} is missing: apt-get install -y chromium (.ci/run does)`);
  const t0 = Date.now();
  const took: Record<string, number> = {};
  const timed = <T>(name: string, p: Promise<T>) => p.finally(() => (took[name] = Date.now() - t0));
  [mesh, app, hooks, browser] = await Promise.all([
    timed("mesh", startTestMesh({ env: { LONGHAUL_WEBHOOK_ALLOW_PRIVATE: "true", SCHEDULER_TICK_MS: "200" } })),
    startPeer(),
    startPeer(),
    timed("chromium", chromium.launch({ executablePath: CHROMIUM, args: FLAGS, timeout: 30_000 })),
  ]);
  console.log(`dashboard: mesh started in ${took.mesh} ms, chromium in ${took.chromium} ms`);
  api = gateway(mesh.ingressUrl, mesh.apiKey);
  app.handle(async (req, res, raw) => {
    const u = new URL(req.url, "http://x");
    if (u.pathname === "/hold") {
      // A long job: answers only when told to, or never (until cancelled).
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, Number(u.searchParams.get("ms") ?? 60_000));
        raw.socket.once("close", () => {
          clearTimeout(t);
          closedHolds.add(u.searchParams.get("tag") ?? "");
          resolve();
        });
      });
      if (!res.destroyed) res.end("held");
      return;
    }
    if (u.pathname === "/fail") {
      res.writeHead(500, { "content-type": "text/plain" });
      res.end("boom");
      return;
    }
    res.writeHead(200, { "content-type": "application/json", "x-request-id": "r-1", "x-session-token": "app-secret" });
    res.end(JSON.stringify({ ok: true, thumbnails: [{ size: "small", url: "https://cdn.example/s.png" }], took_ms: 12 }));
  });
  await api.putApp("thumbnails", { url: app.url, timeout_seconds: 600, retry: { max_attempts: 3, initial_backoff_seconds: 1 } });
  await api.putApp("reports", { url: app.url, max_concurrency: 1, timeout_seconds: 3600 });
  context = await browser.newContext({ viewport: { width: 1280, height: 860 } });
  page = await context.newPage();
});

afterAll(async () => {
  const t0 = Date.now();
  // Calls still held would make the invokers drain at shutdown: end them
  // first (cancelling the running call of `reports` lets its queued one start).
  if (api) {
    await eventually(async () => {
      const { runs } = (await api.call("GET", "/v1/runs?limit=100")).json as { runs: { run_id: string; status: string }[] };
      const open = runs.filter((r) => ["queued", "dispatched", "running"].includes(r.status));
      await Promise.all(open.map((r) => api.call("POST", `/v1/runs/${r.run_id}/cancel`)));
      return open.length === 0;
    }, 10_000, "every run to be finished").catch((err: unknown) => console.error(err));
  }
  await context?.close();
  await browser?.close();
  await mesh?.cleanup();
  await app?.close();
  await hooks?.close();
  console.log(`dashboard: stopped in ${Date.now() - t0} ms`);
});

async function submit(appName: string, path: string, headers: Record<string, string> = {}, body = '{"image":"cat.png"}') {
  const r = await api.call("POST", `/dev/${appName}${path}${path.includes("?") ? "&" : "?"}async=true`, body, {
    "content-type": "application/json",
    ...headers,
  });
  expect(r.status, r.text).toBe(202);
  return r.json.run_id as string;
}

interface StatsBucket {
  start: string;
  succeeded: number;
  failed: number;
  timed_out: number;
  cancelled: number;
  expired: number;
  webhook_delivered: number;
  webhook_failed: number;
}
interface Stats {
  window: string;
  bucket_seconds: number;
  buckets: StatsBucket[];
}

/** The buckets in which anything happened. */
const nonEmpty = (s: Stats) => s.buckets.filter((b) => b.succeeded + b.failed + b.timed_out + b.cancelled + b.expired + b.webhook_delivered + b.webhook_failed > 0);

/** The legend of a chart of the overview: series label → value shown (for the hovered interval). */
async function legendValues(p: Page, chart: string): Promise<Record<string, string>> {
  return p.locator(`[data-chart="${chart}"] .u-legend tr.u-series`).evaluateAll((rows) =>
    Object.fromEntries(rows.map((r) => [r.querySelector(".u-label")?.textContent ?? "", r.querySelector(".u-value")?.textContent ?? ""])),
  );
}

const row = (id: string, status?: string) => `tr[data-run-id="${id}"]${status ? `[data-status="${status}"]` : ""}`;

/** True when the page is no wider than the window (no sideways scrolling). */
async function fitsWidth(p: Page): Promise<{ scroll: number; inner: number }> {
  return p.evaluate(() => ({ scroll: document.documentElement.scrollWidth, inner: window.innerWidth }));
}

describe("dashboard", () => {
  it("serves a small, cacheable page", async () => {
    const res = await fetch(`${mesh.ingressUrl}/dashboard`, { headers: { "accept-encoding": "br" } });
    expect(res.status).toBe(200);
    expect(res.headers.get("cache-control")).toBe("no-cache");
    expect(res.headers.get("content-security-policy")).toContain("script-src 'self'");
    const html = await res.text();
    const asset = /src="(\/dashboard\/assets\/[0-9a-f]+\/main\.js)"/.exec(html)?.[1];
    expect(asset).toBeDefined();
    const js = await fetch(`${mesh.ingressUrl}${asset}`);
    expect(js.headers.get("cache-control")).toContain("immutable");
    const again = await fetch(`${mesh.ingressUrl}/dashboard`, { headers: { "if-none-match": res.headers.get("etag")! } });
    expect(again.status).toBe(304);
  });

  it("signs in with an API key and shows that key's project", async () => {
    const t0 = Date.now();
    await page.goto(`${mesh.ingressUrl}/dashboard`);
    await page.getByLabel("API key").fill("lh_not_a_key");
    await page.getByRole("button", { name: "Sign in" }).click();
    await page.getByText("This key is not valid.").waitFor();
    await page.getByLabel("API key").fill(mesh.apiKey);
    await page.getByRole("button", { name: "Sign in" }).click();
    // The overview is the landing page.
    await page.getByRole("heading", { name: "Overview" }).waitFor();
    expect(await page.locator(".project b").textContent()).toBe("dev");
    await page.getByRole("link", { name: "Runs", exact: true }).click();
    await page.getByRole("heading", { name: "Runs" }).waitFor();
    const nav = await page.evaluate(() => (performance.getEntriesByType("navigation")[0] as PerformanceNavigationTiming).duration);
    console.log(`dashboard: page load ${Math.round(nav)} ms, signed in after ${Date.now() - t0} ms`);
  });

  it("shows runs submitted through the API appear and change state live, without a reload", async () => {
    await page.locator(".live[data-live=on]").waitFor({ timeout: LIVE_MS });
    await page.evaluate(() => ((window as unknown as { marker: number }).marker = 42));

    const held = await submit("thumbnails", "/hold?ms=60000&tag=held", { "x-api-key": "sk_live_123", "x-visible": "yes" });
    const t0 = Date.now();
    await page.locator(row(held)).waitFor({ timeout: LIVE_MS });
    const appeared = Date.now() - t0;
    await page.locator(row(held, "running")).waitFor({ timeout: LIVE_MS });

    const quick = await submit("thumbnails", `/render?size=small&webhookEndpoint=${encodeURIComponent(`${hooks.url}/hook`)}`);
    await page.locator(row(quick, "succeeded")).waitFor({ timeout: LIVE_MS });
    // More runs, so that the screenshot shows every colour.
    const late = await submit("thumbnails", "/hold?ms=30000&tag=late", { "x-longhaul-timeout": "1" });
    await submit("thumbnails", "/render?size=large");
    const failing = await submit("reports", "/fail");
    await page.locator(row(failing, "failed")).waitFor({ timeout: LIVE_MS });
    // A sync pass-through call is recorded too (without bodies).
    expect((await api.call("GET", "/dev/thumbnails/render?size=tiny")).status).toBe(200);
    await page.locator("tr:has(.badge-mode-sync)").first().waitFor({ timeout: LIVE_MS });
    // The webhook state settles after the run finished: the periodic refresh brings it.
    await page.locator(`${row(quick)} .badge-wh-delivered`).waitFor({ timeout: LIVE_MS * 2 });

    await page.locator(row(late, "timed_out")).waitFor({ timeout: LIVE_MS });
    expect(await page.evaluate(() => (window as unknown as { marker?: number }).marker)).toBe(42);
    console.log(`dashboard: a new run appeared ${appeared} ms after its 202`);
  });

  it("opens a run: masked request headers, timeline; cancels it and sees it end cancelled", async () => {
    const { runs } = (await api.call("GET", "/v1/runs?app=thumbnails&status=running")).json as { runs: { run_id: string; path: string }[] };
    const held = runs.find((r) => r.path === "/hold")!.run_id;
    await page.locator(`${row(held)} a`).click();
    await page.waitForURL(`**/dashboard/runs/${held}`);
    await page.locator('.run-status [data-status="running"]').waitFor();
    const request = page.locator("section", { has: page.getByRole("heading", { name: "Request" }) });
    await request.getByText("x-visible").waitFor();
    const text = await request.textContent();
    expect(text).toContain("yes");
    expect(text).not.toContain("sk_live_123");
    expect(text).toContain("••••••");
    expect(text).toContain('"image": "cat.png"');

    page.once("dialog", (d) => void d.accept());
    await page.getByRole("button", { name: "Cancel" }).click();
    await page.locator('.run-status [data-status="cancelled"]').waitFor({ timeout: LIVE_MS });
    await page.locator(".timeline").getByText("Finished cancelled").waitFor();
    await eventually(async () => closedHolds.has("held"), 5_000, "the app to see its call aborted");
    expect((await api.getRun(held)).json).toMatchObject({ status: "cancelled", error_code: "cancelled_by_user" });
  });

  it("shows a finished run's response pretty-printed and its webhook delivery", async () => {
    const { runs } = (await api.call("GET", "/v1/runs?app=thumbnails&status=succeeded")).json as { runs: { run_id: string; mode: string; webhook_url: string | null }[] };
    const quick = runs.find((r) => r.webhook_url)!.run_id;
    await page.goto(`${mesh.ingressUrl}/dashboard/runs/${quick}`);
    const response = page.locator("section", { has: page.getByRole("heading", { name: "Response" }) });
    await response.getByText("HTTP 200").waitFor();
    expect(await response.locator("pre").textContent()).toContain('"thumbnails": [\n');
    expect(await response.textContent()).not.toContain("app-secret");
    await page.locator("table.deliveries").getByText("HTTP 200").waitFor({ timeout: LIVE_MS });
    for (const step of ["Accepted", "Attempt 1 started", "Attempt 1 ended", "Finished succeeded", "Webhook attempt 1"]) {
      await page.locator(".timeline").getByText(step, { exact: true }).waitFor();
    }
    if (EXTRA_SHOTS) await page.screenshot({ path: join(EXTRA_SHOTS, "run-1280.png"), fullPage: true });

    // Redeliver: the receiver gets the webhook again and the page shows the second attempt.
    await page.getByRole("button", { name: "Redeliver webhook" }).click();
    await page.getByText("Webhook queued for redelivery.").waitFor();
    await hooks.waitFor(2, "/hook", LIVE_MS);
    await page.locator("table.deliveries tbody tr").nth(1).waitFor({ timeout: LIVE_MS });

    // Retry: a new run with the same request, linked to this one, opened at once.
    await page.getByRole("button", { name: "Retry" }).click();
    await page.waitForURL((u) => /\/dashboard\/runs\/[0-9a-f-]{36}$/.test(u.pathname) && !u.pathname.endsWith(quick));
    await page.locator('.run-status [data-status="succeeded"]').waitFor({ timeout: LIVE_MS });
    await page.locator(".summary").getByText(quick).waitFor();
  });

  it("draws the overview's charts from the API's figures: the figures table and the values on hover", async () => {
    // Every run so far has ended; wait until webhooks settle too, so that the figures hold still.
    const stable = await eventually(
      async () => {
        const a = (await api.call("GET", "/v1/stats?window=1h")).json as Stats;
        await new Promise((r) => setTimeout(r, 1500));
        const b = (await api.call("GET", "/v1/stats?window=1h")).json as Stats;
        return JSON.stringify(nonEmpty(a)) === JSON.stringify(nonEmpty(b)) ? b : undefined;
      },
      LIVE_MS * 2,
      "the figures to hold still",
    );
    const figures = nonEmpty(stable);
    expect(figures.reduce((n, b) => n + b.succeeded + b.failed + b.timed_out + b.cancelled, 0)).toBeGreaterThanOrEqual(6);

    const seen = page.waitForResponse((r) => r.url().includes("/v1/stats?") || r.url().endsWith("/v1/stats"));
    await page.getByRole("link", { name: "Overview" }).click();
    const answered = (await (await seen).json()) as Stats;
    expect(nonEmpty(answered)).toEqual(figures);
    await page.locator("#view[data-loaded]").waitFor();
    for (const id of ["runs", "wait", "duration", "webhooks"]) await page.locator(`[data-chart="${id}"] canvas`).first().waitFor();
    expect(await page.locator('[data-kpi="runs"] .kpi-n').textContent()).toBe(String(figures.reduce((n, b) => n + b.succeeded + b.failed + b.timed_out + b.cancelled + b.expired, 0)));

    // The figures table: one row per interval with runs, the API's numbers.
    await page.getByText("Figures as a table").click();
    for (const b of figures) {
      const cells = await page.locator(`tr[data-start="${b.start}"] td`).allTextContents();
      expect(cells.slice(0, 5).map(Number), b.start).toEqual([b.succeeded, b.failed, b.timed_out, b.cancelled, b.expired]);
      expect(cells.slice(9).map(Number), b.start).toEqual([b.webhook_delivered, b.webhook_failed]);
    }

    // Hover each interval with runs on the runs chart: the legend shows that interval's counts.
    const starts = answered.buckets.map((b) => b.start);
    const hover = async (chart: string, i: number) => {
      const over = page.locator(`[data-chart="${chart}"] .u-over`);
      await over.scrollIntoViewIfNeeded();
      const box = (await over.boundingBox())!;
      await page.mouse.move(box.x + ((i + 0.5) / starts.length) * box.width, box.y + box.height / 2);
    };
    for (const b of figures) {
      const i = starts.indexOf(b.start);
      await hover("runs", i);
      await expect
        .poll(() => legendValues(page, "runs"), { timeout: 5000 })
        .toMatchObject({
          Succeeded: String(b.succeeded),
          Failed: String(b.failed),
          "Timed out": String(b.timed_out),
          Cancelled: String(b.cancelled),
          Expired: String(b.expired),
        });
      await hover("webhooks", i);
      await expect
        .poll(() => legendValues(page, "webhooks"), { timeout: 5000 })
        .toMatchObject({ Delivered: String(b.webhook_delivered), Failed: String(b.webhook_failed) });
    }
    // Switching the window asks for that window and draws its buckets.
    const week = page.waitForResponse((r) => r.url().includes("window=7d"));
    await page.getByRole("button", { name: "7 days" }).click();
    const weekStats = (await (await week).json()) as Stats;
    expect(weekStats.bucket_seconds).toBe(7200);
    await page.locator('#view[data-loaded^="7d"]').waitFor();
    await page.getByRole("button", { name: "1 hour" }).click();
    await page.locator('#view[data-loaded^="1h"]').waitFor();
    await mkdir(dirname(shot("overview-1280")), { recursive: true });
    await page.mouse.move(0, 0);
    await page.screenshot({ path: shot("overview-1280"), animations: "disabled", fullPage: true });
  });

  it("opens a run from the search box by a prefix of its id, and shows and filters by its labels", async () => {
    const labelled = await submit("thumbnails", "/render?size=medium", { "X-Longhaul-Labels": "team=ml,job=42" });
    await api.finished(labelled);
    const box = page.getByRole("search").getByRole("searchbox");
    // Fewer than 8 characters: told so, nothing opens.
    await box.fill(labelled.slice(0, 7));
    await box.press("Enter");
    await page.getByText("Type at least 8 characters of the run id.").waitFor();
    await box.fill(labelled.slice(0, 8).toUpperCase());
    await box.press("Enter");
    await page.waitForURL(`**/dashboard/runs/${labelled}`);
    await page.locator('.run-status [data-status="succeeded"]').waitFor();
    const labels = page.locator(".summary .labels");
    expect((await labels.locator(".label").allTextContents()).sort()).toEqual(["job=42", "team=ml"]);
    // A label opens the runs carrying it.
    await labels.getByText("team=ml").click();
    await page.waitForURL((u) => u.pathname.endsWith("/dashboard/runs") && u.searchParams.get("label") === "team:ml");
    await page.locator(row(labelled)).waitFor();
    expect(await page.locator("tr[data-run-id]").count()).toBe(1);
    expect(await page.locator('input[name="label"]').inputValue()).toBe("team:ml");
    // A filter the API refuses says why, naming the parameter.
    await page.locator('input[name="status_code"]').fill("abc");
    await page.locator('input[name="status_code"]').press("Enter");
    await page.locator(".error", { hasText: "status_code" }).waitFor();
    await page.locator('input[name="status_code"]').fill("2xx");
    await page.locator('input[name="status_code"]').press("Enter");
    await page.locator(row(labelled)).waitFor();
    expect(new URL(page.url()).searchParams.get("status_code")).toBe("2xx");
  });

  it("shows a run's queue deadline beside its other times, only when it has one", async () => {
    const withTtl = await submit("thumbnails", "/render?size=ttl", { "x-longhaul-queue-ttl": "600" });
    const run = (await api.finished(withTtl)) as { expires_at: string };
    await page.goto(`${mesh.ingressUrl}/dashboard/runs/${withTtl}`);
    await page.locator('.run-status [data-status="succeeded"]').waitFor();
    const deadline = page.locator(".summary div", { has: page.locator("dt", { hasText: "Queue deadline" }) }).locator("dd time");
    expect(await deadline.getAttribute("datetime", { timeout: LIVE_MS })).toBe(run.expires_at);
    // Shown as the other times are, in the browser's time zone: the time, and the date when not today.
    const shown = await page.evaluate((iso) => {
      const d = new Date(iso);
      const p = (n: number) => String(n).padStart(2, "0");
      const time = `${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}`;
      return d.toDateString() === new Date().toDateString() ? time : `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())} ${time}`;
    }, run.expires_at);
    expect(await deadline.textContent()).toBe(shown);
    const terms = page.locator(".summary dt");
    const order = await terms.allTextContents();
    expect(order.indexOf("Queue deadline")).toBe(order.indexOf("Created") + 1);

    // A run without one has no such row.
    const without = await submit("thumbnails", "/render?size=nottl");
    await api.finished(without);
    await page.goto(`${mesh.ingressUrl}/dashboard/runs/${without}`);
    await page.locator('.run-status [data-status="succeeded"]').waitFor();
    await page.locator(".summary dt", { hasText: "Created" }).waitFor();
    expect(await terms.allTextContents()).not.toContain("Queue deadline");
  });

  it("shows each app's settings, calls in flight, queue depth and recent outcomes", async () => {
    // reports takes one call at a time: one runs, one waits.
    await submit("reports", "/hold?ms=60000&tag=r1");
    await submit("reports", "/hold?ms=60000&tag=r2");
    await page.getByRole("link", { name: "Apps" }).click();
    const card = page.locator('[data-app="reports"]');
    await card.locator('[data-gauge="in_flight"]', { hasText: "1" }).waitFor({ timeout: LIVE_MS });
    await card.locator('[data-gauge="queued"]', { hasText: "1" }).waitFor({ timeout: LIVE_MS });
    await card.locator('[data-outcome="failed"]').waitFor();
    expect(await card.textContent()).toContain("Concurrency1");
    await page.locator('[data-app="thumbnails"] [data-outcome="cancelled"]').waitFor();
    if (EXTRA_SHOTS) await page.screenshot({ path: join(EXTRA_SHOTS, "apps-1280.png"), fullPage: true });
  });

  it("takes the README screenshot at 1280 px and fits a 390 px phone", async () => {
    await page.getByRole("link", { name: "Runs", exact: true }).click();
    await page.locator('tr[data-status="queued"]').waitFor({ timeout: LIVE_MS });
    expect(await fitsWidth(page)).toMatchObject({ inner: 1280, scroll: 1280 });
    await mkdir(dirname(SCREENSHOT), { recursive: true });
    await page.screenshot({ path: SCREENSHOT, animations: "disabled" });

    await page.setViewportSize({ width: 390, height: 844 });
    await page.goto(`${mesh.ingressUrl}/dashboard/runs`);
    await page.locator("tr[data-run-id]").first().waitFor();
    if (EXTRA_SHOTS) await page.screenshot({ path: join(EXTRA_SHOTS, "runs-390.png"), fullPage: true });
    expect(await fitsWidth(page), "the runs page overflows a 390 px screen").toMatchObject({ inner: 390, scroll: 390 });
    const first = await page.locator("tr[data-run-id]").first().getAttribute("data-run-id");
    await page.goto(`${mesh.ingressUrl}/dashboard/runs/${first}`);
    await page.locator(".timeline li").first().waitFor();
    await page.locator("section", { has: page.getByRole("heading", { name: "Request" }) }).locator("table, p.muted").first().waitFor();
    if (EXTRA_SHOTS) await page.screenshot({ path: join(EXTRA_SHOTS, "run-390.png"), fullPage: true });
    expect(await fitsWidth(page), "a run page overflows a 390 px screen").toMatchObject({ inner: 390, scroll: 390 });
    await page.goto(`${mesh.ingressUrl}/dashboard/apps`);
    await page.locator("[data-app]").first().waitFor();
    if (EXTRA_SHOTS) await page.screenshot({ path: join(EXTRA_SHOTS, "apps-390.png"), fullPage: true });
    expect(await fitsWidth(page), "the apps page overflows a 390 px screen").toMatchObject({ inner: 390, scroll: 390 });
    await page.goto(`${mesh.ingressUrl}/dashboard`);
    await page.locator("#view[data-loaded]").waitFor();
    await page.locator('[data-chart="runs"] canvas').first().waitFor();
    expect(await fitsWidth(page), "the overview overflows a 390 px screen").toMatchObject({ inner: 390, scroll: 390 });
    const chartBox = (await page.locator('[data-chart="runs"] .uplot').boundingBox())!;
    expect(chartBox.width, "a chart wider than the phone").toBeLessThanOrEqual(390);
    await page.screenshot({ path: shot("overview-390"), animations: "disabled", fullPage: true });
  });
});
