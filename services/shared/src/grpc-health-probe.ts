/**
 * `node services/shared/dist/grpc-health-probe.js PORT [TIMEOUT_MS]`: asks the
 * gRPC server on 127.0.0.1:PORT for `grpc.health.v1.Health/Check` (service
 * "") with the service's own gRPC TLS settings (LONGHAUL_GRPC_TLS_*;
 * plaintext when unset), and exits 0 when it answers SERVING, 1 otherwise
 * (why on stderr), 2 on a bad command line. An exec probe for Kubernetes,
 * whose built-in grpc probe cannot speak TLS.
 */
import { credentials, makeGenericClientConstructor, type ChannelCredentials, type ChannelOptions, type Client } from "@grpc/grpc-js";
import { service as healthService } from "grpc-health-check";
import { commonEnvSchema, parseEnv } from "./config.js";
import { grpcTlsFiles } from "./grpc/tls-files.js";
import { createGrpcTlsFromFiles } from "./grpc/tls.js";

type HealthClient = Client & {
  check(req: { service: string }, opts: { deadline: number }, cb: (err: Error | null, res?: { status: string }) => void): void;
};
const Health = makeGenericClientConstructor(healthService, "grpc.health.v1.Health") as unknown as new (
  address: string,
  creds: ChannelCredentials,
  options?: Partial<ChannelOptions>,
) => HealthClient;

const schema = commonEnvSchema.pick({ LONGHAUL_GRPC_TLS_CERT: true, LONGHAUL_GRPC_TLS_KEY: true, LONGHAUL_GRPC_TLS_CA: true });

async function probe(argv: string[], env: NodeJS.ProcessEnv): Promise<number> {
  const port = Number(argv[0]);
  const timeoutMs = Number(argv[1] ?? 2_000);
  if (!Number.isInteger(port) || port < 1 || port > 65_535 || !(timeoutMs > 0)) {
    process.stderr.write("usage: grpc-health-probe.js PORT [TIMEOUT_MS]\n");
    return 2;
  }
  const files = grpcTlsFiles(parseEnv(schema, env));
  // Dialled over loopback: the certificate names the Service, not 127.0.0.1;
  // the chain is still verified.
  const tls = files ? createGrpcTlsFromFiles(files, { reloadMs: 0, skipHostnameCheck: true }) : undefined;
  // The TLS server name (SNI) of an IP address is refused by RFC 6066 (Node warns); any name does here.
  const client = tls
    ? new Health(`127.0.0.1:${port}`, tls.channel, { "grpc.ssl_target_name_override": "localhost" })
    : new Health(`127.0.0.1:${port}`, credentials.createInsecure());
  try {
    const status = await new Promise<string>((resolve, reject) => {
      client.check({ service: "" }, { deadline: Date.now() + timeoutMs }, (err, res) => (err ? reject(err) : resolve(res?.status ?? "")));
    });
    if (status === "SERVING") return 0;
    process.stderr.write(`grpc health: ${status}\n`);
    return 1;
  } finally {
    client.close();
    tls?.close();
  }
}

probe(process.argv.slice(2), process.env).then(
  (code) => process.exit(code),
  (err: unknown) => {
    process.stderr.write(`grpc health: ${(err as Error).message}\n`);
    process.exit(1);
  },
);
