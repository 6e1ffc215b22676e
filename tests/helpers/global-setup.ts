import net from "node:net";

function reachable(url: string, defaultPort: number): Promise<boolean> {
  const u = new URL(url);
  return new Promise((resolve) => {
    const socket = net.connect({ host: u.hostname, port: Number(u.port || defaultPort) });
    socket.setTimeout(2000);
    socket.once("connect", () => {
      socket.destroy();
      resolve(true);
    });
    socket.once("error", () => resolve(false));
    socket.once("timeout", () => {
      socket.destroy();
      resolve(false);
    });
  });
}

/**
 * Fails the whole run loudly when Postgres or NATS is missing: tests never
 * skip for want of a dependency (`npm test` starts them via scripts/with-deps.mjs).
 */
export default async function setup(): Promise<void> {
  const db = process.env.DATABASE_URL;
  const nats = process.env.NATS_URL;
  if (!db || !nats) {
    throw new Error("DATABASE_URL and NATS_URL must be set: run the tests with `npm test`");
  }
  if (!(await reachable(db, 5432))) throw new Error(`Postgres does not answer at ${db}`);
  if (!(await reachable(nats.split(",")[0]!, 4222))) throw new Error(`NATS does not answer at ${nats}`);
}
