import { describe, expect, it } from "vitest";
import { LonghaulError } from "../errors.js";
import { notifierPb } from "../proto/index.js";
import { callUnary, createClient, internalMetadata } from "./client.js";

describe("callUnary", () => {
  it("on a client closed at shutdown is unavailable (503), not a plain Error (500)", async () => {
    const c = createClient(notifierPb.NotifierInternalServiceClient, "127.0.0.1:9", {});
    c.close();
    const call = callUnary(c.getWebhookSecret.bind(c), { project: "p" }, internalMetadata("t".repeat(24)), 1_000);
    await expect(call).rejects.toBeInstanceOf(LonghaulError);
    await expect(call).rejects.toMatchObject({ code: "unavailable" });
  });
});
