// deploy/: each Kubernetes overlay rendered by `kubectl kustomize` (the
// upstream kubectl 1.33 that scripts/lib/kubectl.mjs fetches from the npm
// registry) and every object checked against the Kubernetes API schemas
// (kubernetes-models: types, enums, required fields; @kubernetes/client-node's
// type maps: no unknown field), the Prometheus Operator objects against their
// CRD schemas, the references between objects resolved, the promises the
// README makes (drain, spread, replicas) held; the NATS configs parsed by
// nats-server and their login tried; compose.yaml against the Compose
// Specification schema.
import { spawn, spawnSync } from "node:child_process";
import fs from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import * as k8s from "@kubernetes/client-node";
import { Ajv } from "ajv";
import { parseAllDocuments, parse as parseYaml } from "yaml";
import { afterAll, describe, expect, it } from "vitest";
import { createLogger } from "@longhaul/shared/logger";
import { connectNats } from "@longhaul/shared/nats";
import { kubectlPath } from "../scripts/lib/kubectl.mjs";
import { repoRoot } from "../scripts/lib/mesh.mjs";

const deployDir = path.join(repoRoot, "deploy");
const k8sDir = path.join(deployDir, "k8s");
type Obj = { apiVersion: string; kind: string; metadata: { name: string; namespace?: string; labels?: Record<string, string> }; spec?: any; data?: Record<string, string> };

/** Secrets the manifests read that the user (or CloudNativePG) creates: deploy/README.md says which. */
const EXTERNAL_SECRETS = new Set(["longhaul-secrets", "longhaul-nats-auth", "longhaul-pg-app"]);

function render(overlay: string): Obj[] {
  return renderDir(path.join(k8sDir, "overlays", overlay));
}

function renderDir(dir: string): Obj[] {
  const r = spawnSync(kubectlPath(), ["kustomize", dir], { encoding: "utf8" });
  if (r.error) throw r.error;
  if (r.status !== 0) throw new Error(`kubectl kustomize ${dir} failed:\n${r.stderr}`);
  return parseAllDocuments(r.stdout).map((d) => d.toJS() as Obj).filter(Boolean);
}

