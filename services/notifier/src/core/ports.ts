/**
 * The notifier core's view of the world: what it stores, what it asks the
 * scheduler, and how it sends. Adapters in ../adapters implement these with
 * Postgres, gRPC and undici; unit tests use plain in-memory fakes.
 */

/** A delivery's state, as stored and as reported to the scheduler. */
export type DeliveryState = "pending" | "delivered" | "failed";

/** A run's status as the scheduler names it (lower case, as in the HTTP API). */
export type RunStatusName =
  | "queued"
  | "dispatched"
  | "running"
  | "succeeded"
  | "failed"
  | "timed_out"
  | "cancelled"
  | "expired"
  | "unspecified";

/** One run's webhook delivery: one row per run. */
export interface Delivery {
  runId: string;
  projectId: string;
  /** `webhook-id` header: stable across attempts so receivers can drop duplicates. */
  webhookId: string;
  url: string;
  state: DeliveryState;
  attemptsMade: number;
  /** attemptsMade when the current series began (0, or at the last redelivery): the retry schedule counts from it. */
  seriesStart: number;
  nextAttemptAt: Date | null;
  lastError: string | null;
  createdAt: Date;
  updatedAt: Date;
}

/** One POST to the receiver, as recorded. */
export interface DeliveryAttempt {
  runId: string;
  attempt: number;
  startedAt: Date;
  durationMs: number;
  /** 0 when no HTTP answer came back. */
  statusCode: number;
  error: string | null;
  responseExcerpt: string | null;
}

/** How an attempt leaves its delivery. */
export interface AttemptOutcome {
  state: DeliveryState;
  /** Milliseconds from now until the next attempt; null unless still pending. */
  nextAttemptInMs: number | null;
  lastError: string | null;
}

/** Postgres in production: deliveries, their attempts and their leases. */
export interface DeliveryStore {
  /**
   * Inserts the delivery unless the run already has one. With `lease`, the new
   * row is leased under `lease.token` for `lease.leaseMs` (its first attempt is
   * the caller's: no claim needed). Resolves with the new row once it is
   * committed, or null when the run had a delivery already.
   */
  create(
    d: { runId: string; projectId: string; webhookId: string; url: string; firstAttemptInMs: number },
    lease?: { token: string; leaseMs: number },
  ): Promise<Delivery | null>;
  /**
   * Leases up to `limit` pending deliveries that are due and not leased by
   * another notifier (`for update skip locked`), for `leaseMs`, under `token`.
   * With `runId`, leases only that one.
   */
  claimDue(limit: number, leaseMs: number, token: string, runId?: string): Promise<Delivery[]>;
  /**
   * Records an attempt (null: none was made) and the delivery's outcome in one
   * transaction, only while the lease `token` still holds. False when the
   * lease was lost (nothing written).
   */
  finishAttempt(runId: string, token: string, attempt: DeliveryAttempt | null, outcome: AttemptOutcome): Promise<boolean>;
  /**
   * Records a delivery together with its first attempt, made before the
   * delivery was recorded (one commit for both). False when the run had a
   * delivery already (nothing written: the attempt repeated another's).
   */
  createAttempted(
    d: { runId: string; projectId: string; webhookId: string; url: string },
    attempt: DeliveryAttempt,
    outcome: AttemptOutcome,
  ): Promise<boolean>;
  /** Gives a lease back without an attempt; the delivery is due again in `retryInMs`. */
  release(runId: string, token: string, retryInMs: number, lastError: string): Promise<void>;
  /** The delivery and its attempts, oldest first, or null. */
  get(runId: string): Promise<{ delivery: Delivery; attempts: DeliveryAttempt[] } | null>;
  /**
   * Makes the delivery pending and due now, starting a new retry series.
   * "locked" while an attempt is in flight; null when there is no delivery.
   */
  redeliver(runId: string): Promise<Delivery | "locked" | null>;
  /**
   * Tells the scheduler the states of those of `runIds` it has not been told
   * yet: `report` gets them (one call for all) and resolves with the run ids
   * it told. The rows are held meanwhile, so that two reports of one run never
   * cross; rows another notifier holds are skipped. Resolves with the run ids
   * marked told.
   */
  reportStates(runIds: string[], report: (states: { runId: string; state: DeliveryState }[]) => Promise<string[]>): Promise<string[]>;
  /** Run ids whose state the scheduler has not been told yet. */
  listUnreported(limit: number): Promise<string[]>;
}

/** A project's signing secrets. */
export interface WebhookSecrets {
  projectId: string;
  secret: string;
  previousSecret: string | null;
  previousExpiresAt: Date | null;
}

export interface SecretStore {
  /** The project's secrets, creating `fresh()` as its first secret when it has none. */
  getOrCreate(projectId: string, fresh: () => string): Promise<WebhookSecrets>;
  /** Replaces the secret by `next`; the old one keeps signing for `overlapSeconds`. */
  rotate(projectId: string, next: string, overlapSeconds: number): Promise<WebhookSecrets>;
}

/** What the scheduler tells about a finished run (GetDeliveryInput). */
export interface DeliveryInput {
  runId: string;
  project: string;
  app: string;
  webhookUrl: string;
  status: RunStatusName;
  /** The app's HTTP status; 0 when it never answered. */
  statusCode: number;
  contentType: string;
  body: Uint8Array;
  bodyTruncated: boolean;
  errorCode: string;
  errorMessage: string;
  traceparent: string;
  /** The run's labels; a compatibility API's label picks that platform's webhook body. */
  labels?: Record<string, string>;
  createdAt?: Date;
  startedAt?: Date;
  finishedAt?: Date;
  /** The request body the app was sent. */
  requestBody?: Uint8Array;
}

/** The scheduler, over gRPC in production. */
export interface RunSource {
  /** Null when the run does not exist (any more). */
  getDeliveryInput(runId: string): Promise<DeliveryInput | null>;
  /**
   * Tells the scheduler webhook states, many at once; resolves with the run
   * ids told (a run it no longer has counts as told: nobody is left to tell).
   * Throws when it could tell none.
   */
  updateWebhookStates(states: { runId: string; state: DeliveryState }[]): Promise<string[]>;
}

/** One signed POST, ready to send. */
export interface WebhookRequest {
  url: string;
  headers: Record<string, string>;
  body: Buffer;
  /** The run's W3C traceparent, so the POST joins the run's trace. */
  traceparent: string;
}

/** What came of one POST. The sender never throws: every failure is a result. */
export type SendResult =
  | {
      kind: "response";
      statusCode: number;
      /** The receiver's Retry-After header, if any. */
      retryAfter: string | null;
      /** The first bytes of the answer, as text. */
      excerpt: string;
      /** Set when the answer's body failed after the status came (e.g. timed out mid-body). */
      bodyError?: string;
    }
  | { kind: "network"; message: string }
  | { kind: "timeout"; message: string }
  /** The target resolved to a forbidden address, or could not be parsed. */
  | { kind: "refused"; message: string };

/** HTTP out, pinned to checked addresses, in production. */
export interface WebhookSender {
  send(request: WebhookRequest): Promise<SendResult>;
  /** Closes kept-alive connections. */
  close?(): Promise<void>;
}

/** Counters the core reports to; prom-client in production. */
export interface NotifierMetrics {
  attempt(outcome: "delivered" | "retrying" | "failed", durationMs: number): void;
}
