// Lint that guards what the compiler does not: promises that are neither
// awaited nor handled, and imports that cross the layers of docs/ARCHITECTURE.md
// ("Module map"). Type-aware rules read one program, tsconfig.test.json, which
// holds every TypeScript file of services/ and tests/ (the tests type-check
// with it too: `tsc -p tsconfig.test.json`).
import { defineConfig } from "eslint/config";
import tseslint from "typescript-eslint";

/** The services: processes that talk over gRPC and NATS only. */
const SERVICES = ["scheduler", "invoker", "notifier", "ingress"];
/** The published client library, and the CLI built on it (which may import it, and nothing else of ours). */
const PACKAGES = ["client", "cli"];
/** The migrate command: it applies the services' migration sets, and imports nothing else of theirs. */
const COMMANDS = ["migrate"];
const ALL = [...SERVICES, ...PACKAGES, ...COMMANDS];

/**
 * Packages and shared modules that are transports: the edges, never a core's
 * business. A regular expression on the module name, so that a package name
 * never matches a relative path (`./pg/` is not `pg`).
 */
const TRANSPORTS =
  "^(@grpc/.*|@nats-io/.*|pg|pg-.*|kysely(/.*)?|undici|(node:)?(http|https|http2|net|tls|dgram)|prom-client|@longhaul/shared/(grpc|nats|db|service|metrics|egress-agent))$";

/** Imports of another service, by package name or by a relative path out of this one. */
function otherServices(self) {
  const others = ALL.filter((s) => s !== self && !(self === "cli" && s === "client"));
  return [
    {
      group: others.map((s) => `@longhaul/${s}`).concat(others.map((s) => `@longhaul/${s}/*`)),
      message: "Services never import each other: they talk over gRPC/NATS, and share code only through @longhaul/shared.",
    },
    {
      regex: `^(\\.\\./)+(${others.join("|")})/`,
      message: "Services never import each other: they talk over gRPC/NATS, and share code only through @longhaul/shared.",
    },
  ];
}

/** Every service: no other service, no deep import into @longhaul/shared, nothing imports main.ts. */
function servicePatterns(self) {
  return [
    ...otherServices(self),
    {
      group: ["@longhaul/shared/src/*", "@longhaul/shared/dist/*"],
      message: "Import @longhaul/shared through its subpath exports (package.json \"exports\").",
    },
    { regex: "(^|/)main\\.js$", message: "main.ts wires; nothing imports it." },
  ];
}

/**
 * A core: no transport, no adapter, no config or main (main.ts hands the core
 * its ports). Its unit tests may use the service's fakes in testing/.
 */
function corePatterns(self, { test }) {
  return [
    ...servicePatterns(self),
    {
      regex: TRANSPORTS,
      message: "core/ knows no transport: take a port (core/ports.ts) and let an adapter implement it.",
    },
    {
      regex: test ? "(^|/)adapters/|(^|/)(config|metrics)\\.js$" : "(^|/)(adapters|testing)/|(^|/)(config|metrics)\\.js$",
      message: "core/ never imports adapters/, config.ts or metrics: main.ts wires them to the core's ports.",
    },
  ];
}

const restricted = (patterns) => ({ "no-restricted-imports": ["error", { patterns }] });

export default defineConfig(
  {
    ignores: ["**/node_modules/**", "**/dist/**", "**/gen/**", "services/shared/descriptors/**", "**/*.mjs", "**/*.js", "**/*.cjs"],
  },
  {
    files: ["**/*.ts"],
    languageOptions: {
      parser: tseslint.parser,
      parserOptions: { project: ["./tsconfig.test.json"], tsconfigRootDir: import.meta.dirname },
    },
    plugins: { "@typescript-eslint": tseslint.plugin },
    linterOptions: { reportUnusedDisableDirectives: "error" },
    rules: {
      "@typescript-eslint/no-floating-promises": "error",
      "@typescript-eslint/no-misused-promises": "error",
      "@typescript-eslint/await-thenable": "error",
      "@typescript-eslint/require-await": "off",
    },
  },
  // shared imports no service.
  {
    files: ["services/shared/src/**/*.ts"],
    rules: restricted([
      {
        group: ALL.map((s) => `@longhaul/${s}`).concat(ALL.map((s) => `@longhaul/${s}/*`)),
        message: "@longhaul/shared is below every service: it imports none.",
      },
      { regex: `^(\\.\\./)+(${ALL.join("|")})/`, message: "@longhaul/shared is below every service: it imports none." },
    ]),
  },
  {
    files: ["services/migrate/src/**/*.ts"],
    rules: restricted([
      {
        regex: "^@longhaul/(?!shared/)(?!(scheduler|notifier)/adapters/pg/migrations$)",
        message: "longhaul-migrate imports a service only for its migration set (adapters/pg/migrations).",
      },
      { regex: `^(\\.\\./)+(${ALL.join("|")})/`, message: "Import a service's migration set by its package export." },
    ]),
  },
  ...[...SERVICES, ...PACKAGES].map((s) => ({ files: [`services/${s}/src/**/*.ts`, `services/${s}/test/**/*.ts`], rules: restricted(servicePatterns(s)) })),
  ...SERVICES.flatMap((s) => [
    { files: [`services/${s}/src/core/**/*.ts`], rules: restricted(corePatterns(s, { test: false })) },
    { files: [`services/${s}/src/core/**/*.test.ts`], rules: restricted(corePatterns(s, { test: true })) },
  ]),
);