/** An overlay with optional components added, as an operator's own kustomization would (in a temp dir). */
function renderWith(overlay: string, components: string[]): Obj[] {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "lh-kustomize-"));
  try {
    const rel = (p: string) => path.relative(dir, path.join(k8sDir, p));
    fs.writeFileSync(
      path.join(dir, "kustomization.yaml"),
      [
        "apiVersion: kustomize.config.k8s.io/v1beta1",
        "kind: Kustomization",
        "resources:",
        `  - ${rel(`overlays/${overlay}`)}`,
        "components:",
        ...components.map((c) => `  - ${rel(`components/${c}`)}`),
        "",
      ].join("\n"),
    );
    return renderDir(dir);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

/** Every field of `value` that the Kubernetes type `type` does not define, as paths. */
function unknownFields(value: unknown, type: string, at: string, out: string[]): void {
  if (value === null || value === undefined) return;
  const array = /^Array<(.+)>$/.exec(type);
  if (array) {
    if (Array.isArray(value)) value.forEach((v, i) => unknownFields(v, array[1]!, `${at}[${i}]`, out));
    return;
  }
  const map = /^\{ \[key: string\]: (.+); \}$/.exec(type);
  if (map) {
    if (typeof value === "object") for (const [k, v] of Object.entries(value)) unknownFields(v, map[1]!, `${at}.${k}`, out);
    return;
  }
  const model = (k8s as unknown as Record<string, { getAttributeTypeMap?: () => { baseName: string; type: string }[] }>)[type];
  if (!model?.getAttributeTypeMap || typeof value !== "object" || Array.isArray(value)) return;
  const attributes = model.getAttributeTypeMap();
  for (const [key, v] of Object.entries(value)) {
    const a = attributes.find((x) => x.baseName === key);
    if (!a) out.push(`${at}.${key}`);
    else unknownFields(v, a.type, `${at}.${key}`, out);
  }
}

/** `apps/v1` + Deployment → ["apps/v1/Deployment" path of kubernetes-models, "V1Deployment"]. */
function builtIn(o: Obj): { modelPath: string; typeName: string } | undefined {
  const [group, version] = o.apiVersion.includes("/") ? o.apiVersion.split("/") : ["", o.apiVersion];
  if (group!.includes("coreos") || group!.includes("cnpg")) return undefined;
  const typeName = `${version![0]!.toUpperCase()}${version!.slice(1)}${o.kind}`;
  return { modelPath: group ? `kubernetes-models/${group}/${version}/${o.kind}` : `kubernetes-models/${version}/${o.kind}`, typeName };
}

async function validateObject(o: Obj): Promise<string[]> {
  const problems: string[] = [];
  const where = `${o.kind}/${o.metadata.name}`;
  const b = builtIn(o);
  if (b) {
    if (!(k8s as Record<string, unknown>)[b.typeName]) return [`${where}: no Kubernetes type ${b.typeName}`];
    const mod = (await import(b.modelPath)) as Record<string, new (o: unknown) => { validate(): void }>;
    try {
      new mod[o.kind]!(o).validate();
    } catch (err) {
      problems.push(`${where}: ${(err as Error).message}`);
    }
    const unknown: string[] = [];
    unknownFields(o, b.typeName, where, unknown);
    problems.push(...unknown.map((u) => `unknown field ${u}`));
  } else if (o.apiVersion === "monitoring.coreos.com/v1") {
    const mod = (await import(`@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1/${o.kind}`)) as Record<
      string,
      new (o: unknown) => { validate(): void }
    >;
    try {
      new mod[o.kind]!(o).validate();
    } catch (err) {
      problems.push(`${where}: ${(err as Error).message}`);
    }
  } else if (o.apiVersion === "postgresql.cnpg.io/v1" && o.kind === "Cluster") {
    // No published model: the fields this file relies on, by CloudNativePG's API reference.
    const s = o.spec;
    if (!(Number.isInteger(s?.instances) && s.instances >= 1)) problems.push(`${where}: spec.instances`);
    if (typeof s?.storage?.size !== "string") problems.push(`${where}: spec.storage.size`);
    if (!s?.bootstrap?.initdb?.database || !s.bootstrap.initdb.owner) problems.push(`${where}: spec.bootstrap.initdb`);
    const known = ["instances", "imageName", "storage", "bootstrap", "postgresql", "resources"];
    for (const k of Object.keys(s ?? {})) if (!known.includes(k)) problems.push(`${where}: unexpected spec.${k}`);
  } else {
    problems.push(`${where}: ${o.apiVersion} is not checked by this test`);
  }
  return problems;
}

const matches = (selector: Record<string, string> | undefined, labels: Record<string, string> | undefined) =>
  !!selector && Object.entries(selector).every(([k, v]) => labels?.[k] === v);

type PodOwner = { name: string; labels: Record<string, string>; pod: any; obj: Obj };

function podOwners(objs: Obj[]): PodOwner[] {
  return objs
    .filter((o) => o.kind === "Deployment" || o.kind === "StatefulSet")
    .map((o) => ({ name: o.metadata.name, labels: o.spec.template.metadata.labels, pod: o.spec.template.spec, obj: o }));
}

/** Broken references between the rendered objects: each as a sentence. */
function referenceProblems(objs: Obj[]): string[] {
  const problems: string[] = [];
  const named = (kind: string) => new Set(objs.filter((o) => o.kind === kind).map((o) => o.metadata.name));
  const configMaps = named("ConfigMap");
  const owners = podOwners(objs);
  const secretOk = (name: string, where: string) => {
    if (!EXTERNAL_SECRETS.has(name)) problems.push(`${where}: Secret ${name} is neither rendered nor one deploy/README.md tells to create`);
  };
  for (const o of owners) {
    const containers: any[] = o.pod.containers;
    for (const c of containers) {
      for (const e of c.envFrom ?? []) {
        if (e.configMapRef && !configMaps.has(e.configMapRef.name)) problems.push(`${o.name}: ConfigMap ${e.configMapRef.name} missing`);
        if (e.secretRef) secretOk(e.secretRef.name, o.name);
      }
      for (const e of c.env ?? []) {
        const ref = e.valueFrom?.secretKeyRef ?? e.valueFrom?.configMapKeyRef;
        if (e.valueFrom?.secretKeyRef) secretOk(ref.name, `${o.name} env ${e.name}`);
        if (e.valueFrom?.configMapKeyRef && !configMaps.has(ref.name)) problems.push(`${o.name}: ConfigMap ${ref.name} missing`);
        // $(VAR) only expands variables defined earlier in the same list.
        for (const m of String(e.value ?? "").matchAll(/\$\((\w+)\)/g)) {
          const before = c.env.slice(0, c.env.indexOf(e)).map((x: { name: string }) => x.name);
          if (!before.includes(m[1])) problems.push(`${o.name} env ${e.name}: $(${m[1]}) is not defined before it`);
        }
      }
      for (const m of c.volumeMounts ?? []) {
        const vol = (o.pod.volumes ?? []).find((v: { name: string }) => v.name === m.name);
        const claim = (o.obj.spec.volumeClaimTemplates ?? []).find((v: { metadata: { name: string } }) => v.metadata.name === m.name);
        if (!vol && !claim) problems.push(`${o.name}: volume ${m.name} is mounted but not defined`);
      }
      if (!String(c.image).includes("/") && !String(c.image).includes(":")) problems.push(`${o.name}: image ${c.image} has no registry or tag`);
      // Probes naming a port name must name one of the container's.
      for (const probe of [c.readinessProbe, c.livenessProbe, c.startupProbe].filter(Boolean)) {
        const port = probe.httpGet?.port ?? probe.tcpSocket?.port;
        if (typeof port === "string" && !(c.ports ?? []).some((p: { name: string }) => p.name === port)) {
          problems.push(`${o.name}: probe port ${port} is not a container port`);
        }
      }
    }
    for (const v of o.pod.volumes ?? []) {
      if (v.configMap && !configMaps.has(v.configMap.name)) problems.push(`${o.name}: ConfigMap ${v.configMap.name} missing`);
    }
    if (!matches(o.obj.spec.selector.matchLabels, o.labels)) problems.push(`${o.name}: selector does not match its pod labels`);
  }
  for (const s of objs.filter((o) => o.kind === "Service")) {
    const targets = owners.filter((o) => matches(s.spec.selector, o.labels));
    if (targets.length === 0) problems.push(`Service ${s.metadata.name} selects no pods`);
    for (const p of s.spec.ports) {
      if (typeof p.targetPort !== "string") continue;
      for (const t of targets) {
        const ports = t.pod.containers.flatMap((c: { ports?: { name: string }[] }) => c.ports ?? []);
        if (!ports.some((x: { name: string }) => x.name === p.targetPort)) problems.push(`Service ${s.metadata.name}: ${t.name} has no port ${p.targetPort}`);
      }
    }
  }
  for (const p of objs.filter((o) => o.kind === "PodDisruptionBudget" || o.kind === "NetworkPolicy")) {
    const sel = p.kind === "PodDisruptionBudget" ? p.spec.selector.matchLabels : p.spec.podSelector.matchLabels;
    if (p.kind === "NetworkPolicy" && Object.keys(p.spec.podSelector).length === 0) continue; // the namespace-wide default
    if (p.kind === "NetworkPolicy" && p.metadata.name === "longhaul-pg") continue; // CloudNativePG's pods, not rendered here
    if (!owners.some((o) => matches(sel, o.labels))) problems.push(`${p.kind} ${p.metadata.name} selects no pods`);
  }
  for (const h of objs.filter((o) => o.kind === "HorizontalPodAutoscaler")) {
    const t = objs.find((o) => o.kind === h.spec.scaleTargetRef.kind && o.metadata.name === h.spec.scaleTargetRef.name);
    if (!t) problems.push(`HPA ${h.metadata.name}: no ${h.spec.scaleTargetRef.kind} ${h.spec.scaleTargetRef.name}`);
    else if (t.spec.replicas !== undefined) problems.push(`HPA ${h.metadata.name}: its Deployment sets replicas, which every apply would reset`);
  }
  for (const m of objs.filter((o) => o.kind === "ServiceMonitor")) {
    const services = objs.filter((o) => o.kind === "Service" && matches(m.spec.selector.matchLabels, o.metadata.labels));
    for (const e of m.spec.endpoints) {
      if (!services.some((s) => s.spec.ports.some((p: { name: string }) => p.name === e.port))) problems.push(`ServiceMonitor ${m.metadata.name}: no Service has port ${e.port}`);
    }
    if (services.some((s) => s.spec.clusterIP === "None")) problems.push(`ServiceMonitor ${m.metadata.name} also scrapes a headless Service`);
  }
  for (const m of objs.filter((o) => o.kind === "PodMonitor")) {
    const pods = owners.filter((o) => matches(m.spec.selector.matchLabels, o.labels));
    for (const e of m.spec.podMetricsEndpoints) {
      const ok = pods.some((p) => p.pod.containers.some((c: { ports?: { name: string }[] }) => (c.ports ?? []).some((x) => x.name === e.port)));
      if (!ok) problems.push(`PodMonitor ${m.metadata.name}: no pod has port ${e.port}`);
    }
  }
  return problems;
}

/** Every variable the services read (their config.ts files), plus OpenTelemetry's own. */
function knownVariables(): Set<string> {
  const names = new Set<string>();
  for (const dir of ["shared", "scheduler", "invoker", "notifier", "ingress", "migrate"]) {
    const text = fs.readFileSync(path.join(repoRoot, "services", dir, "src", "config.ts"), "utf8");
    for (const m of text.matchAll(/^\s+([A-Z][A-Z0-9_]+):/gm)) names.add(m[1]!);
  }
  return names;
}

function variablesSet(objs: Obj[]): { where: string; name: string }[] {
  const out: { where: string; name: string }[] = [];
  const cm = objs.find((o) => o.kind === "ConfigMap" && o.metadata.name === "longhaul-config");
  for (const k of Object.keys(cm?.data ?? {})) out.push({ where: "longhaul-config", name: k });
  for (const o of podOwners(objs).filter((x) => x.name.startsWith("longhaul-"))) {
    for (const c of o.pod.containers) for (const e of c.env ?? []) out.push({ where: o.name, name: e.name });
  }
  return out;
}

/** The four services' Deployments (not the collector's). */
const deployments = (objs: Obj[]) => objs.filter((o) => o.kind === "Deployment" && o.metadata.name.startsWith("longhaul-"));
const byName = (objs: Obj[], kind: string, name: string) => objs.find((o) => o.kind === kind && o.metadata.name === name)!;
const envOf = (o: Obj, name: string) =>
  o.spec.template.spec.containers[0].env.find((e: { name: string }) => e.name === name)?.value as string | undefined;

describe.each(["single-node", "ha"])("deploy/k8s/overlays/%s", (overlay) => {
  const objs = render(overlay);

  it("renders objects that fit the Kubernetes API schemas, unknown fields refused", async () => {
    const problems = (await Promise.all(objs.map(validateObject))).flat();
    expect(problems).toEqual([]);
    expect(objs.every((o) => o.kind === "Namespace" || o.metadata.namespace === "longhaul")).toBe(true);
  });

  it("resolves every reference between its objects", () => {
    expect(referenceProblems(objs)).toEqual([]);
  });

  it("would catch an unknown field, a bad value and a broken reference", async () => {
    const broken = structuredClone(objs);
    const invoker = byName(broken, "Deployment", "longhaul-invoker");
    invoker.spec.template.spec.containers[0].imagePullPolicyy = "Always";
    invoker.spec.strategy.type = "Sometimes";
    invoker.spec.template.spec.containers[0].envFrom[0].configMapRef.name = "longhaul-confg";
    const problems = (await validateObject(invoker)).join("\n");
    expect(problems).toContain("unknown field Deployment/longhaul-invoker.spec.template.spec.containers[0].imagePullPolicyy");
    expect(problems).toMatch(/strategy\/type|allowed values/);
    expect(referenceProblems(broken)).toContain("longhaul-invoker: ConfigMap longhaul-confg missing");
  });

  it("sets only variables the services read", () => {
    const known = knownVariables();
    // NATS_PASSWORD only builds NATS_URL in the manifests; OTEL_* are OpenTelemetry's.
    const unknown = variablesSet(objs).filter((v) => !known.has(v.name) && v.name !== "NATS_PASSWORD" && !v.name.startsWith("OTEL_"));
    expect(unknown).toEqual([]);
  });

  it("migrates in a Job of the release, the services waiting for it rather than migrating", () => {
    const job = byName(objs, "Job", "longhaul-migrate");
    const pod = job.spec.template.spec;
    expect(pod.containers[0].image).toBe("registry.example.com/longhaul/migrate:0.2.0");
    expect(pod.restartPolicy).toBe("OnFailure");
    // It reads the services' database: the Secret's DATABASE_URL, or CloudNativePG's in single-node.
    const dbFrom = pod.containers[0].env?.find((e: { name: string }) => e.name === "DATABASE_URL");
    if (overlay === "single-node") expect(dbFrom.valueFrom.secretKeyRef).toEqual({ name: "longhaul-pg-app", key: "uri" });
    else expect(pod.containers[0].envFrom.some((e: { secretRef?: { name: string } }) => e.secretRef?.name === "longhaul-secrets")).toBe(true);
    for (const name of ["longhaul-scheduler", "longhaul-notifier"]) {
      expect(envOf(byName(objs, "Deployment", name), "LONGHAUL_MIGRATE_AT_START")).toBeUndefined();
    }
    expect(byName(objs, "ConfigMap", "longhaul-config").data!.LONGHAUL_MIGRATE_AT_START).toBeUndefined();
  });

  it("never cuts a held call: the invoker's grace period covers its drain, and rollouts surge", () => {
    const invoker = byName(objs, "Deployment", "longhaul-invoker");
    const drain = Number(envOf(invoker, "INVOKER_DRAIN_SECONDS"));
    expect(drain).toBe(43_200);
    const preStop = Number(invoker.spec.template.spec.containers[0].lifecycle.preStop.exec.command[1]);
    expect(invoker.spec.template.spec.terminationGracePeriodSeconds).toBeGreaterThanOrEqual(drain + preStop + 30);
    expect(invoker.spec.strategy.rollingUpdate).toEqual({ maxUnavailable: 0, maxSurge: 1 });
  });

  it("gives clients every copy's address (headless Services) and NATS credentials from a Secret", () => {
    const config = byName(objs, "ConfigMap", "longhaul-config").data!;
    for (const [v, svc] of [["SCHEDULER_ADDR", "scheduler"], ["INVOKER_ADDR", "invoker"], ["NOTIFIER_ADDR", "notifier"]] as const) {
      const host = config[v]!.split(":")[0]!;
      expect(byName(objs, "Service", host).spec.clusterIP, v).toBe("None");
      expect(host).toBe(`longhaul-${svc}-headless`);
    }
    for (const name of ["longhaul-scheduler", "longhaul-invoker", "longhaul-notifier"]) {
      expect(envOf(byName(objs, "Deployment", name), "NATS_URL")).toBe("nats://longhaul:$(NATS_PASSWORD)@nats:4222");
    }
    const conf = byName(objs, "ConfigMap", "nats-config").data!["nats.conf"]!;
    expect(conf).toMatch(/user: longhaul, password: \$NATS_PASSWORD/);
  });

  it("runs the copies the overlay promises", () => {
    const nats = byName(objs, "StatefulSet", "nats");
    const replicas = byName(objs, "ConfigMap", "longhaul-config").data!.LONGHAUL_NATS_REPLICAS;
    const pdbs = objs.filter((o) => o.kind === "PodDisruptionBudget").map((o) => o.metadata.name).sort();
    if (overlay === "single-node") {
      expect(deployments(objs).map((d) => d.spec.replicas)).toEqual([1, 1, 1, 1]);
      expect([nats.spec.replicas, replicas]).toEqual([1, "1"]);
      expect(objs.some((o) => o.kind === "Cluster" && o.apiVersion === "postgresql.cnpg.io/v1")).toBe(true);
      // Traces go to the collector it brings, over OTLP/HTTP.
      expect(byName(objs, "ConfigMap", "longhaul-config").data!.OTEL_EXPORTER_OTLP_ENDPOINT).toBe("http://otel-collector:4318");
      const collector = parseYaml(byName(objs, "ConfigMap", "otel-collector-config").data!["collector.yaml"]!);
      expect(collector.receivers.otlp.protocols.http.endpoint).toBe("0.0.0.0:4318");
      expect(collector.service.pipelines.traces.exporters.every((e: string) => e in collector.exporters)).toBe(true);
      expect(pdbs).toEqual([]);
    } else {
      const hpa = byName(objs, "HorizontalPodAutoscaler", "longhaul-invoker");
      expect(hpa.spec.minReplicas).toBeGreaterThanOrEqual(2);
      for (const d of deployments(objs).filter((x) => x.metadata.name !== "longhaul-invoker")) expect(d.spec.replicas, d.metadata.name).toBeGreaterThanOrEqual(2);
      for (const d of deployments(objs)) expect(d.spec.template.spec.topologySpreadConstraints[0].whenUnsatisfiable).toBe("DoNotSchedule");
      expect([nats.spec.replicas, replicas]).toEqual([3, "3"]);
      expect(pdbs).toEqual(["longhaul-ingress", "longhaul-invoker", "longhaul-notifier", "longhaul-scheduler", "nats"]);
      expect(objs.map((o) => o.kind)).toEqual(expect.arrayContaining(["ServiceMonitor", "PodMonitor", "PrometheusRule"]));
      // The dashboard: JSON Grafana imports, every panel with a query.
      const dashboard = JSON.parse(byName(objs, "ConfigMap", "longhaul-grafana-dashboard").data!["grafana-dashboard.json"]!);
      expect(dashboard.uid).toBe("longhaul-overview");
      for (const p of dashboard.panels) expect(p.targets.length, p.title).toBeGreaterThan(0);
    }
  });
});

describe("deploy/k8s/components/grpc-tls (added to overlays/ha)", () => {
  const objs = renderWith("ha", ["grpc-tls"]);
  const GRPC_PORTS = { "longhaul-scheduler": 50051, "longhaul-invoker": 50052, "longhaul-notifier": 50053 } as Record<string, number>;

  it("renders objects that fit the Kubernetes API schemas, every reference resolved", async () => {
    expect((await Promise.all(objs.map(validateObject))).flat()).toEqual([]);
    expect(referenceProblems(objs)).toEqual([]);
  });

  it("gives every service the Secret's files (cert-manager's keys) at the paths of LONGHAUL_GRPC_TLS_*, readable by the service only", () => {
    const config = byName(objs, "ConfigMap", "longhaul-config").data!;
    const dir = "/etc/longhaul/grpc-tls";
    expect([config.LONGHAUL_GRPC_TLS_CERT, config.LONGHAUL_GRPC_TLS_KEY, config.LONGHAUL_GRPC_TLS_CA]).toEqual([
      `${dir}/tls.crt`,
      `${dir}/tls.key`,
      `${dir}/ca.crt`,
    ]);
    expect(deployments(objs)).toHaveLength(4);
    for (const d of deployments(objs)) {
      const pod = d.spec.template.spec;
      const mount = pod.containers[0].volumeMounts.find((m: { mountPath: string }) => m.mountPath === dir);
      // A whole-volume mount: a subPath mount would never see a renewal.
      expect(mount, d.metadata.name).toMatchObject({ readOnly: true });
      expect(mount.subPath).toBeUndefined();
      const vol = pod.volumes.find((v: { name: string }) => v.name === mount.name);
      expect(vol.secret.secretName).toBe("longhaul-grpc-tls");
      expect(vol.secret.defaultMode).toBe(0o440);
      expect(pod.securityContext.fsGroup).toBe(pod.securityContext.runAsGroup);
    }
  });

  it("turns the grpc probes, which cannot speak TLS, into exec probes of grpc-health-probe.js on each server's own port", () => {
    expect(fs.existsSync(path.join(repoRoot, "services/shared/src/grpc-health-probe.ts"))).toBe(true);
    for (const d of deployments(objs).filter((x) => x.metadata.name in GRPC_PORTS)) {
      const c = d.spec.template.spec.containers[0];
      const port = GRPC_PORTS[d.metadata.name]!;
      expect(c.ports.map((p: { containerPort: number }) => p.containerPort)).toContain(port);
      for (const probe of [c.readinessProbe, c.startupProbe]) {
        expect(probe.grpc, d.metadata.name).toBeUndefined();
        expect(probe.exec.command).toEqual(["node", "/app/services/shared/dist/grpc-health-probe.js", String(port), "4000"]);
        expect(probe.timeoutSeconds).toBeGreaterThanOrEqual(5);
      }
      expect(c.livenessProbe.tcpSocket.port).toBe(port);
    }
  });

  it("the example Certificate names every host the clients dial, for server and client use", () => {
    const cert = parseYaml(fs.readFileSync(path.join(k8sDir, "components/grpc-tls/certificate.example.yaml"), "utf8"));
    expect(cert.spec.secretName).toBe("longhaul-grpc-tls");
    expect(cert.spec.usages).toEqual(expect.arrayContaining(["server auth", "client auth"]));
    const config = byName(objs, "ConfigMap", "longhaul-config").data!;
    for (const v of ["SCHEDULER_ADDR", "INVOKER_ADDR", "NOTIFIER_ADDR"]) expect(cert.spec.dnsNames).toContain(config[v]!.split(":")[0]);
  });
});

describe("NATS configs", () => {
  const dirs: string[] = [];
  const procs: ReturnType<typeof spawn>[] = [];
  afterAll(() => {
    for (const p of procs) p.kill("SIGKILL");
    for (const d of dirs) fs.rmSync(d, { recursive: true, force: true });
  });

  /** The deploy config with this machine's paths and ports in place of the pod's. */
  function localConfig(variant: string, port: number, monitor: number): string {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "lh-natsconf-"));
    dirs.push(dir);
    const text = fs
      .readFileSync(path.join(k8sDir, "nats", variant, "nats.conf"), "utf8")
      .replace("listen: 0.0.0.0:4222", `listen: 127.0.0.1:${port}`)
      .replace("http: 0.0.0.0:8222", `http: 127.0.0.1:${monitor}`)
      .replace("/var/run/nats/nats.pid", path.join(dir, "nats.pid"))
      .replace("store_dir: /data", `store_dir: ${path.join(dir, "js")}`)
      .replace("listen: 0.0.0.0:6222", "listen: 127.0.0.1:-1");
    const file = path.join(dir, "nats.conf");
    fs.writeFileSync(file, text);
    return file;
  }

  const env = { ...process.env, SERVER_NAME: "nats-0", NATS_PASSWORD: "0123abcd".repeat(4) };

  it.each(["single", "cluster"])("nats-server accepts nats/%s/nats.conf", (variant) => {
    const r = spawnSync("nats-server", ["-c", localConfig(variant, 4222, 8222), "-t"], { env, encoding: "utf8" });
    expect(r.error, "nats-server must be installed").toBeUndefined();
    expect(`${r.stdout}${r.stderr}`).toMatch(/configuration file .* is valid/i);
    expect(r.status).toBe(0);
  });

  it("admits the services with the password in NATS_URL, and nobody without it", async () => {
    const free = () =>
      new Promise<number>((resolve) => {
        const s = net.createServer().listen(0, "127.0.0.1", () => {
          const { port } = s.address() as net.AddressInfo;
          s.close(() => resolve(port));
        });
      });
    const [port, monitor] = [await free(), await free()];
    const proc = spawn("nats-server", ["-c", localConfig("single", port, monitor)], { env, stdio: "ignore" });
    procs.push(proc);
    const log = createLogger("test", "silent");
    const until = Date.now() + 10_000;
    let nc: Awaited<ReturnType<typeof connectNats>> | undefined;
    while (!nc) {
      try {
        nc = await connectNats(`nats://longhaul:${env.NATS_PASSWORD}@127.0.0.1:${port}`, "test", log);
      } catch (err) {
        if (Date.now() > until || /authorization/i.test(String(err))) throw err;
        await new Promise((r) => setTimeout(r, 100));
      }
    }
    await nc.flush();
    await nc.close();
    await expect(connectNats(`nats://127.0.0.1:${port}`, "test", log)).rejects.toThrow(/authorization/i);
    await expect(connectNats(`nats://longhaul:wrong@127.0.0.1:${port}`, "test", log)).rejects.toThrow(/authorization/i);
  });
});

