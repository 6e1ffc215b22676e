import { commonEnvSchema, parseEnv, schemaEnvSchema, z } from "@longhaul/shared/config";

/** The migrate command's settings; each variable is listed in the README's settings table. */
const schema = z.object({
  DATABASE_URL: commonEnvSchema.shape.DATABASE_URL,
  /**
   * Where the migrate command connects instead of DATABASE_URL: Postgres
   * itself, when the services go through a pooler (PgBouncer in transaction
   * mode) that cannot hold the migrator's session. @default DATABASE_URL
   */
  LONGHAUL_MIGRATE_DATABASE_URL: z.string().optional(),
  LONGHAUL_ENSURE_DATABASE: schemaEnvSchema.shape.LONGHAUL_ENSURE_DATABASE,
  LOG_LEVEL: commonEnvSchema.shape.LOG_LEVEL,
});

export type MigrateConfig = z.infer<typeof schema>;

export function loadConfig(env: NodeJS.ProcessEnv): Readonly<MigrateConfig> {
  return parseEnv(schema, env);
}
