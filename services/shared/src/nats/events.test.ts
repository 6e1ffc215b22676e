import { describe, expect, it } from "vitest";
import {
  decodeCancel,
  decodeDispatch,
  decodeRunChanged,
  decodeRunFinished,
  encodeCancel,
  encodeDispatch,
  encodeRunChanged,
  encodeRunFinished,
} from "./events.js";

const RUN = "0190c0de-0000-7000-8000-00000000c0de";
const json = (v: unknown) => new TextEncoder().encode(JSON.stringify(v));

describe("NATS messages", () => {
  it("round-trip as protobuf", () => {
    expect(decodeDispatch(encodeDispatch({ runId: RUN, attempt: 2 }))).toEqual({ runId: RUN, attempt: 2 });
    expect(decodeCancel(encodeCancel(RUN))).toBe(RUN);
    expect(decodeRunChanged(encodeRunChanged(RUN, "running"))).toEqual({ runId: RUN, status: "running" });
    const delivery = {
      webhookUrl: "https://hooks.example/x",
      statusCode: 200,
      contentType: "application/json",
      body: Buffer.from([0, 1, 2, 255]),
      bodyTruncated: false,
      errorCode: "",
      errorMessage: "",
      traceparent: "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
    };
    const finished = decodeRunFinished(encodeRunFinished({ runId: RUN, project: "p", app: "a", status: "succeeded", delivery, republished: false }));
    expect(finished).toMatchObject({ runId: RUN, project: "p", app: "a", status: "succeeded", republished: false });
    expect(Buffer.from(finished!.delivery!.body)).toEqual(delivery.body);
    const again = decodeRunFinished(encodeRunFinished({ runId: RUN, project: "p", app: "a", status: "failed", republished: true }));
    expect(again?.delivery).toBeUndefined();
    expect(again?.republished).toBe(true);
  });

  it("read the JSON of releases before 0.2.0", () => {
    expect(decodeDispatch(json({ run_id: RUN, attempt: 1 }))).toEqual({ runId: RUN, attempt: 1 });
    expect(decodeCancel(json({ run_id: RUN }))).toBe(RUN);
    expect(decodeRunChanged(json({ run_id: RUN, status: "queued" }))).toEqual({ runId: RUN, status: "queued" });
    const finished = decodeRunFinished(
      json({
        run_id: RUN,
        project: "p",
        app: "a",
        status: "succeeded",
        delivery: {
          webhook_url: "https://hooks.example/x",
          status_code: 201,
          content_type: "text/plain",
          body_base64: Buffer.from("hi").toString("base64"),
          body_truncated: true,
          error_code: "",
          error_message: "",
          traceparent: "",
        },
      }),
    );
    // An older scheduler cannot say whether it sent the event again: taken as sent again.
    expect(finished).toMatchObject({ runId: RUN, project: "p", delivery: { statusCode: 201, bodyTruncated: true }, republished: true });
    expect(Buffer.from(finished!.delivery!.body).toString()).toBe("hi");
  });

  it("read anything else as nothing", () => {
    expect(decodeDispatch(json({ attempt: 1 }))).toBeUndefined();
    expect(decodeDispatch(json({ run_id: RUN, attempt: "1" }))).toBeUndefined();
    expect(decodeDispatch(new TextEncoder().encode("{not json"))).toBeUndefined();
    expect(decodeDispatch(new Uint8Array([0xff, 0xff, 0xff]))).toBeUndefined();
    expect(decodeCancel(new Uint8Array(0))).toBeUndefined();
    expect(decodeRunFinished(json({ run_id: RUN }))).toBeUndefined();
    expect(decodeRunFinished(json({ run_id: RUN, project: "p", delivery: { status_code: "x" } }))).toBeUndefined();
  });
});
