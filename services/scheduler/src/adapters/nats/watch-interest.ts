import type { Logger } from "@longhaul/shared/logger";
import type { NatsConnection, NatsNames } from "@longhaul/shared/nats";

/** How often a copy with open watches of a project says so. */
export const WATCHING_ANNOUNCE_MS = 5_000;
/** How long an announcement counts: two announcements and some slack. */
export const WATCHING_TTL_MS = 12_000;

/**
 * Which projects someone watches, across scheduler copies, so that a run's
 * change notice (`run.changed`) is published only when a watch may want it:
 * with nobody watching (most of the time, on a busy mesh) the two or three
 * notices of each run cost nothing.
 *
 * A copy with open watches of a project announces it on core NATS
 * (`<p>.run.watching.<project>`) when the first opens and every 5 s while any
 * is open; every copy believes an announcement for 12 s. A watch opened on
 * one copy may miss a notice another copy sends in the moment before the
 * announcement reaches it: the watch's own periodic read (run-watchers'
 * safety read, the feed's catch-up) still sees that state, a little later.
 * After a broker outage every project counts as watched for 12 s, since
 * announcements may have been missed meanwhile.
 */
export function watchInterest(nc: NatsConnection, names: NatsNames, log: Logger, now: () => number = Date.now) {
  /** Open watches in this copy, by project. */
  const local = new Map<string, number>();
  /** Until when another copy (or this one) said it watches a project. */
  const heard = new Map<string, number>();
  let everythingUntil = 0;
  let timer: NodeJS.Timeout | undefined;

  const announce = (project: string) => nc.publish(names.runWatching(project));

  nc.subscribe(names.runWatchingAll, {
    callback: (err, msg) => {
      if (err) return log.warn({ err }, "watch announcements stopped");
      heard.set(msg.subject.slice(msg.subject.lastIndexOf(".") + 1), now() + WATCHING_TTL_MS);
    },
  });
  void (async () => {
    for await (const s of nc.status()) {
      if (s.type !== "reconnect") continue;
      everythingUntil = now() + WATCHING_TTL_MS;
      for (const project of local.keys()) announce(project);
    }
  })().catch((err: unknown) => log.error({ err }, "nats status loop failed"));

  return {
    /** True when a change of `project`'s runs may be watched anywhere. */
    watched(project: string): boolean {
      if (local.has(project)) return true;
      const t = now();
      if (t < everythingUntil) return true;
      const until = heard.get(project);
      if (until === undefined) return false;
      if (until > t) return true;
      heard.delete(project);
      return false;
    },
    /** A watch of `project` opens in this copy; the returned function closes it. */
    open(project: string): () => void {
      const n = local.get(project) ?? 0;
      local.set(project, n + 1);
      if (n === 0) announce(project);
      if (!timer) {
        timer = setInterval(() => {
          for (const p of local.keys()) announce(p);
        }, WATCHING_ANNOUNCE_MS);
        timer.unref();
      }
      let closed = false;
      return () => {
        if (closed) return;
        closed = true;
        const left = (local.get(project) ?? 1) - 1;
        if (left > 0) local.set(project, left);
        else local.delete(project);
        if (local.size === 0 && timer) {
          clearInterval(timer);
          timer = undefined;
        }
      };
    },
  };
}
