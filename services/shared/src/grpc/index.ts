/** gRPC for the mesh: the server bootstrap, clients with deadlines, and the error mapping at this edge. */
export * from "./errors.js";
export * from "./server.js";
export * from "./client.js";
export * from "./targets.js";
export * from "./tls.js";
export * from "./tls-files.js";
export * from "./coalesce.js";
