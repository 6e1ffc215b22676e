// Keeps the OpenAPI document honest: every answer an end-to-end test gets
// from a mesh's ingress through fetch is checked against the document's
// schema for its route, method and status (and a JSON body against the JSON
// Schema of its media type). A mismatch makes that fetch reject, so the test
// fails naming the route, the status and what did not match.
import { Ajv2020 } from "ajv/dist/2020.js";
import addFormatsModule from "ajv-formats";
import type { ValidateFunction } from "ajv";

// ajv-formats is CommonJS with its plugin as `default`: under NodeNext the default import is the module object.
const addFormats = addFormatsModule.default;

type Obj = Record<string, any>;

/** Checks one answer; throws an Error naming what does not match the document. */
export interface ResponseChecker {
  check(method: string, url: URL, res: Response): Promise<void>;
}

const pointerEscape = (s: string) => s.replace(/~/g, "~0").replace(/\//g, "~1");

function resolvePointer(doc: Obj, pointer: string): any {
  let node: any = doc;
  for (const raw of pointer.replace(/^#\//, "").split("/")) {
    node = node?.[raw.replace(/~1/g, "/").replace(/~0/g, "~")];
  }
  return node;
}

/** Builds a checker from an OpenAPI 3.1 document. */
export function createResponseChecker(doc: Obj): ResponseChecker {
  const ajv = new Ajv2020({ strict: false, allErrors: true, validateSchema: false });
  addFormats(ajv);
  ajv.addSchema(doc, "openapi.json");
  const compiled = new Map<string, ValidateFunction>();
  const validator = (pointer: string) => {
    let v = compiled.get(pointer);
    if (!v) {
      v = ajv.compile({ $ref: `openapi.json${pointer}` });
      compiled.set(pointer, v);
    }
    return v;
  };
  const templates = Object.keys(doc.paths as Obj).map((t) => ({ template: t, segments: t.split("/").slice(1) }));
  const isParam = (s: string | undefined) => s?.startsWith("{") ?? false;
  // As the gateway's router: a literal first segment is never taken for a project.
  const reserved = new Set(templates.map((t) => t.segments[0]!).filter((s) => !isParam(s)));

  /** The templates that match a path, the most literal first (as the router prefers literal routes). */
  function matchTemplates(path: string): string[] {
    const parts = path.split("/").slice(1);
    const reservedFirst = reserved.has(parts[0] ?? "");
    const found: { template: string; literals: number }[] = [];
    for (const t of templates) {
      if (reservedFirst && isParam(t.segments[0])) continue;
      // A template ending in {path} takes the rest of the path, slashes included (the gateway's `*`).
      const wildcard = t.segments.at(-1) === "{path}";
      const fixed = wildcard ? t.segments.slice(0, -1) : t.segments;
      if (wildcard ? parts.length < fixed.length : parts.length !== fixed.length) continue;
      let literals = 0;
      let ok = true;
      for (let i = 0; i < fixed.length && ok; i++) {
        if (isParam(fixed[i])) ok = parts[i] !== "";
        else if (fixed[i] === parts[i]) literals++;
        else ok = false;
      }
      if (ok) found.push({ template: t.template, literals: literals * 2 + (wildcard ? 0 : 1) });
    }
    return found.sort((a, b) => b.literals - a.literals).map((f) => f.template);
  }

  return {
    async check(method, url, res) {
      const where = `${method} ${url.pathname} → ${res.status}`;
      const m = method === "HEAD" ? "get" : method.toLowerCase();
      const candidates = matchTemplates(url.pathname);
      // The most literal template that has the method (a catch-all may take what a literal one lacks).
      const template = candidates.find((t) => doc.paths[t]?.[m]) ?? candidates[0];
      let responsePointer: string;
      if (!template) {
        // An unknown route is a 404 error like any other.
        if (res.status !== 404) throw new Error(`OpenAPI: ${where}: no path of the document matches`);
        responsePointer = "#/components/responses/Error";
      } else {
        const op = doc.paths[template]?.[m];
        const base = `#/paths/${pointerEscape(template)}`;
        if (!op) {
          if (res.status !== 404 && res.status !== 405) throw new Error(`OpenAPI: ${where}: ${m} is not an operation of ${template}`);
          responsePointer = "#/components/responses/Error";
        } else {
          const responses = op.responses as Obj;
          const key = [String(res.status), `${String(res.status)[0]}XX`, "default"].find((k) => k in responses);
          if (!key) throw new Error(`OpenAPI: ${where}: status ${res.status} is not documented for ${m} ${template}`);
          responsePointer = `${base}/${m}/responses/${pointerEscape(key)}`;
        }
      }
      // Follow $refs to the response object itself.
      let response = resolvePointer(doc, responsePointer);
      while (response?.$ref) {
        responsePointer = response.$ref as string;
        response = resolvePointer(doc, responsePointer);
      }
      if (!response) throw new Error(`OpenAPI: ${where}: ${responsePointer} does not resolve`);
      if (res.status === 304 || method === "HEAD") return;
      const contentType = (res.headers.get("content-type") ?? "").split(";")[0]!.trim().toLowerCase();
      const content = (response.content ?? {}) as Obj;
      if (!contentType) {
        const text = await res.clone().text();
        if (text !== "") throw new Error(`OpenAPI: ${where}: a body without a content type`);
        if (Object.keys(content).length > 0 && !("*/*" in content) && res.status !== 204) {
          throw new Error(`OpenAPI: ${where}: no body, but the document promises ${Object.keys(content).join(", ")}`);
        }
        return;
      }
      const mediaKey = contentType in content ? contentType : "*/*" in content ? "*/*" : undefined;
      if (!mediaKey) {
        throw new Error(`OpenAPI: ${where}: content type ${contentType} is not documented (${Object.keys(content).join(", ") || "no body"})`);
      }
      if (mediaKey !== "application/json" && !mediaKey.endsWith("+json")) return;
      const text = await res.clone().text();
      let body: unknown;
      try {
        body = JSON.parse(text);
      } catch {
        throw new Error(`OpenAPI: ${where}: the body is not JSON: ${text.slice(0, 200)}`);
      }
      const validate = validator(`${responsePointer}/content/${pointerEscape(mediaKey)}/schema`);
      if (!validate(body)) {
        const errors = (validate.errors ?? []).map((e) => `${e.instancePath || "/"} ${e.message ?? ""} ${JSON.stringify(e.params)}`);
        throw new Error(`OpenAPI: ${where}: the body does not match the document:\n  ${errors.join("\n  ")}\nbody: ${text.slice(0, 500)}`);
      }
    },
  };
}

const STATE = Symbol.for("longhaul.openapi-conformance");
interface State {
  original: typeof fetch;
  checkers: Map<string, ResponseChecker>;
}

/**
 * Fetches `${baseUrl}/v1/openapi.json` and, from then on, checks every answer
 * that `fetch` gets from `baseUrl` against it. Returns the function that stops
 * checking that base URL.
 */
export async function checkResponsesAgainstOpenApi(baseUrl: string): Promise<() => void> {
  const g = globalThis as unknown as Record<symbol, State | undefined>;
  let state = g[STATE];
  if (!state) {
    const original = globalThis.fetch;
    const s: State = { original, checkers: new Map() };
    state = s;
    g[STATE] = s;
    globalThis.fetch = async (input: string | URL | Request, init?: RequestInit) => {
      const res = await s.original(input, init);
      const url = new URL(input instanceof Request ? input.url : String(input));
      const checker = s.checkers.get(url.origin);
      if (checker) {
        const method = (init?.method ?? (input instanceof Request ? input.method : "GET")).toUpperCase();
        await checker.check(method, url, res);
      }
      return res;
    };
  }
  const origin = new URL(baseUrl).origin;
  const res = await state.original(`${baseUrl}/v1/openapi.json`);
  if (res.status !== 200) throw new Error(`GET /v1/openapi.json answered ${res.status}`);
  state.checkers.set(origin, createResponseChecker((await res.json()) as Obj));
  return () => {
    state.checkers.delete(origin);
  };
}
