import { describe, expect, it } from "vitest";
import { bodyPreview } from "./body-preview.js";

describe("body preview", () => {
  it("gives UTF-8 as text and anything else as base64", () => {
    expect(bodyPreview(Buffer.from('{"a":"é"}'))).toEqual({ size: 10, encoding: "utf8", body: '{"a":"é"}', truncated: false });
    const png = Buffer.from([137, 80, 78, 71, 0, 255]);
    expect(bodyPreview(png)).toEqual({ size: 6, encoding: "base64", body: png.toString("base64"), truncated: false });
    expect(bodyPreview(new Uint8Array())).toEqual({ size: 0, encoding: "utf8", body: "", truncated: false });
  });

  it("caps the preview, never cutting a character in two", () => {
    const text = "ab€€"; // € is 3 bytes: 2 + 3 + 3 = 8 bytes
    expect(bodyPreview(Buffer.from(text), 4)).toEqual({ size: 8, encoding: "utf8", body: "ab", truncated: true });
    expect(bodyPreview(Buffer.from(text), 5)).toEqual({ size: 8, encoding: "utf8", body: "ab€", truncated: true });
    expect(bodyPreview(Buffer.from("😀x"), 3).body).toBe("");
    expect(bodyPreview(Buffer.from("😀x"), 4).body).toBe("😀");
    const bin = Buffer.from([0xff, 0xfe, 0xfd, 0xfc]);
    expect(bodyPreview(bin, 2)).toEqual({ size: 4, encoding: "base64", body: bin.subarray(0, 2).toString("base64"), truncated: true });
  });

  it("reads a view into a larger buffer only within its bounds", () => {
    const big = Buffer.from("xxhelloxx");
    expect(bodyPreview(big.subarray(2, 7)).body).toBe("hello");
  });
});
