import { LonghaulError } from "../errors.js";

/**
 * Run labels: a few `key=value` pairs a client attaches at submit
 * (`X-Longhaul-Labels: team=ml,job=42`) to find its runs again
 * (`GET /v1/runs?label=team:ml`). The grammar is kept small so that a label
 * reads the same in a header, a query and a URL, with no escaping:
 * a key is 1–63 of `A-Z a-z 0-9 _ . -` starting with a letter or digit; a
 * value is 1–128 of those and `: / @ +`.
 */
export type Labels = Record<string, string>;

/** Labels one run may carry. */
export const MAX_LABELS = 10;

const KEY = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$/;
const VALUE = /^[A-Za-z0-9_.:/@+-]{1,128}$/;

function invalid(where: string, message: string): LonghaulError {
  return new LonghaulError("invalid_argument", `${where}: ${message}`);
}

function checkPair(where: string, key: string, value: string): void {
  if (!KEY.test(key)) {
    throw invalid(where, `label key ${JSON.stringify(key)} must be 1-63 letters, digits, '_', '.' or '-', starting with a letter or digit`);
  }
  if (!VALUE.test(value)) {
    throw invalid(where, `label ${key} has value ${JSON.stringify(value)}: 1-128 letters, digits or '_.:/@+-'`);
  }
}

/** Checks labels as stored (from any client, HTTP or gRPC); `where` names the field in the error. */
export function checkLabels(labels: Labels, where = "labels"): Labels {
  const keys = Object.keys(labels);
  if (keys.length > MAX_LABELS) throw invalid(where, `at most ${MAX_LABELS} labels, got ${keys.length}`);
  for (const k of keys) checkPair(where, k, labels[k]!);
  return labels;
}

/**
 * Parses `team=ml, job=42` (the values of every `X-Longhaul-Labels` header,
 * joined by commas). Empty items are skipped; a repeated key, a pair without
 * `=` or a bad key or value is a 400 naming `where`.
 */
export function parseLabelsHeader(values: readonly string[], where = "X-Longhaul-Labels"): Labels {
  const labels: Labels = {};
  for (const item of values.flatMap((v) => v.split(","))) {
    const pair = item.trim();
    if (pair === "") continue;
    const eq = pair.indexOf("=");
    if (eq < 0) throw invalid(where, `${JSON.stringify(pair)} is not key=value`);
    const key = pair.slice(0, eq).trim();
    const value = pair.slice(eq + 1).trim();
    checkPair(where, key, value);
    if (Object.hasOwn(labels, key)) throw invalid(where, `label ${key} is given twice`);
    labels[key] = value;
  }
  return checkLabels(labels, where);
}

/** Parses one `label=key:value` filter of a listing; a 400 naming `where` when malformed. */
export function parseLabelFilter(raw: string, where = "label"): [string, string] {
  const colon = raw.indexOf(":");
  if (colon < 0) throw invalid(where, `${JSON.stringify(raw)} must be key:value`);
  const key = raw.slice(0, colon);
  const value = raw.slice(colon + 1);
  checkPair(where, key, value);
  return [key, value];
}
