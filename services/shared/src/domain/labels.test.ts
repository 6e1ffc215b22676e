import { describe, expect, it } from "vitest";
import { checkLabels, parseLabelFilter, parseLabelsHeader } from "./labels.js";

describe("labels", () => {
  it("parses a header, trimming spaces and joining repeated headers", () => {
    expect(parseLabelsHeader(["team=ml, job=42", "env=prod"])).toEqual({ team: "ml", job: "42", env: "prod" });
    expect(parseLabelsHeader([" , "])).toEqual({});
    expect(parseLabelsHeader(["at=2026-05-01T09:00:00Z,owner=ann@example.com"])).toEqual({
      at: "2026-05-01T09:00:00Z",
      owner: "ann@example.com",
    });
  });

  it("refuses malformed headers, naming the header", () => {
    expect(() => parseLabelsHeader(["team"])).toThrow(/X-Longhaul-Labels: "team" is not key=value/);
    expect(() => parseLabelsHeader(["team=ml,team=cv"])).toThrow(/label team is given twice/);
    expect(() => parseLabelsHeader(["=ml"])).toThrow(/X-Longhaul-Labels: label key ""/);
    expect(() => parseLabelsHeader(["team="])).toThrow(/label team has value ""/);
    expect(() => parseLabelsHeader(["team=a b"])).toThrow(/label team has value/);
    expect(() => parseLabelsHeader(["k=<script>"])).toThrow(/label k has value/);
    const eleven = Array.from({ length: 11 }, (_, i) => `k${i}=v`).join(",");
    expect(() => parseLabelsHeader([eleven])).toThrow(/at most 10 labels, got 11/);
    expect(Object.keys(parseLabelsHeader([eleven.replace(",k10=v", "")]))).toHaveLength(10);
  });

  it("checks stored labels from any client", () => {
    expect(checkLabels({ team: "ml" })).toEqual({ team: "ml" });
    expect(() => checkLabels({ "bad key": "x" })).toThrow(/labels: label key "bad key"/);
    expect(() => checkLabels({ k: "x".repeat(129) })).toThrow(/label k has value/);
  });

  it("parses a key:value filter; the value may hold a colon", () => {
    expect(parseLabelFilter("team:ml")).toEqual(["team", "ml"]);
    expect(parseLabelFilter("at:09:00")).toEqual(["at", "09:00"]);
    expect(() => parseLabelFilter("team")).toThrow(/label: "team" must be key:value/);
    expect(() => parseLabelFilter("team:")).toThrow(/label: label team has value ""/);
  });
});
