import { createClient, createGrpcServer, internalMetadata, type GrpcServer } from "@longhaul/shared/grpc";
import type { Logger } from "@longhaul/shared/logger";
import { schedulerPb } from "@longhaul/shared/proto";

const TOKEN = "internal-server-test-token";

/**
 * A real gRPC server on loopback serving the given methods of
 * SchedulerInternalService (internal token required), and a client of it.
 * `stop` closes both (call it after each test).
 */
export function internalServers(log: Logger) {
  let server: GrpcServer | undefined;
  let client: schedulerPb.SchedulerInternalServiceClient | undefined;
  const stop = async () => {
    client?.close();
    await server?.stop(100);
    server = undefined;
    client = undefined;
  };
  const serve = async (methods: object) => {
    server = createGrpcServer({ log, address: "127.0.0.1:0", internalToken: TOKEN });
    server.add(schedulerPb.SchedulerInternalServiceService, methods as never, { internal: true });
    const port = await server.start();
    client = createClient(schedulerPb.SchedulerInternalServiceClient, `127.0.0.1:${port}`);
    return { client, metadata: internalMetadata(TOKEN) };
  };
  return { serve, stop };
}
