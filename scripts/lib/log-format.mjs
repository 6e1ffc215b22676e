// Turns the services' pino JSON lines into one readable line each for the
// terminal of `npm start`. The log files keep the raw JSON.

const LEVELS = { 10: "TRACE", 20: "DEBUG", 30: "INFO", 40: "WARN", 50: "ERROR", 60: "FATAL" };
const NAME_COLORS = { scheduler: 36, invoker: 35, notifier: 33, ingress: 32 };
const LEVEL_COLORS = { WARN: 33, ERROR: 31, FATAL: 31 };
const HIDDEN = new Set(["level", "time", "msg", "pid", "hostname", "service", "err", "span_id"]);

function paint(code, text, color) {
  return color && code ? `\x1b[${code}m${text}\x1b[0m` : text;
}

function clock(time) {
  const d = typeof time === "number" || typeof time === "string" ? new Date(time) : new Date();
  return Number.isNaN(d.getTime()) ? "" : d.toTimeString().slice(0, 8);
}

function value(v) {
  if (typeof v === "string") return /[\s"=]/.test(v) ? JSON.stringify(v) : v;
  return JSON.stringify(v);
}

/**
 * `HH:MM:SS scheduler#0 INFO  message key=value …`, with the error's stack
 * indented below. Lines that are not JSON pass through behind the prefix.
 */
export function createLineFormatter({ color = process.stdout.isTTY === true } = {}) {
  return (name, index, line) => {
    const who = paint(NAME_COLORS[name], `${name}#${index}`.padEnd(11), color);
    let entry;
    try {
      entry = JSON.parse(line);
    } catch {
      entry = undefined;
    }
    if (!entry || typeof entry !== "object") return `${clock()} ${who} ${line}`;
    const level = LEVELS[entry.level] ?? String(entry.level ?? "").toUpperCase();
    const fields = Object.entries(entry)
      .filter(([k]) => !HIDDEN.has(k))
      .map(([k, v]) => `${k}=${value(v)}`)
      .join(" ");
    let out = `${clock(entry.time)} ${who} ${paint(LEVEL_COLORS[level], level.padEnd(5), color)} ${entry.msg ?? ""}`;
    if (fields) out += ` ${paint(2, fields, color)}`;
    if (entry.err) {
      const err = entry.err;
      const stack = typeof err === "object" ? (err.stack ?? err.message ?? JSON.stringify(err)) : String(err);
      out += "\n" + String(stack).replace(/^/gm, "    ");
    }
    return out;
  };
}
