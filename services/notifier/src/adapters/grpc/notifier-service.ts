import { UUID } from "@longhaul/shared/domain";
import { LonghaulError } from "@longhaul/shared/errors";
import type { Logger } from "@longhaul/shared/logger";
import { unary } from "@longhaul/shared/grpc";
import { notifierPb } from "@longhaul/shared/proto";
import type { NotifierCore } from "../../core/notifier-core.js";
import type { Delivery, DeliveryAttempt, WebhookSecrets } from "../../core/ports.js";

function secretsMessage(s: WebhookSecrets): notifierPb.GetWebhookSecretResponse {
  return {
    secret: s.secret,
    previousSecret: s.previousSecret ?? "",
    previousExpiresAt: s.previousExpiresAt ?? undefined,
  };
}

function deliveryMessage(d: Delivery, attempts: DeliveryAttempt[]): notifierPb.Delivery {
  return {
    runId: d.runId,
    webhookId: d.webhookId,
    url: d.url,
    state: d.state,
    attemptsMade: d.attemptsMade,
    nextAttemptAt: d.state === "pending" ? (d.nextAttemptAt ?? undefined) : undefined,
    attempts: attempts.map((a) => ({
      attempt: a.attempt,
      startedAt: a.startedAt,
      durationMs: a.durationMs,
      statusCode: a.statusCode,
      error: a.error ?? "",
      responseExcerpt: a.responseExcerpt ?? "",
    })),
  };
}

function required(value: string, name: string): string {
  if (!value) throw new LonghaulError("invalid_argument", `${name} is required`);
  return value;
}


function runIdOf(value: string): string {
  // Not a uuid: no such run (and Postgres would refuse the cast).
  if (!UUID.test(required(value, "run_id"))) throw new LonghaulError("not_found", "this run has no webhook delivery");
  return value;
}

/**
 * NotifierInternalService over the core; added to the gRPC server with
 * `{ internal: true }`, so only the mesh (the ingress) may call it.
 */
export function notifierServiceImpl(core: NotifierCore, log: Logger) {
  return {
    getWebhookSecret: unary(log, "GetWebhookSecret", async (req: notifierPb.GetWebhookSecretRequest) =>
      secretsMessage(await core.getSecret(required(req.project, "project"))),
    ),
    rotateWebhookSecret: unary(log, "RotateWebhookSecret", async (req: notifierPb.RotateWebhookSecretRequest) =>
      secretsMessage(await core.rotateSecret(required(req.project, "project"))),
    ),
    listDeliveries: unary(log, "ListDeliveries", async (req: notifierPb.ListDeliveriesRequest) => {
      const { delivery, attempts } = await core.listDeliveries(required(req.project, "project"), runIdOf(req.runId));
      return { delivery: deliveryMessage(delivery, attempts) };
    }),
    redeliver: unary(log, "Redeliver", async (req: notifierPb.RedeliverRequest) => {
      const { delivery, attempts } = await core.redeliver(required(req.project, "project"), runIdOf(req.runId));
      return { delivery: deliveryMessage(delivery, attempts) };
    }),
  };
}
