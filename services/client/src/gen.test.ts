// The client's types are generated from the ingress's OpenAPI document; this
// fails when the committed copy is not what `npm run generate:client` writes
// (the document changed and the client was not regenerated).
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { generateClientFiles } from "../../../scripts/lib/client-gen.mjs";

const root = fileURLToPath(new URL("../../../", import.meta.url));

describe("generated client files", () => {
  it("match the ingress's OpenAPI document (run `npm run generate:client`)", async () => {
    const files = await generateClientFiles();
    expect(Object.keys(files).length).toBeGreaterThan(0);
    for (const [rel, text] of Object.entries(files)) {
      expect(readFileSync(`${root}/${rel}`, "utf8"), rel).toBe(text);
    }
  });
});
