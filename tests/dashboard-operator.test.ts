// The dashboard's operator view end to end in headless Chromium against the
// real mesh: signed in with the operator key (LONGHAUL_ADMIN_KEY), an
// operator creates a project, creates a key (its secret shown once), edits
// the project's limits, and revokes the key; the key works against the API
// until it is revoked and is refused after.
import { existsSync } from "node:fs";
import { chromium, type Browser, type Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startTestMesh, type TestMesh } from "./helpers/mesh.js";
import { eventually, gateway } from "./helpers/peers.js";

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

let mesh: TestMesh;
let browser: Browser;
let page: Page;
let operator: ReturnType<typeof gateway>;

beforeAll(async () => {
  // Fail loudly: a missing browser is a broken machine, never a skipped test.
  if (!existsSync(CHROMIUM)) throw new Error(`${CHROMIUM} is missing: apt-get install -y chromium (.ci/run does)`);
  [mesh, browser] = await Promise.all([startTestMesh(), chromium.launch({ executablePath: CHROMIUM, args: FLAGS, timeout: 30_000 })]);
  operator = gateway(mesh.ingressUrl, mesh.adminKey);
  page = await (await browser.newContext({ viewport: { width: 1280, height: 860 } })).newPage();
  // Revoking asks for confirmation.
  page.on("dialog", (d) => void d.accept());
});

afterAll(async () => {
  await browser?.close();
  await mesh?.cleanup();
});

describe("the operator's view", () => {
  it("creates a project and a key, edits limits, and revokes the key, which then stops working", async () => {
    await page.goto(`${mesh.ingressUrl}/dashboard`);
    await page.getByLabel("API key").fill(mesh.adminKey);
    await page.getByRole("button", { name: "Sign in" }).click();
    await page.getByRole("heading", { name: "Projects" }).waitFor();
    expect(await page.locator(".project.operator").textContent()).toContain("operator");
    await page.locator('tr[data-project="dev"]').waitFor();

    await page.getByLabel("New project name").fill("acme");
    await page.getByRole("button", { name: "Create project" }).click();
    await page.getByRole("heading", { name: /Project\s+acme/ }).waitFor();
    expect((await operator.call("GET", "/v1/admin/projects/acme")).status).toBe(200);

    // A key: read and invoke are ticked by default; the secret is shown once.
    await page.getByLabel("Key name").fill("ci");
    await page.getByRole("button", { name: "Create key" }).click();
    const secretBox = page.locator("input[data-secret]");
    await secretBox.waitFor();
    const secret = await secretBox.inputValue();
    expect(secret).toMatch(/^lh_/);
    const row = page.locator('tr[data-key-name="ci"]');
    await row.waitFor();
    expect(await row.textContent()).toContain(secret.slice(0, 11));
    expect(await row.textContent()).not.toContain(secret);

    const key = gateway(mesh.ingressUrl, secret);
    expect((await key.call("GET", "/v1/runs")).status).toBe(200);
    expect((await key.call("GET", "/v1/project")).json).toEqual({ project: "acme" });
    // Its scopes are what the form said: no admin.
    expect((await key.call("GET", "/v1/keys")).status).toBe(403);

    // Limits, edited in place.
    await page.locator('input[name="max_in_flight"]').fill("5");
    await page.locator('input[name="submits_per_second"]').fill("20");
    await page.getByRole("button", { name: "Save limits" }).click();
    await page.getByText("Limits saved.").waitFor();
    expect((await operator.call("GET", "/v1/admin/projects/acme")).json.limits).toMatchObject({ max_in_flight: 5, submits_per_second: 20 });

    // Revoke: the row goes, and the key is refused from then on.
    await row.locator('[data-action="revoke"]').click();
    await page.getByText("Key ci revoked.").waitFor();
    await row.waitFor({ state: "detached" });
    await eventually(async () => (await key.call("GET", "/v1/runs")).status === 401, 20_000, "the revoked key to be refused");
    expect((await key.call("POST", "/acme/any/x?async=true", "{}")).status).toBe(401);
    expect((await operator.call("GET", "/v1/admin/projects/acme/keys")).json.keys).toEqual([]);

    // The audit log says what happened, newest first.
    await page.getByRole("link", { name: "Audit log of this project" }).click();
    await page.getByRole("heading", { name: "Audit log" }).waitFor();
    await page.locator('tr[data-action="key.revoke"]').waitFor();
    const actions = await page.locator("tr[data-action]").evaluateAll((rows) => rows.map((r) => r.getAttribute("data-action")));
    expect(actions).toEqual(["key.revoke", "project.limits", "key.create", "project.create"]);
  });
});
