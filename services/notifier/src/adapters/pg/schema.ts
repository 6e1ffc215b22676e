import type { ColumnType, Generated } from "kysely";

/** Row types of the notifier's tables (migrations.ts creates them). */

export interface WebhookSecretsTable {
  project_id: string;
  secret: string;
  previous_secret: string | null;
  previous_expires_at: Date | null;
  created_at: Generated<Date>;
  rotated_at: Date | null;
}

export interface WebhookDeliveriesTable {
  run_id: string;
  project_id: string;
  webhook_id: string;
  url: string;
  state: "pending" | "delivered" | "failed";
  attempts_made: Generated<number>;
  /** attempts_made when the current retry series began (0, or at the last redelivery). */
  series_start: Generated<number>;
  next_attempt_at: Date | null;
  /** A notifier holds the row for one attempt until then (its lease). */
  locked_until: Date | null;
  /** Names the holder of the lease, so that a late writer whose lease ran out writes nothing. */
  lease_token: string | null;
  last_error: string | null;
  /** The state last told to the scheduler (UpdateWebhookState); null before the first. */
  reported_state: string | null;
  created_at: Generated<Date>;
  updated_at: Generated<Date>;
}

export interface WebhookAttemptsTable {
  run_id: string;
  attempt: number;
  started_at: Date;
  duration_ms: number;
  status_code: number;
  error: string | null;
  response_excerpt: string | null;
}

export interface NotifierDatabase {
  webhook_secrets: WebhookSecretsTable;
  webhook_deliveries: WebhookDeliveriesTable;
  webhook_attempts: WebhookAttemptsTable;
}

export type { ColumnType };
