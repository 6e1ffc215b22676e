import { isUtf8 } from "node:buffer";

/**
 * A stored body as the dashboard shows it: text when it is UTF-8, base64
 * otherwise, and never more than a preview's worth of bytes ("body
 * preview"), so that a run page stays fast whatever the app sent.
 */
export interface BodyPreview {
  /** Bytes of the whole stored body. */
  size: number;
  /** How `body` is encoded: `utf8` text or `base64` bytes. */
  encoding: "utf8" | "base64";
  /** The first bytes of the body, at most the preview limit. */
  body: string;
  /** True when `body` holds less than the stored body. */
  truncated: boolean;
}

/** Default preview size of the API: 64 KiB shows any JSON a person reads. */
export const DEFAULT_PREVIEW_BYTES = 64 * 1024;

/**
 * The preview of `body` in at most `limit` bytes. A cut that falls inside a
 * multi-byte character moves back to the character's start, so UTF-8 text
 * stays text; a body that is not UTF-8 at all is given as base64.
 */
export function bodyPreview(body: Uint8Array, limit: number = DEFAULT_PREVIEW_BYTES): BodyPreview {
  const buf = Buffer.from(body.buffer, body.byteOffset, body.byteLength);
  const truncated = buf.length > limit;
  let slice = truncated ? buf.subarray(0, limit) : buf;
  if (truncated) slice = slice.subarray(0, utf8Boundary(slice));
  if (isUtf8(slice)) return { size: buf.length, encoding: "utf8", body: slice.toString("utf8"), truncated };
  const raw = truncated ? buf.subarray(0, limit) : buf;
  return { size: buf.length, encoding: "base64", body: raw.toString("base64"), truncated };
}

/** Length of `buf` without a trailing, incomplete UTF-8 sequence (at most 3 bytes back). */
function utf8Boundary(buf: Buffer): number {
  for (let back = 1; back <= Math.min(3, buf.length); back++) {
    const byte = buf[buf.length - back]!;
    if ((byte & 0xc0) === 0x80) continue; // continuation byte: look further back
    if (byte < 0x80) return buf.length; // ASCII: nothing cut
    const need = byte >= 0xf0 ? 4 : byte >= 0xe0 ? 3 : 2;
    return back >= need ? buf.length : buf.length - back;
  }
  return buf.length;
}
