import { readFile } from "node:fs/promises";
import { Command, CommanderError, InvalidArgumentError, Option } from "commander";
import { LonghaulApiError, LonghaulClient, isFinished, type AppInput, type KeyScope, type Run, type RunStatus } from "@longhaul/client";
import { appsTable, deliveryText, fields, limitsFields, projectsTable, runSummary, runsTable, table } from "./format.js";
import { createStatusLine } from "./status-line.js";

/**
 * Exit codes (the CLI's contract with scripts): 0 the run succeeded (or,
 * without --wait, was accepted) or the command did what it was asked; 1 the
 * run ended any other way; 2 a usage or API error; 3 --wait ran out with
 * the run still going.
 */
export const EXIT = { ok: 0, runNotSucceeded: 1, error: 2, stillRunning: 3 } as const;

/** Where the CLI reads and writes; the process's own streams in main.ts. */
export interface CliIo {
  env: NodeJS.ProcessEnv;
  stdout: NodeJS.WriteStream;
  stderr: NodeJS.WriteStream;
  stdin: NodeJS.ReadStream;
}

/** A usage mistake found after parsing (a bad --header, say): exit 2 with its message. */
class UsageError extends Error {}

const intArg = (name: string) => (v: string) => {
  if (!/^-?\d+$/.test(v)) throw new InvalidArgumentError(`${name} must be an integer`);
  return Number(v);
};
const numArg = (name: string) => (v: string) => {
  if (!/^\d+(\.\d+)?$/.test(v)) throw new InvalidArgumentError(`${name} must be a number`);
  return Number(v);
};
const collect = (v: string, prev: string[] = []) => [...prev, v];

