/** Postgres for the services: kysely pools with error listeners, migrations, and a health probe. */
export * from "./database.js";
export * from "./migrations.js";
export * from "./postgres-probe.js";
export * from "./group-commit.js";
