// Types of kubectl.mjs, for the TypeScript tests that import it.

/** Fetches and unpacks the pinned kubectl (once); returns its path. */
export declare function fetchKubectl(): string;
/** Path of the pinned kubectl (fetched on first use). */
export declare function kubectlPath(): string;