describe("deploy/compose.yaml", () => {
  const compose = parseYaml(fs.readFileSync(path.join(deployDir, "compose.yaml"), "utf8"), { merge: true }) as any;

  it("fits the Compose Specification schema", () => {
    const schema = JSON.parse(fs.readFileSync(path.join(deployDir, "schemas", "compose-spec.json"), "utf8"));
    // The schema names draft-07 by an https URL that Ajv does not know as its meta-schema.
    const ajv = new Ajv({ strict: false, allErrors: true, validateSchema: false });
    const valid = ajv.validate(schema, compose);
    expect(ajv.errors ?? [], JSON.stringify(ajv.errors, null, 1)).toEqual([]);
    expect(valid).toBe(true);
    // The schema refuses what Compose would: an unknown key of a service.
    expect(ajv.validate(schema, { services: { x: { image: "a", imagee: "b" } } })).toBe(false);
  });

  it("builds each service from a target of deploy/Dockerfile, wired to the others, with variables they read", () => {
    const dockerfile = fs.readFileSync(path.join(deployDir, "Dockerfile"), "utf8");
    const known = knownVariables();
    for (const name of ["scheduler", "invoker", "notifier", "ingress", "migrate"]) {
      const s = compose.services[name];
      expect(s.build.dockerfile).toBe("deploy/Dockerfile");
      expect(fs.existsSync(path.join(deployDir, s.build.context, s.build.dockerfile))).toBe(true);
      expect(dockerfile).toMatch(new RegExp(`^FROM runtime AS ${s.build.target}$`, "m"));
      for (const v of Object.keys(s.environment)) expect(known.has(v), `${name}: ${v}`).toBe(true);
      for (const dep of Object.keys(s.depends_on)) expect(compose.services[dep], `${name} depends on ${dep}`).toBeDefined();
    }
    expect(compose.services.ingress.environment.SCHEDULER_ADDR).toBe("scheduler:50051");
    // Migrations run once, before the services that own tables.
    expect(compose.services.migrate.restart).toBe("no");
    for (const name of ["scheduler", "notifier"]) {
      expect(compose.services[name].depends_on.migrate).toEqual({ condition: "service_completed_successfully" });
    }
    // Compose waits stop_grace_period before SIGKILL: at least the invoker's drain.
    expect(compose.services.invoker.stop_grace_period).toBe("12h1m");
    expect(compose.services.invoker.environment.INVOKER_DRAIN_SECONDS).toBe("43200");
  });
});
