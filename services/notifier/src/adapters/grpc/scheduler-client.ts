import { LonghaulError } from "@longhaul/shared/errors";
import { callUnary, createClient, internalMetadata, type GrpcTls } from "@longhaul/shared/grpc";
import { runStatusFromProto, schedulerPb, webhookStateToProto } from "@longhaul/shared/proto";
import type { RunSource } from "../../core/ports.js";

/** gRPC status UNIMPLEMENTED: the scheduler does not know the method. */
const GRPC_UNIMPLEMENTED = 12;

/** Options of {@link createSchedulerRunSource}. */
export interface SchedulerRunSourceOptions {
  /** Address list of the scheduler copies (SCHEDULER_ADDR). */
  address: string;
  internalToken: string;
  /** Deadline of each call. */
  timeoutMs: number;
  /** Connect with TLS; absent: plaintext. */
  tls?: GrpcTls | undefined;
}

/**
 * The scheduler as the notifier's {@link RunSource}, over
 * SchedulerInternalService. Every call has a deadline; a missing run
 * (NOT_FOUND) is null, anything else is thrown as a LonghaulError.
 */
export function createSchedulerRunSource(options: SchedulerRunSourceOptions): RunSource & { close(): void } {
  // A read is sent again to another copy when one goes down mid-call.
  const client = createClient(schedulerPb.SchedulerInternalServiceClient, options.address, {
    retry: [schedulerPb.SchedulerInternalServiceService.getDeliveryInput.path],
    tls: options.tls,
  });
  const metadata = () => internalMetadata(options.internalToken);
  let batched = true;

  return {
    async getDeliveryInput(runId) {
      let res: schedulerPb.GetDeliveryInputResponse;
      try {
        res = await callUnary(client.getDeliveryInput.bind(client), { runId }, metadata(), options.timeoutMs);
      } catch (err) {
        if (err instanceof LonghaulError && err.code === "not_found") return null;
        throw err;
      }
      return {
        runId: res.runId,
        project: res.project,
        app: res.app,
        webhookUrl: res.webhookUrl,
        status: runStatusFromProto(res.status) ?? "unspecified",
        statusCode: res.statusCode,
        contentType: res.contentType,
        body: res.body,
        bodyTruncated: res.bodyTruncated,
        errorCode: res.errorCode,
        errorMessage: res.errorMessage,
        traceparent: res.traceparent,
        labels: res.labels,
        createdAt: res.createdAt,
        startedAt: res.startedAt,
        finishedAt: res.finishedAt,
        requestBody: res.requestBody,
      };
    },

    async updateWebhookStates(states) {
      if (batched) {
        try {
          // One call for all; runs the scheduler no longer has count as told.
          await callUnary(
            client.updateWebhookStates.bind(client),
            { states: states.map(({ runId, state }) => ({ runId, state: webhookStateToProto(state) })) },
            metadata(),
            options.timeoutMs,
          );
          return states.map((s) => s.runId);
        } catch (err) {
          if (!(err instanceof LonghaulError && (err.cause as { code?: unknown } | undefined)?.code === GRPC_UNIMPLEMENTED)) throw err;
          batched = false; // a scheduler older than UpdateWebhookStates: one call per run from now on
        }
      }
      // Calls in parallel over the one HTTP/2 connection.
      const results = await Promise.allSettled(
        states.map(({ runId, state }) =>
          callUnary(client.updateWebhookState.bind(client), { runId, state: webhookStateToProto(state) }, metadata(), options.timeoutMs),
        ),
      );
      const told: string[] = [];
      let failure: unknown;
      results.forEach((r, i) => {
        // A run the scheduler no longer has (retention) has nobody left to tell.
        if (r.status === "fulfilled" || (r.reason instanceof LonghaulError && r.reason.code === "not_found")) told.push(states[i]!.runId);
        else failure ??= r.reason;
      });
      if (told.length === 0 && failure !== undefined) throw failure;
      return told;
    },

    close: () => client.close(),
  };
}
