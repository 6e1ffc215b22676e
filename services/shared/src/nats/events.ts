import * as eventsPb from "../gen/longhaul/internal/v1/events.js";

/**
 * The messages the services pass over NATS (proto/longhaul/internal/v1/events.proto),
 * written as protobuf. Readers also take the JSON of releases before 0.2.0
 * (its first byte is `{`; a protobuf message of these types never starts
 * with it: its first byte is field 1's tag, 0x0a), so that during a rolling
 * update a message from an older copy is still understood. A payload that is
 * neither, or lacks a run id, reads as undefined.
 */
export type DispatchEvent = eventsPb.DispatchEvent;
export type RunFinishedEvent = eventsPb.RunFinishedEvent;
export type FinishedDelivery = eventsPb.FinishedDelivery;

const OPEN_BRACE = 0x7b;
const decoder = new TextDecoder();

function legacyJson(data: Uint8Array): Record<string, unknown> | undefined {
  if (data[0] !== OPEN_BRACE) return undefined;
  try {
    const v = JSON.parse(decoder.decode(data)) as unknown;
    return typeof v === "object" && v !== null && !Array.isArray(v) ? (v as Record<string, unknown>) : undefined;
  } catch {
    return undefined;
  }
}

const str = (v: unknown): string => (typeof v === "string" ? v : "");
const int = (v: unknown): number | undefined => (typeof v === "number" && Number.isInteger(v) ? v : undefined);

/** Decodes protobuf, or undefined when the bytes are not a message of the type. */
function fromProto<T>(decode: (bytes: Uint8Array) => T, data: Uint8Array): T | undefined {
  try {
    return decode(data);
  } catch {
    return undefined;
  }
}

export function encodeDispatch(e: DispatchEvent): Uint8Array {
  return eventsPb.DispatchEvent.encode(e).finish();
}

export function decodeDispatch(data: Uint8Array): DispatchEvent | undefined {
  const json = legacyJson(data);
  const e = json ? { runId: str(json.run_id), attempt: int(json.attempt) ?? -1 } : fromProto(eventsPb.DispatchEvent.decode, data);
  if (!e || e.runId === "" || e.attempt < 0) return undefined;
  return e;
}

export function encodeRunFinished(e: RunFinishedEvent): Uint8Array {
  return eventsPb.RunFinishedEvent.encode(e).finish();
}

export function decodeRunFinished(data: Uint8Array): RunFinishedEvent | undefined {
  const json = legacyJson(data);
  const e = json ? finishedFromLegacy(json) : fromProto(eventsPb.RunFinishedEvent.decode, data);
  if (!e || e.runId === "" || e.project === "") return undefined;
  return e;
}

function finishedFromLegacy(json: Record<string, unknown>): RunFinishedEvent | undefined {
  const d = json.delivery;
  let delivery: FinishedDelivery | undefined;
  if (d !== undefined) {
    if (typeof d !== "object" || d === null) return undefined;
    const o = d as Record<string, unknown>;
    const statusCode = int(o.status_code);
    if (statusCode === undefined || typeof o.body_base64 !== "string") return undefined;
    delivery = {
      webhookUrl: str(o.webhook_url),
      statusCode,
      contentType: str(o.content_type),
      body: Buffer.from(o.body_base64, "base64"),
      bodyTruncated: o.body_truncated === true,
      errorCode: str(o.error_code),
      errorMessage: str(o.error_message),
      traceparent: str(o.traceparent),
    };
  }
  // An older scheduler does not say whether it sent the event again: as if it had.
  return { runId: str(json.run_id), project: str(json.project), app: str(json.app), status: str(json.status), delivery, republished: true };
}

export function encodeCancel(runId: string): Uint8Array {
  return eventsPb.CancelNotice.encode({ runId }).finish();
}

/** The run id of a cancel notice. */
export function decodeCancel(data: Uint8Array): string | undefined {
  const json = legacyJson(data);
  const runId = json ? str(json.run_id) : fromProto(eventsPb.CancelNotice.decode, data)?.runId;
  return runId || undefined;
}

export function encodeSettingsChanged(project: string): Uint8Array {
  return eventsPb.SettingsChangedNotice.encode({ project }).finish();
}

/** The project of a settings notice. */
export function decodeSettingsChanged(data: Uint8Array): string | undefined {
  return fromProto(eventsPb.SettingsChangedNotice.decode, data)?.project || undefined;
}

export function encodeRunChanged(runId: string, status: string): Uint8Array {
  return eventsPb.RunChangedNotice.encode({ runId, status }).finish();
}

export function decodeRunChanged(data: Uint8Array): { runId: string; status: string } | undefined {
  const json = legacyJson(data);
  const e = json ? { runId: str(json.run_id), status: str(json.status) } : fromProto(eventsPb.RunChangedNotice.decode, data);
  return e && e.runId !== "" ? e : undefined;
}
