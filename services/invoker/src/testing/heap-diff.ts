/**
 * Reads two V8 heap snapshots (`.heapsnapshot`, as written by
 * `--heapsnapshot-signal`) and tells what the second holds more of, by
 * constructor: the objects each held call keeps alive. Used by bench-held.ts.
 */
import { readFileSync } from "node:fs";

interface Snapshot {
  snapshot: { meta: { node_fields: string[]; node_types: [string[], ...unknown[]] } };
  nodes: number[];
  strings: string[];
}

/** Count and self size of the live objects of a snapshot, by kind (`type:constructor`). */
export function heapByKind(file: string): Map<string, { count: number; bytes: number }> {
  const s = JSON.parse(readFileSync(file, "utf8")) as Snapshot;
  const fields = s.snapshot.meta.node_fields;
  const types = s.snapshot.meta.node_types[0];
  const width = fields.length;
  const iType = fields.indexOf("type");
  const iName = fields.indexOf("name");
  const iSize = fields.indexOf("self_size");
  const out = new Map<string, { count: number; bytes: number }>();
  for (let i = 0; i < s.nodes.length; i += width) {
    const type = types[s.nodes[i + iType]!]!;
    // A string's "name" is its contents: group strings by type only.
    const named = type === "object" || type === "closure" || type === "native" || type === "hidden" || type === "array";
    const key = named ? `${type}:${s.strings[s.nodes[i + iName]!]!.slice(0, 60)}` : type;
    const e = out.get(key) ?? { count: 0, bytes: 0 };
    e.count += 1;
    e.bytes += s.nodes[i + iSize]!;
    out.set(key, e);
  }
  return out;
}

/** The kinds that grew most from `before` to `after`, per held call. */
export function heapGrowth(before: string, after: string, n: number, top = 30): string {
  const a = heapByKind(before);
  const b = heapByKind(after);
  const rows = [...b.entries()].map(([kind, v]) => {
    const was = a.get(kind) ?? { count: 0, bytes: 0 };
    return { kind, perCall: (v.bytes - was.bytes) / n, countPerCall: (v.count - was.count) / n };
  });
  rows.sort((x, y) => y.perCall - x.perCall);
  const total = rows.reduce((sum, r) => sum + r.perCall, 0);
  const lines = rows
    .slice(0, top)
    .map((r) => `${r.perCall.toFixed(0).padStart(7)} B  ${r.countPerCall.toFixed(2).padStart(6)}×  ${r.kind}`);
  return [`live heap per held call: ${(total / 1024).toFixed(1)} KB (self sizes; top ${top} kinds)`, ...lines].join("\n");
}
