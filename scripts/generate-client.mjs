// Writes @longhaul/client's copy of the OpenAPI document (services/client/openapi.json)
// and the TypeScript types generated from it by openapi-typescript
// (services/client/src/gen/openapi.ts). Run by `npm run generate:client` after a build;
// services/client/src/gen.test.ts fails when the committed files are not what this writes.
import { writeFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { generateClientFiles } from "./lib/client-gen.mjs";

const root = fileURLToPath(new URL("..", import.meta.url));
const files = await generateClientFiles();
for (const [rel, text] of Object.entries(files)) {
  writeFileSync(`${root}/${rel}`, text);
  console.log(`wrote ${rel}`);
}
