/**
 * The generated protobuf messages and gRPC service definitions (buf +
 * ts-proto, from proto/), one namespace per file, and the mapping of the
 * domain's names to the proto enums. The generated files load grpc-js.
 */
export * as runsPb from "../gen/longhaul/v1/runs.js";
export * as appsPb from "../gen/longhaul/v1/apps.js";
export * as adminPb from "../gen/longhaul/v1/admin.js";
export * as schedulerPb from "../gen/longhaul/internal/v1/scheduler.js";
export * as invokerPb from "../gen/longhaul/internal/v1/invoker.js";
export * as notifierPb from "../gen/longhaul/internal/v1/notifier.js";
export * from "./status.js";
export * as eventsPb from "../gen/longhaul/internal/v1/events.js";
