/** File text by path from the repo root, as scripts/generate-client.mjs writes it. */
export function generateClientFiles(): Promise<Record<string, string>>;
