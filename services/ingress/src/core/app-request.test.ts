import { describe, expect, it } from "vitest";
import {
  appRequestHeaders,
  appResponseHeaders,
  headerPairs,
  joinAppUrl,
  prefersAsync,
  splitQuery,
} from "./app-request.js";

const h = (name: string, value: string) => ({ name, value });

describe("appRequestHeaders", () => {
  it("drops hop-by-hop, auth, idempotency, control and trace headers, keeps the rest as sent", () => {
    const headers = [
      h("Host", "gw:8080"),
      h("Connection", "keep-alive, X-Drop-Me"),
      h("Keep-Alive", "timeout=5"),
      h("Proxy-Authorization", "Basic x"),
      h("TE", "trailers"),
      h("Trailer", "X-Sum"),
      h("Transfer-Encoding", "chunked"),
      h("Upgrade", "h2c"),
      h("Content-Length", "12"),
      h("X-Drop-Me", "named in Connection"),
      h("Authorization", "Bearer lh_secret"),
      h("Idempotency-Key", "k1"),
      h("X-Longhaul-Timeout", "30"),
      h("x-longhaul-priority", "5"),
      h("traceparent", "00-abc-def-01"),
      h("Content-Type", "application/x-protobuf"),
      h("X-Custom", "a"),
      h("X-Custom", "b"),
      h("Cookie", "s=1"),
    ];
    expect(appRequestHeaders(headers)).toEqual([
      h("Content-Type", "application/x-protobuf"),
      h("X-Custom", "a"),
      h("X-Custom", "b"),
      h("Cookie", "s=1"),
    ]);
  });

  it("removes only the respond-async preference", () => {
    expect(appRequestHeaders([h("Prefer", "respond-async")])).toEqual([]);
    expect(appRequestHeaders([h("Prefer", "respond-async, return=minimal")])).toEqual([
      h("Prefer", "return=minimal"),
    ]);
  });

  it("keeps Idempotency-Key for a sync call, where Longhaul does not use it", () => {
    expect(appRequestHeaders([h("Idempotency-Key", "k")], { keepIdempotencyKey: true })).toEqual([
      h("Idempotency-Key", "k"),
    ]);
  });
});

describe("appResponseHeaders", () => {
  it("drops hop-by-hop headers of the app's answer", () => {
    expect(
      appResponseHeaders([
        h("Content-Type", "text/plain"),
        h("Transfer-Encoding", "chunked"),
        h("Content-Length", "5"),
        h("Connection", "close"),
        h("Set-Cookie", "a=1"),
        h("Set-Cookie", "b=2"),
      ]),
    ).toEqual([h("Content-Type", "text/plain"), h("Set-Cookie", "a=1"), h("Set-Cookie", "b=2")]);
  });
});

describe("prefersAsync", () => {
  it("finds respond-async among preferences, any case", () => {
    expect(prefersAsync([h("prefer", "wait=5, Respond-Async")])).toBe(true);
    expect(prefersAsync([h("prefer", "return=minimal")])).toBe(false);
    expect(prefersAsync([])).toBe(false);
  });
});

describe("splitQuery", () => {
  it("strips async and webhookEndpoint and keeps the rest byte for byte", () => {
    const raw = "b=2&async=true&a=%2F%20x+y&webhookEndpoint=https%3A%2F%2Fh%2Fw&&flag&a=1";
    const { appQuery, params } = splitQuery(raw);
    expect(appQuery).toBe("b=2&a=%2F%20x+y&&flag&a=1");
    expect(params.get("webhookEndpoint")).toBe("https://h/w");
    expect(params.get("async")).toBe("true");
  });

  it("strips encoded spellings of the names too", () => {
    expect(splitQuery("%61sync=1&x=1").appQuery).toBe("x=1");
    expect(splitQuery("").appQuery).toBe("");
    expect(splitQuery("async").appQuery).toBe("");
  });
});

describe("joinAppUrl", () => {
  it("joins base path, request path and queries", () => {
    expect(joinAppUrl("http://app:9000", "/x/y", "a=1")).toBe("http://app:9000/x/y?a=1");
    expect(joinAppUrl("http://app:9000/api/", "/x", "")).toBe("http://app:9000/api/x");
    expect(joinAppUrl("http://app/api?key=k", "/", "a=1")).toBe("http://app/api/?key=k&a=1");
  });
});

describe("headerPairs", () => {
  it("turns Node's flat rawHeaders into pairs, case and order kept", () => {
    expect(headerPairs(["X-A", "1", "x-a", "2"])).toEqual([h("X-A", "1"), h("x-a", "2")]);
  });
});
