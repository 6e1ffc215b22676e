import { describe, expect, it } from "vitest";
import { LonghaulError } from "./errors.js";
import { DEFAULT_APP_NETWORKS, appAddressRefusal, checkAppUrl, parseNetworks, validateWebhookUrl, webhookNetworks } from "./egress.js";

const strict = { allowPrivate: false };

describe("validateWebhookUrl refuses hostile URLs", () => {
  it.each([
    // 127.0.0.1 in every spelling WHATWG URL parsing accepts.
    ["dotted loopback", "http://127.0.0.1/hook"],
    ["decimal loopback", "http://2130706433/hook"],
    ["octal loopback", "http://017700000001/hook"],
    ["dotted octal loopback", "http://0177.0.0.01/hook"],
    ["hex loopback", "http://0x7f000001/hook"],
    ["dotted hex loopback", "http://0x7f.0x0.0x0.0x1/hook"],
    ["short loopback", "http://127.1/hook"],
    ["loopback with port", "http://127.0.0.1:8080/hook"],
    ["other loopback", "http://127.255.255.254/"],
    ["localhost", "http://localhost:3000/hook"],
    ["sub.localhost", "http://api.localhost/hook"],
    ["private 10/8", "http://10.0.0.5/hook"],
    ["private 10/8 decimal", "http://167772165/hook"],
    ["private 172.16/12", "https://172.16.3.4/hook"],
    ["private 192.168/16", "http://192.168.1.1/"],
    ["metadata", "http://169.254.169.254/latest/meta-data/"],
    ["metadata hex", "http://0xa9fea9fe/latest/meta-data/"],
    ["link-local", "http://169.254.1.1/"],
    ["CGNAT", "http://100.64.0.1/"],
    ["CGNAT top", "http://100.127.255.254/"],
    ["unspecified", "http://0.0.0.0/"],
    ["zero short", "http://0/"],
    ["broadcast", "http://255.255.255.255/"],
    ["multicast", "http://224.0.0.1/"],
    ["IPv6 loopback", "http://[::1]/hook"],
    ["IPv6 unspecified", "http://[::]/hook"],
    ["IPv4-mapped loopback", "http://[::ffff:127.0.0.1]/hook"],
    ["IPv4-mapped private hex", "http://[::ffff:a00:1]/hook"],
    ["IPv4-mapped metadata", "http://[::ffff:169.254.169.254]/"],
    ["unique local", "http://[fd00::1]/hook"],
    ["IPv6 link-local", "http://[fe80::1]/hook"],
    ["NAT64 of loopback", "http://[64:ff9b::7f00:1]/"],
    ["6to4 of private", "http://[2002:a00:1::]/"],
    ["metadata .internal name", "http://metadata.google.internal/"],
    ["userinfo", "https://user:pass@example.com/hook"],
    ["userinfo name only", "https://user@example.com/hook"],
    ["ftp", "ftp://example.com/hook"],
    ["file", "file:///etc/passwd"],
    ["javascript", "javascript:alert(1)"],
    ["gopher", "gopher://example.com:70/"],
    ["relative path", "/hook"],
    ["relative host", "//example.com/hook"],
    ["no scheme", "example.com/hook"],
    ["empty", ""],
    ["too long", `https://example.com/${"a".repeat(2100)}`],
  ])("%s: %s", (_name, url) => {
    expect(() => validateWebhookUrl(url, strict)).toThrow(LonghaulError);
    try {
      validateWebhookUrl(url, strict);
    } catch (err) {
      expect((err as LonghaulError).code).toBe("invalid_argument");
    }
  });
});

describe("validateWebhookUrl accepts public targets", () => {
  it.each([
    "https://example.com/hook",
    "https://hooks.example.com:8443/a/b?c=d",
    "http://93.184.216.34/hook",
    "http://8.8.8.8/",
    "https://[2606:4700:4700::1111]/hook",
    "https://172.32.0.1/", // just past 172.16/12
    "https://100.128.0.1/", // just past 100.64/10
  ])("%s", (url) => {
    expect(validateWebhookUrl(url, strict)).toBeInstanceOf(URL);
  });
});

describe("allowPrivate", () => {
  it.each(["http://127.0.0.1:9000/hook", "http://localhost:9000/hook", "http://[::1]:9000/", "http://10.1.2.3/"])(
    "accepts %s when an operator allows private targets",
    (url) => {
      expect(validateWebhookUrl(url, { allowPrivate: true })).toBeInstanceOf(URL);
    },
  );
  it("still refuses other schemes and credentials", () => {
    expect(() => validateWebhookUrl("ftp://127.0.0.1/", { allowPrivate: true })).toThrow(LonghaulError);
    expect(() => validateWebhookUrl("http://a:b@127.0.0.1/", { allowPrivate: true })).toThrow(LonghaulError);
  });
});

