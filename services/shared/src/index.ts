export * from "./errors.js";
export * from "./config.js";
export * from "./logger.js";
export * from "./lifecycle.js";
export * from "./metrics.js";
export * from "./telemetry.js";
export * from "./grpc/server.js";
export * from "./grpc/client.js";
export * from "./nats/names.js";
export * from "./nats/connection.js";
export * from "./db/database.js";

export * as runsPb from "./gen/longhaul/v1/runs.js";
export * as appsPb from "./gen/longhaul/v1/apps.js";
export * as schedulerPb from "./gen/longhaul/internal/v1/scheduler.js";
export * as invokerPb from "./gen/longhaul/internal/v1/invoker.js";
export * as notifierPb from "./gen/longhaul/internal/v1/notifier.js";
export * from "./http/webhook-url.js";
export * from "./http/result-url.js";
