// The scavenges of a log written under `node --trace-gc-nvp`, one object per
// `gc=s` line: when (ms since the isolate started), the pause, and the bytes
// allocated since the last one, surviving it and promoted by it.

/** @param {string} text @returns {{ at: number, pause: number, allocated: number, survived: number, promoted: number }[]} */
export function scavenges(text) {
  const rows = [];
  for (const line of text.split("\n")) {
    if (!/ gc=s /.test(line)) continue;
    const field = (k) => Number(new RegExp(`\\b${k}=([0-9.]+)`).exec(line)?.[1] ?? 0);
    rows.push({
      at: Number(/\s([0-9]+) ms: /.exec(line)?.[1] ?? 0),
      pause: field("pause"),
      allocated: field("allocated"),
      survived: field("new_space_survived"),
      promoted: field("promoted"),
    });
  }
  return rows;
}
