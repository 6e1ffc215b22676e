// The chaos run's driver: async submits at a steady rate over every gateway
// copy, each with an Idempotency-Key so that a submit sent again (its answer
// lost to a killed copy) never makes a second run. Refusals (429, 503, other
// 5xx) and connection errors are retried with capped exponential backoff and
// jitter, honouring Retry-After (RFC 9110, 10.2.3), and counted.

/** A submit is given up after this long of refusals. */
const GIVE_UP_MS = 120_000;
const REQUEST_TIMEOUT_MS = 30_000;
const MAX_IN_FLIGHT = 32;
const BACKOFF_FIRST_MS = 250;
const BACKOFF_MAX_MS = 8_000;

/**
 * @param {{ ingressUrls: string[], apiKey: string, seed: number, signal: AbortSignal, log: (m: string) => void }} options
 */
export function createSubmitter({ ingressUrls, apiKey, seed, signal, log }) {
  /** @type {Map<number, {runId: string, app: string, holdMs: number}>} */
  const accepted = new Map();
  /** Refusals and errors that were retried, by HTTP status or `network`. */
  const retried = {};
  /** Submits that never got a 202: index → last answer. */
  const gaveUp = new Map();
  let inFlight = 0;
  let retryCount = 0;

  async function submitOne(p) {
    const started = Date.now();
    for (let attempt = 0; ; attempt++) {
      const base = ingressUrls[(p.i + attempt) % ingressUrls.length];
      const url = `${base}/dev/${p.app}/work/${p.i}?hold_ms=${p.holdMs}&async=true&webhookEndpoint=${encodeURIComponent(p.hookUrl)}`;
      let outcome;
      let retryAfterMs;
      try {
        const res = await fetch(url, {
          method: "POST",
          headers: {
            authorization: `Bearer ${apiKey}`,
            "content-type": "application/json",
            "idempotency-key": `chaos-${seed}-${p.i}`,
          },
          body: JSON.stringify({ i: p.i }),
          signal: AbortSignal.any([signal, AbortSignal.timeout(REQUEST_TIMEOUT_MS)]),
        });
        const text = await res.text();
        if (res.status === 202) {
          accepted.set(p.i, { runId: JSON.parse(text).run_id, app: p.app, holdMs: p.holdMs });
          return;
        }
        outcome = String(res.status);
        const ra = Number(res.headers.get("retry-after"));
        if (Number.isFinite(ra) && ra > 0) retryAfterMs = ra * 1000;
        if (res.status < 500 && res.status !== 429) {
          gaveUp.set(p.i, `${res.status} ${text.slice(0, 200)}`);
          return;
        }
      } catch (err) {
        if (signal.aborted) {
          gaveUp.set(p.i, "interrupted");
          return;
        }
        outcome = err?.name === "TimeoutError" ? "timeout" : "network";
      }
      retried[outcome] = (retried[outcome] ?? 0) + 1;
      retryCount += 1;
      if (Date.now() - started > GIVE_UP_MS) {
        gaveUp.set(p.i, `gave up after ${outcome}`);
        return;
      }
      const backoff = Math.min(BACKOFF_MAX_MS, BACKOFF_FIRST_MS * 2 ** attempt) * (0.5 + Math.random());
      await new Promise((r) => setTimeout(r, Math.max(backoff, retryAfterMs ?? 0)));
    }
  }

  return {
    /** Submits every planned run at `rate` per second (at most MAX_IN_FLIGHT at once); resolves when each got a 202 or was given up. */
    async submitAll(plan, { rate }) {
      const start = Date.now();
      const pending = new Set();
      for (const p of plan) {
        if (signal.aborted) break;
        const due = start + (p.i / rate) * 1000;
        while (!signal.aborted && (Date.now() < due || inFlight >= MAX_IN_FLIGHT)) {
          await new Promise((r) => setTimeout(r, Math.max(5, Math.min(100, due - Date.now()))));
        }
        inFlight += 1;
        const one = submitOne(p)
          .catch((err) => {
            gaveUp.set(p.i, `harness: ${err.message}`);
            log(`submit ${p.i}: ${err.message}`);
          })
          .finally(() => {
            inFlight -= 1;
            pending.delete(one);
          });
        pending.add(one);
      }
      await Promise.all(pending);
      return { planned: plan.length, accepted, retried, gaveUp, seconds: (Date.now() - start) / 1000 };
    },
    summary() {
      const r = Object.entries(retried).map(([k, v]) => `${k}×${v}`).join(" ");
      return `${accepted.size} accepted, ${inFlight} in flight, ${retryCount} retried${r ? ` (${r})` : ""}`;
    },
  };
}
