/** NATS and JetStream for the mesh: names, connection, streams, consumers and trace headers. */
export * from "./names.js";
export * from "./connection.js";
export * from "./leader-lease.js";
export * from "./events.js";
