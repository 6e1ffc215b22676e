import type { Run } from "@longhaul/client";
import { duration } from "./format.js";

const FRAMES = ["⠋", "⠙", "⠹", "⠸", "⠼", "⠴", "⠦", "⠧", "⠇", "⠏"];

/** A line on a terminal that says how a run is doing while the CLI waits; nothing when not a terminal. */
export interface StatusLine {
  update(run: Run): void;
  stop(): void;
}

export function createStatusLine(out: NodeJS.WriteStream, runId: string, enabled: boolean): StatusLine {
  if (!enabled || !out.isTTY) return { update() {}, stop() {} };
  const started = Date.now();
  let status = "submitted";
  let frame = 0;
  const draw = () => {
    out.write(`\r\x1b[2K${FRAMES[frame++ % FRAMES.length]} ${runId} ${status} ${duration(Date.now() - started)}`);
  };
  const timer = setInterval(draw, 250);
  timer.unref();
  draw();
  return {
    update(run) {
      status = run.attempt > 1 ? `${run.status} (attempt ${run.attempt}/${run.max_attempts})` : run.status;
      draw();
    },
    stop() {
      clearInterval(timer);
      out.write("\r\x1b[2K");
    },
  };
}
