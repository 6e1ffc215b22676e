import { callUnary, createClient, internalMetadata, type GrpcTls } from "@longhaul/shared/grpc";
import { notifierPb } from "@longhaul/shared/proto";
import type { WebhooksPort } from "../../core/ports.js";

const CALL_TIMEOUT_MS = 10_000;

/** NotifierInternalService as the gateway's webhooks port (over TLS when `tls` is given); `close()` drops the channel. */
export function createNotifierClient(addresses: string, internalToken: string, tls?: GrpcTls): WebhooksPort & { close(): void } {
  const client = createClient(notifierPb.NotifierInternalServiceClient, addresses, {
    tls,
    // Reads; a rotation or a redelivery is never sent twice.
    retry: [
      notifierPb.NotifierInternalServiceService.getWebhookSecret.path,
      notifierPb.NotifierInternalServiceService.listDeliveries.path,
    ],
  });
  // The notifier trusts the project we name: only ever the authenticated caller's.
  const md = () => internalMetadata(internalToken);
  return {
    getSecret: (project, opts) =>
      callUnary(client.getWebhookSecret.bind(client), { project }, md(), CALL_TIMEOUT_MS, opts?.signal),
    rotateSecret: (project, opts) =>
      callUnary(client.rotateWebhookSecret.bind(client), { project }, md(), CALL_TIMEOUT_MS, opts?.signal),
    async listDeliveries(project, runId, opts) {
      const res = await callUnary(client.listDeliveries.bind(client), { project, runId }, md(), CALL_TIMEOUT_MS, opts?.signal);
      return res.delivery;
    },
    async redeliver(project, runId, opts) {
      const res = await callUnary(client.redeliver.bind(client), { project, runId }, md(), CALL_TIMEOUT_MS, opts?.signal);
      return res.delivery;
    },
    close: () => client.close(),
  };
}
