import { sql } from "@longhaul/shared/db";
import type { Kysely, Selectable } from "kysely";
import type { SecretStore, WebhookSecrets } from "../../core/ports.js";
import type { NotifierDatabase, WebhookSecretsTable } from "./schema.js";

function toSecrets(row: Selectable<WebhookSecretsTable>): WebhookSecrets {
  return {
    projectId: row.project_id,
    secret: row.secret,
    previousSecret: row.previous_secret,
    previousExpiresAt: row.previous_expires_at,
  };
}

/**
 * Project signing secrets in Postgres. They are kept in clear: an HMAC key
 * must be readable to sign, and the table is the notifier's alone.
 */
export function createPgSecretStore(db: Kysely<NotifierDatabase>): SecretStore {
  const read = (projectId: string) =>
    db.selectFrom("webhook_secrets").selectAll().where("project_id", "=", projectId).executeTakeFirst();

  return {
    async getOrCreate(projectId, fresh) {
      const found = await read(projectId);
      if (found) return toSecrets(found);
      // Two notifiers may create at once; the first insert wins and both read it.
      await db
        .insertInto("webhook_secrets")
        .values({ project_id: projectId, secret: fresh() })
        .onConflict((oc) => oc.column("project_id").doNothing())
        .execute();
      const row = await read(projectId);
      if (!row) throw new Error(`webhook secret of ${projectId} vanished after insert`);
      return toSecrets(row);
    },

    async rotate(projectId, next, overlapSeconds) {
      const row = await db
        .insertInto("webhook_secrets")
        .values({ project_id: projectId, secret: next })
        .onConflict((oc) =>
          oc.column("project_id").doUpdateSet({
            previous_secret: sql<string>`webhook_secrets.secret`,
            previous_expires_at: sql<Date>`now() + make_interval(secs => ${overlapSeconds})`,
            secret: sql<string>`excluded.secret`,
            rotated_at: sql<Date>`now()`,
          }),
        )
        .returningAll()
        .executeTakeFirstOrThrow();
      return toSecrets(row);
    },
  };
}