/** Runs the CLI on `argv` (without node and the script); resolves with the exit code. */
export async function runCli(argv: string[], io: CliIo): Promise<number> {
  let code: number = EXIT.ok;
  const out = (text: string) => io.stdout.write(text);
  const program = new Command("longhaul")
    .description("The command line of Longhaul: submit calls, follow runs, manage apps, projects and keys.")
    .version("0.1.0")
    .addOption(new Option("--url <url>", "the gateway").env("LONGHAUL_URL").default("http://localhost:8080"))
    .addOption(new Option("--api-key <key>", "a project's API key").env("LONGHAUL_API_KEY"))
    .addOption(new Option("--admin-key <key>", "the operator key (projects, keys, limits)").env("LONGHAUL_ADMIN_KEY"))
    .option("--json", "print JSON for scripts instead of tables")
    // Options of the program come before the command (`longhaul --url G apps put A --url U`):
    // `apps put` has a --url of its own. --json is taken after the command too (added below).
    .enablePositionalOptions()
    .showHelpAfterError()
    .exitOverride()
    .configureOutput({ writeOut: (s) => io.stdout.write(s), writeErr: (s) => io.stderr.write(s) });

  const g = () => program.opts<{ url: string; apiKey?: string; adminKey?: string; json?: boolean }>();
  let jsonMode = false;
  program.hook("preAction", (_program, action) => {
    jsonMode = g().json === true || action.opts<{ json?: boolean }>().json === true;
  });
  const json = () => jsonMode;
  const print = (value: unknown, human: () => string) => out(json() ? JSON.stringify(value, null, 2) + "\n" : human());
  const client = () => {
    const { url, apiKey } = g();
    if (!apiKey) throw new UsageError("no API key: set LONGHAUL_API_KEY or pass --api-key");
    return new LonghaulClient({ baseUrl: url, apiKey, headers: { "user-agent": "longhaul-cli/0.1.0" } });
  };
  const admin = () => {
    const { url, adminKey } = g();
    if (!adminKey) throw new UsageError("no operator key: set LONGHAUL_ADMIN_KEY or pass --admin-key");
    return new LonghaulClient({ baseUrl: url, apiKey: adminKey, headers: { "user-agent": "longhaul-cli/0.1.0" } }).admin;
  };

  /** Waits for a run (up to `seconds`, or for good), with a status line on a terminal; sets the exit code. */
  const waitFor = async (runId: string, seconds: number | undefined): Promise<Run> => {
    const line = createStatusLine(io.stderr, runId, !json());
    try {
      const run = await client().wait(runId, { timeoutSeconds: seconds, onUpdate: (r) => line.update(r) });
      code = !isFinished(run) ? EXIT.stillRunning : run.status === "succeeded" ? EXIT.ok : EXIT.runNotSucceeded;
      return run;
    } finally {
      line.stop();
    }
  };
  const waitSeconds = (v: string | boolean | undefined): number | undefined | false => {
    if (v === undefined || v === false) return false;
    if (v === true) return undefined;
    if (!/^\d+$/.test(v)) throw new UsageError("--wait takes a number of seconds");
    return Number(v);
  };

  program
    .command("submit")
    .description("call APP at PATH asynchronously; prints the run id (with --wait: the run once finished)")
    .argument("<app>", "the app")
    .argument("<path>", "the path below the app, with its query, e.g. /render?size=large")
    .option("-X, --method <method>", "HTTP method (default POST with --data, else GET)")
    .option("-d, --data <data>", "the body: @file, - for stdin, or the text itself")
    .option("-H, --header <name:value>", "a header for the app (repeatable)", collect)
    .option("--webhook <url>", "POST the app's answer here when the run finishes")
    .option("--wait [seconds]", "wait until the run is finished (at most SECONDS)")
    .option("--idempotency-key <key>", "a repeated submit with the same key answers the same run")
    .option("--label <key=value>", "a label to find the run by (repeatable)", collect)
    .option("--timeout <seconds>", "shorten the app's timeout for this run", intArg("--timeout"))
    .option("--priority <n>", "-100..100, higher first", intArg("--priority"))
    .option("--queue-ttl <seconds>", "the run must start within this many seconds, else it ends expired (1..2592000)", intArg("--queue-ttl"))
    .action(async (app: string, path: string, o: { method?: string; data?: string; header?: string[]; webhook?: string; wait?: string | boolean; idempotencyKey?: string; label?: string[]; timeout?: number; priority?: number; queueTtl?: number }) => {
      const wait = waitSeconds(o.wait);
      const headers: Record<string, string> = {};
      for (const h of o.header ?? []) {
        const i = h.indexOf(":");
        if (i <= 0) throw new UsageError(`--header ${JSON.stringify(h)}: expected NAME:VALUE`);
        headers[h.slice(0, i).trim()] = h.slice(i + 1).trim();
      }
      const labels: Record<string, string> = {};
      for (const l of o.label ?? []) {
        const i = l.indexOf("=");
        if (i <= 0) throw new UsageError(`--label ${JSON.stringify(l)}: expected KEY=VALUE`);
        labels[l.slice(0, i)] = l.slice(i + 1);
      }
      let body: Uint8Array | undefined;
      if (o.data !== undefined) {
        body = o.data === "-" ? await readAll(io.stdin) : o.data.startsWith("@") ? await readFile(o.data.slice(1)) : new TextEncoder().encode(o.data);
        if (!Object.keys(headers).some((k) => k.toLowerCase() === "content-type")) headers["content-type"] = guessContentType(body);
      }
      const [appPath, query] = splitQuery(path);
      const accepted = await client().submit(app, appPath, {
        method: o.method?.toUpperCase(),
        body,
        headers,
        query,
        webhook: o.webhook,
        idempotencyKey: o.idempotencyKey,
        labels: Object.keys(labels).length ? labels : undefined,
        timeoutSeconds: o.timeout,
        priority: o.priority,
        queueTtlSeconds: o.queueTtl,
      });
      if (wait === false) {
        print({ run_id: accepted.runId }, () => `${accepted.runId}\n`);
        return;
      }
      const run = await waitFor(accepted.runId, wait);
      print(run, () => runSummary(run));
    });

  const runs = program.command("runs").description("the project's runs");
  runs
    .command("list")
    .description("runs, newest first")
    .option("--app <app>")
    .option("--status <status>")
    .option("--label <key:value>", "repeatable", collect)
    .option("--limit <n>", "how many (default 20)", intArg("--limit"), 20)
    .action(async (o: { app?: string; status?: string; label?: string[]; limit: number }) => {
      const labels = Object.fromEntries((o.label ?? []).map((l) => [l.slice(0, l.indexOf(":")), l.slice(l.indexOf(":") + 1)]));
      const list: Run[] = [];
      for await (const run of client().listRuns({ app: o.app, status: o.status as RunStatus | undefined, labels: o.label ? labels : undefined, pageSize: Math.min(500, Math.max(1, o.limit)) })) {
        list.push(run);
        if (list.length >= o.limit) break;
      }
      print({ runs: list }, () => runsTable(list));
    });
  runs
    .command("get")
    .argument("<id>")
    .description("one run")
    .action(async (id: string) => {
      const run = await client().getRun(id);
      print(run, () => runSummary(run));
    });
  runs
    .command("result")
    .argument("<id>")
    .description("what the app answered: its body as it sent it (--json: the envelope, body in base64)")
    .action(async (id: string) => {
      if (json()) {
        print(await client().result(id), () => "");
        return;
      }
      const res = await client().resultResponse(id);
      io.stdout.write(new Uint8Array(await res.arrayBuffer()));
    });
  runs
    .command("cancel")
    .argument("<id>")
    .description("cancel a queued or running run")
    .action(async (id: string) => {
      const run = await client().cancel(id);
      print(run, () => runSummary(run));
    });
  runs
    .command("retry")
    .argument("<id>")
    .option("--wait [seconds]", "wait until the new run is finished")
    .description("a new run with the stored request of this one; prints its id")
    .action(async (id: string, o: { wait?: string | boolean }) => {
      const wait = waitSeconds(o.wait);
      const { runId } = await client().retry(id);
      if (wait === false) {
        print({ run_id: runId }, () => `${runId}\n`);
        return;
      }
      const run = await waitFor(runId, wait);
      print(run, () => runSummary(run));
    });
  runs
    .command("watch")
    .argument("<id>")
    .description("follow a run's state changes live (server-sent events) until it is finished")
    .action(async (id: string) => {
      let last: Run | undefined;
      for await (const run of client().events(id)) {
        last = run;
        out(json() ? JSON.stringify(run) + "\n" : `${new Date().toISOString()}  ${run.status}${run.status_code ? ` ${run.status_code}` : ""}${run.attempt > 1 ? ` attempt ${run.attempt}` : ""}\n`);
      }
      code = last?.status === "succeeded" ? EXIT.ok : EXIT.runNotSucceeded;
    });

  program
    .command("deliveries")
    .argument("<id>")
    .description("a run's webhook delivery and its attempts")
    .action(async (id: string) => {
      const d = await client().deliveries(id);
      print(d, () => deliveryText(d));
    });
  program
    .command("redeliver")
    .argument("<id>")
    .description("deliver a finished run's webhook again")
    .action(async (id: string) => {
      const d = await client().redeliver(id);
      print(d, () => deliveryText(d));
    });

  const apps = program.command("apps").description("the project's apps");
  apps
    .command("list")
    .action(async () => {
      const list = await client().listApps();
      print({ apps: list }, () => appsTable(list));
    });
  apps
    .command("get")
    .argument("<name>")
    .action(async (name: string) => {
      const app = await client().getApp(name);
      print(app, () => appsTable([app]));
    });
  apps
    .command("put")
    .argument("<name>")
    .description("create or replace an app")
    .option("--url <url>", "the app's upstream URL")
    .option("--file <file>", "the app as JSON (a GET answer edited, say); flags override its fields")
    .option("--timeout <seconds>", "how long a call may be held (≤ 43200)", intArg("--timeout"))
    .option("--max-concurrency <n>", "calls in flight at once, 0 = unlimited", intArg("--max-concurrency"))
    .option("--max-attempts <n>", "attempts in all, the first included", intArg("--max-attempts"))
    .option("--idempotent", "retry every failure (the app tolerates a repeated call)")
    .option("--queue-ttl <seconds>", "a queued run older than this expires, 0 = never", intArg("--queue-ttl"))
    .action(async (name: string, o: { url?: string; file?: string; timeout?: number; maxConcurrency?: number; maxAttempts?: number; idempotent?: boolean; queueTtl?: number }) => {
      const base = (o.file ? JSON.parse(await readFile(o.file, "utf8")) : {}) as Partial<AppInput>;
      const input: AppInput = { ...base, url: o.url ?? base.url ?? "" };
      if (!input.url) throw new UsageError("apps put needs --url (or a --file with url)");
      if (o.timeout !== undefined) input.timeout_seconds = o.timeout;
      if (o.maxConcurrency !== undefined) input.max_concurrency = o.maxConcurrency;
      if (o.queueTtl !== undefined) input.queue_ttl_seconds = o.queueTtl;
      if (o.maxAttempts !== undefined || o.idempotent) {
        input.retry = { ...input.retry, ...(o.maxAttempts !== undefined ? { max_attempts: o.maxAttempts } : {}), ...(o.idempotent ? { idempotent: true } : {}) };
      }
      const app = await client().putApp(name, input);
      print(app, () => appsTable([app]));
    });
  apps
    .command("rm")
    .argument("<name>")
    .action(async (name: string) => {
      await client().deleteApp(name);
      print({ deleted: name }, () => `deleted app ${name}\n`);
    });

  const projects = program.command("projects").description("projects (the operator key)");
  projects.command("list").action(async () => {
    const list = await admin().listProjects();
    print({ projects: list }, () => projectsTable(list));
  });
  projects
    .command("get")
    .argument("<name>")
    .action(async (name: string) => {
      const p = await admin().getProject(name);
      print(p, () => projectsTable([p]) + "\n" + limitsFields(p));
    });
  projects
    .command("create")
    .argument("<name>")
    .action(async (name: string) => {
      const p = await admin().createProject(name);
      print(p, () => projectsTable([p]));
    });
  projects
    .command("rm")
    .argument("<name>")
    .description("revoke the project's keys and refuse its new runs (runs in flight finish)")
    .action(async (name: string) => {
      await admin().deleteProject(name);
      print({ deleted: name }, () => `deleted project ${name}\n`);
    });

  const keys = program.command("keys").description("a project's API keys (the operator key)");
  keys
    .command("list")
    .argument("<project>")
    .action(async (project: string) => {
      const list = await admin().listKeys(project);
      print({ keys: list }, () => table(["ID", "NAME", "SCOPES", "PREFIX", "CREATED", "LAST USED"], list.map((k) => [k.id, k.name, k.scopes.join(","), k.prefix, k.created_at, k.last_used_at])));
    });
  keys
    .command("create")
    .argument("<project>")
    .requiredOption("--name <name>", "what the key is for")
    .option("--scopes <scopes>", "comma-separated: read, invoke, admin", "read,invoke")
    .description("make a key; its secret is printed this once")
    .action(async (project: string, o: { name: string; scopes: string }) => {
      const k = await admin().createKey(project, { name: o.name, scopes: o.scopes.split(",").map((s) => s.trim()).filter(Boolean) as KeyScope[] });
      print(k, () => fields([["id", k.id], ["name", k.name], ["scopes", k.scopes.join(",")], ["key", k.key]]) + "The key is shown this once: keep it now.\n");
    });
  keys
    .command("rm")
    .argument("<id>")
    .description("revoke a key (refused everywhere within 5 s)")
    .action(async (id: string) => {
      await admin().revokeKey(id);
      print({ revoked: id }, () => `revoked key ${id}\n`);
    });

  program
    .command("limits")
    .argument("<project>")
    .description("show a project's limits, or change those given (0 = unlimited)")
    .option("--submits-per-second <n>", "", numArg("--submits-per-second"))
    .option("--burst <n>", "", intArg("--burst"))
    .option("--max-in-flight <n>", "", intArg("--max-in-flight"))
    .option("--max-queued <n>", "", intArg("--max-queued"))
    .option("--max-watch-streams <n>", "", intArg("--max-watch-streams"))
    .action(async (project: string, o: { submitsPerSecond?: number; burst?: number; maxInFlight?: number; maxQueued?: number; maxWatchStreams?: number }) => {
      const changes = Object.fromEntries(
        Object.entries({
          submits_per_second: o.submitsPerSecond,
          burst: o.burst,
          max_in_flight: o.maxInFlight,
          max_queued: o.maxQueued,
          max_watch_streams: o.maxWatchStreams,
        }).filter(([, v]) => v !== undefined),
      );
      const p = Object.keys(changes).length ? await admin().setLimits(project, changes) : await admin().getProject(project);
      print(p.limits, () => limitsFields(p));
    });

  const addJson = (c: Command) => {
    if (c.commands.length === 0) {
      if (c !== program) c.option("--json", "print JSON for scripts instead of tables");
    } else c.commands.forEach(addJson);
  };
  addJson(program);

  try {
    await program.parseAsync(argv, { from: "user" });
    return code;
  } catch (err) {
    if (err instanceof CommanderError) {
      return err.code === "commander.helpDisplayed" || err.code === "commander.version" || err.code === "commander.help" ? EXIT.ok : EXIT.error;
    }
    if (err instanceof LonghaulApiError) {
      io.stderr.write(`longhaul: ${err.message} (${err.code}${err.status ? `, HTTP ${err.status}` : ""}${err.retryAfterSeconds !== undefined ? `, retry after ${err.retryAfterSeconds}s` : ""})\n`);
      return EXIT.error;
    }
    if (err instanceof UsageError || err instanceof SyntaxError || (err as NodeJS.ErrnoException).code === "ENOENT") {
      io.stderr.write(`longhaul: ${(err as Error).message}\n`);
      return EXIT.error;
    }
    throw err;
  }
}

function splitQuery(path: string): [string, URLSearchParams | undefined] {
  const q = path.indexOf("?");
  return q === -1 ? [path, undefined] : [path.slice(0, q), new URLSearchParams(path.slice(q + 1))];
}

async function readAll(stream: NodeJS.ReadStream): Promise<Uint8Array> {
  const chunks: Buffer[] = [];
  for await (const c of stream as AsyncIterable<Buffer>) chunks.push(c);
  return Buffer.concat(chunks);
}

/** JSON when the data parses as JSON, else bytes (curl's form default would surprise an app expecting JSON). */
function guessContentType(body: Uint8Array): string {
  try {
    JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(body));
    return "application/json";
  } catch {
    return "application/octet-stream";
  }
}