describe("the webhook policy (appAddressRefusal, as for apps)", () => {
  const strictPolicy = { allowedNetworks: parseNetworks(webhookNetworks(false)), denied: [] };
  const openPolicy = { allowedNetworks: parseNetworks(webhookNetworks(true)), denied: [{ address: "127.0.0.1", port: 9461 }] };
  it.each(["127.0.0.1", "10.0.0.1", "169.254.169.254", "100.64.0.1", "0.0.0.0", "::1", "::ffff:127.0.0.1", "fd00::1", "fe80::1", "not-an-ip"])(
    "refuses %s without private targets",
    (a) => expect(appAddressRefusal(a, 443, strictPolicy)).toBeDefined(),
  );
  it.each(["93.184.216.34", "8.8.8.8", "2606:4700:4700::1111", "::ffff:8.8.8.8"])("allows %s", (a) =>
    expect(appAddressRefusal(a, 443, strictPolicy)).toBeUndefined(),
  );
  it.each(["127.0.0.1", "10.0.0.1", "100.64.0.1", "::1", "fd00::1"])("allows %s when private targets are allowed", (a) =>
    expect(appAddressRefusal(a, 443, openPolicy)).toBeUndefined(),
  );
  it.each(["169.254.169.254", "::ffff:169.254.169.254", "169.254.1.1", "fe80::1", "fd00:ec2::254", "168.63.129.16", "0.0.0.0"])(
    "refuses %s even when private targets are allowed (link-local, metadata)",
    (a) => expect(appAddressRefusal(a, 443, openPolicy)).toBeDefined(),
  );
  it("refuses Longhaul's own ports even when private targets are allowed", () => {
    expect(appAddressRefusal("127.0.0.1", 9461, openPolicy)).toMatch(/Longhaul's own/);
  });
  it.each(["http://169.254.169.254/latest/meta-data/", "http://[fe80::1]/", "http://0xa9fea9fe/"])(
    "refuses %s at submit even when private targets are allowed",
    (url) => expect(() => validateWebhookUrl(url, { allowPrivate: true })).toThrow(LonghaulError),
  );
});

describe("app egress policy", () => {
  const policy = {
    allowedNetworks: parseNetworks(DEFAULT_APP_NETWORKS),
    denied: [
      { address: "127.0.0.1", port: 5432 },
      { address: "10.1.2.3", port: 0 },
    ],
  };

  it("allows public addresses and the private ranges by default, never loopback", () => {
    for (const a of ["93.184.216.34", "2606:4700::1111", "10.0.0.7", "172.16.5.5", "192.168.1.1", "fd12::1"]) {
      expect(appAddressRefusal(a, 80, policy), a).toBeUndefined();
    }
    for (const a of ["127.0.0.1", "::1", "::ffff:127.0.0.1", "100.64.0.1"]) {
      expect(appAddressRefusal(a, 80, policy), a).toMatch(/outside LONGHAUL_APP_ALLOWED_NETWORKS/);
    }
  });

  it("refuses link-local, metadata, unspecified, multicast and broadcast addresses whatever is allowed", () => {
    const open = { ...policy, allowedNetworks: parseNetworks("0.0.0.0/0,::/0") };
    for (const a of ["169.254.169.254", "::ffff:169.254.169.254", "fd00:ec2::254", "100.100.100.200", "169.254.1.1", "fe80::1", "0.0.0.0", "::", "224.0.0.1", "ff02::1", "255.255.255.255"]) {
      expect(appAddressRefusal(a, 80, open), a).toBeDefined();
    }
  });

  it("refuses Longhaul's own parts: a loopback one on its port, another host on every port", () => {
    const loose = { ...policy, allowedNetworks: parseNetworks(`${DEFAULT_APP_NETWORKS},127.0.0.0/8`) };
    expect(appAddressRefusal("127.0.0.1", 5432, loose)).toMatch(/Longhaul's own/);
    expect(appAddressRefusal("::ffff:127.0.0.1", 5432, loose)).toMatch(/Longhaul's own/);
    expect(appAddressRefusal("127.0.0.1", 9000, loose)).toBeUndefined();
    expect(appAddressRefusal("10.1.2.3", 8080, loose)).toMatch(/Longhaul's own/);
  });

  it("checks every address a name resolves to, and every spelling of a literal", async () => {
    const resolve = async (host: string) =>
      host === "mixed.example" ? [{ address: "93.184.216.34", family: 4 }, { address: "169.254.169.254", family: 4 }] : [{ address: "93.184.216.34", family: 4 }];
    await expect(checkAppUrl("http://mixed.example/", policy, resolve)).rejects.toMatchObject({ code: "invalid_argument" });
    await expect(checkAppUrl("http://fine.example/", policy, resolve)).resolves.toBeUndefined();
    for (const url of ["http://2852039166/", "http://0xa9fea9fe/", "http://0251.0376.0251.0376/", "http://[::ffff:a9fe:a9fe]/", "http://0/"]) {
      await expect(checkAppUrl(url, policy, resolve), url).rejects.toMatchObject({ code: "invalid_argument" });
    }
  });

  it("names a bad network of LONGHAUL_APP_ALLOWED_NETWORKS", () => {
    expect(() => parseNetworks("10.0.0.0/8,nope")).toThrow(/'nope'/);
  });
});
