/**
 * The deployment assets, checked offline against the code:
 * - stack.yml (OpenFaaS) against deploy/stack.schema.json, and knative/ with @kubernetes-models/knative, the
 *   KafkaSource with the CRD's own openAPIV3Schema (made strict: unknown fields are errors), plus what neither
 *   checks: unknown keys, enum values the CRD leaves open (ordering, initialOffset), a sink, probes, non-root;
 * - every registered function is deployed on both hosts, and nothing else is;
 * - every environment variable a manifest sets is read by that function's zod schema (or by the host), every
 *   variable a function requires is set, and the deployed values parse;
 * - the Kafka-triggered functions (learned by creating each function with its deployed configuration) have a
 *   KafkaSource and a kafka-connector topic on exactly their trigger topics and group, and their topics exist
 *   with enough retention;
 * - the Dockerfile copies what exists, installs production dependencies only and runs as non-root, and the
 *   image's build (tsconfig.build.json + Lua scripts) and entrypoint start a function for real;
 * - the image carries the customer portal: portal/ where the compiled subscriptions function reads it, and the
 *   packages it serves from node_modules among the production dependencies; the image's layout, made as the
 *   Dockerfile makes it, serves /portal and every file of it;
 * - every metric the alerts and the dashboard use is exported by the code;
 * - one base URL for the API: the Ingresses of knative/ingress.yaml and openfaas-ingress.yaml route every operation
 *   of openapi.yaml, and every path of the portal, to the function whose app serves it (learned by creating the
 *   functions), and to no other.
 * Each check is also shown to fail on a broken copy of the manifests.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, execFile, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmodSync, copyFileSync, cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, posix, relative } from 'node:path';
import { promisify } from 'node:util';
import { parse, parseAllDocuments } from 'yaml';
import { Ajv } from 'ajv';
import { Hono } from 'hono';
import { Service } from '@kubernetes-models/knative/serving.knative.dev/v1/Service';
import { containerHostSchema } from '../../adapters/http/start-function.ts';
import { FUNCTIONS } from '../../functions/registry.ts';
import { mountPortal, PORTAL_DIR, PORTAL_VENDOR } from '../../functions/subscriptions/portal.ts';
import type { App } from '../../platform/http/app.ts';
import { generateApiKey } from '../../platform/auth/api-keys.ts';
import { createMetrics } from '../../platform/telemetry/metrics.ts';
import { createLogger } from '../../platform/telemetry/logger.ts';
import { deps, kafkaClient, ownService, randomName, ROOT, waitFor } from '../support/helpers.ts';
import { publicOperations } from '../support/openapi.ts';

const run = promisify(execFile);
const read = (path: string) => readFileSync(join(ROOT, path), 'utf8');
const clone = <T>(v: T): T => structuredClone(v);

// ---- what the code declares --------------------------------------------------------------------------------------

/** Variables a host reads besides the function's own schema: the function's name and port (adapters/knative,
 *  adapters/http/start-function.ts reads PIONEER_LOG_LEVEL for every function). */
// read by the container host itself, and NODE_OPTIONS by Node (the image sets the heap limit with it)
const HOST_VARS = new Set([...Object.keys(containerHostSchema.shape), 'PIONEER_LOG_LEVEL', 'NODE_OPTIONS']);

type Shape = Record<string, { safeParse(v: unknown): { success: boolean } }>;
const shapeOf = (name: string): Shape => (FUNCTIONS[name]!.config as unknown as { shape: Shape }).shape;
const readers = (variable: string) => Object.keys(FUNCTIONS).filter((n) => variable in shapeOf(n));
const requiredVars = (name: string) => Object.entries(shapeOf(name)).filter(([, s]) => !s.safeParse(undefined).success).map(([k]) => k);

/** Values standing in for secrets when a deployed configuration is parsed. */
const SECRET_SAMPLES: Record<string, string> = {
  PIONEER_REDIS_URL: 'redis://:password@redis.pioneer.svc:6379',
  PIONEER_KAFKA_BROKERS: 'kafka-0.kafka:9092,kafka-1.kafka:9092',
  PIONEER_ADMIN_KEY: generateApiKey(),
  PIONEER_SECRET_KEYS: `k1:${randomBytes(32).toString('base64')}`,
};

/** Problems with the variables `env` sets for function `fn` (`where` prefixes each). */
function envProblems(where: string, fn: string, env: Record<string, string>): string[] {
  const out: string[] = [];
  if (!FUNCTIONS[fn]) return out;
  const shape = shapeOf(fn);
  for (const name of Object.keys(env)) {
    if (HOST_VARS.has(name) || name in shape) continue;
    const others = readers(name);
    out.push(others.length ? `${where}: ${name} is not read by ${fn} (only by ${others.join(', ')})` : `${where}: ${name} is read by no function`);
  }
  for (const name of requiredVars(fn)) if (!(name in env)) out.push(`${where}: ${fn} requires ${name}, which is not set`);
  if (env['PIONEER_FUNCTION'] !== fn) out.push(`${where}: PIONEER_FUNCTION is ${JSON.stringify(env['PIONEER_FUNCTION'])}, expected ${fn}`);
  const parsed = FUNCTIONS[fn]!.config.safeParse(env);
  if (!parsed.success) for (const issue of parsed.error.issues) out.push(`${where}: ${issue.path.join('.')} is invalid for ${fn}: ${issue.message}`);
  return out;
}

/** Metric names the code registers: its counter/histogram/gauge calls. */
function codeMetrics(): Set<string> {
  const names = new Set<string>();
  const walk = (dir: string) => {
    for (const entry of readdirSync(join(ROOT, dir), { withFileTypes: true })) {
      const path = join(dir, entry.name);
      if (entry.isDirectory()) walk(path);
      else if (path.endsWith('.ts')) for (const m of read(path).matchAll(/\b(?:counter|histogram|gauge)\(\s*\w+,\s*'([a-z_:][a-z0-9_:]*)'/g)) names.add(m[1]!);
    }
  };
  walk('functions');
  walk('platform');
  return names;
}

/** What a function's /metrics shows: the code's metrics and prom-client's default ones. */
function exportedMetrics(): Set<string> {
  const names = codeMetrics();
  for (const m of createMetrics().getMetricsAsArray()) names.add(m.name);
  return names;
}

/** Metrics of other exporters the alerts and dashboard may use. */
const EXTERNAL_METRICS = new Set(['up', 'kafka_consumergroup_lag']);

function metricProblems(where: string, text: string, exported: Set<string>): string[] {
  const out: string[] = [];
  const used = new Set<string>();
  for (const m of text.matchAll(/\b(pioneer_[a-z0-9_]+|kafka_[a-z0-9_]+)\b/g)) used.add(m[1]!);
  if (/\bup\{/.test(text)) used.add('up');
  for (const name of used) {
    const base = name.replace(/_(bucket|sum|count)$/, '');
    if (!exported.has(name) && !exported.has(base) && !EXTERNAL_METRICS.has(name)) out.push(`${where}: metric ${name} is exported by no function`);
  }
  return out;
}

// ---- the manifests -----------------------------------------------------------------------------------------------

interface Doc { file: string; obj: any }

function loadKnative(): Doc[] {
  const files = [
    ...readdirSync(join(ROOT, 'knative')).filter((f) => /\.ya?ml(\.example)?$/.test(f)).map((f) => `knative/${f}`),
    ...readdirSync(join(ROOT, 'knative/kafka')).filter((f) => /\.ya?ml$/.test(f)).map((f) => `knative/kafka/${f}`),
  ];
  const docs: Doc[] = [];
  for (const file of files.sort())
    for (const d of parseAllDocuments(read(file))) {
      if (d.errors.length) throw new Error(`${file}: ${d.errors[0]!.message}`);
      const obj = d.toJS();
      if (obj) docs.push({ file, obj });
    }
  return docs;
}
const ofKind = (docs: Doc[], kind: string) => docs.filter((d) => d.obj?.kind === kind);

const stackSchema = JSON.parse(read('deploy/stack.schema.json'));
const ajv = new Ajv({ allErrors: true, strict: false });
const validateStack = ajv.compile<any>(stackSchema);

/** The CRD's v1beta1 schema, with every object that lists its properties closed to others (the API server
 *  prunes unknown fields silently, which hides a misspelt one). */
function strictCrdSchema(): any {
  const crd = parse(readFileSync(join(ROOT, '../shared/conformance/knative/kafka-source-crd.yaml'), 'utf8'));
  const version = crd.spec.versions.find((v: any) => v.name === 'v1beta1');
  const close = (node: any): any => {
    if (Array.isArray(node)) return node.map(close);
    if (!node || typeof node !== 'object') return node;
    const out: any = {};
    for (const [k, v] of Object.entries(node)) out[k] = k === 'properties' ? Object.fromEntries(Object.entries(v as object).map(([p, s]) => [p, close(s)])) : close(v);
    if (out.properties && !out['x-kubernetes-preserve-unknown-fields'] && out.additionalProperties === undefined) out.additionalProperties = false;
    return out;
  };
  const schema = close(version.schema.openAPIV3Schema);
  schema.properties.metadata = { type: 'object' };
  return schema;
}
const validateKafkaSource = ajv.compile<any>(strictCrdSchema());

/** Allowed keys, nested; `true` is any value, an array is a list of the inner spec. */
type KeySpec = { [key: string]: KeySpec | KeySpec[] | true };
function unknownKeys(where: string, value: any, spec: KeySpec | KeySpec[] | true): string[] {
  if (spec === true || value === null || typeof value !== 'object') return [];
  if (Array.isArray(spec)) return Array.isArray(value) ? value.flatMap((v, i) => unknownKeys(`${where}[${i}]`, v, spec[0]!)) : [];
  return Object.entries(value).flatMap(([k, v]) => (k in spec ? unknownKeys(`${where}.${k}`, v, spec[k]!) : [`${where}.${k}: unknown field`]));
}
const PROBE: KeySpec = { httpGet: { path: true, port: true, scheme: true, httpHeaders: true }, initialDelaySeconds: true, periodSeconds: true, timeoutSeconds: true, failureThreshold: true, successThreshold: true };
const REF: KeySpec = { name: true, key: true, optional: true };
const SERVICE_KEYS: KeySpec = {
  apiVersion: true, kind: true,
  metadata: { name: true, namespace: true, labels: true, annotations: true },
  spec: {
    template: {
      metadata: { name: true, labels: true, annotations: true },
      spec: {
        containerConcurrency: true, timeoutSeconds: true, responseStartTimeoutSeconds: true, idleTimeoutSeconds: true,
        serviceAccountName: true, imagePullSecrets: true, enableServiceLinks: true, nodeSelector: true, tolerations: true, volumes: true,
        containers: [{
          name: true, image: true, imagePullPolicy: true, args: true, command: true, workingDir: true, volumeMounts: true,
          ports: [{ name: true, containerPort: true, protocol: true }],
          env: [{ name: true, value: true, valueFrom: { configMapKeyRef: REF, secretKeyRef: REF } }],
          envFrom: true,
          resources: { requests: { cpu: true, memory: true }, limits: { cpu: true, memory: true } },
          readinessProbe: PROBE, livenessProbe: PROBE, startupProbe: PROBE,
          securityContext: { runAsNonRoot: true, runAsUser: true, runAsGroup: true, allowPrivilegeEscalation: true, readOnlyRootFilesystem: true, capabilities: { drop: true, add: true }, seccompProfile: { type: true } },
        }],
      },
    },
    traffic: true,
  },
};
const AUTOSCALING = new Set(['class', 'metric', 'target', 'target-utilization-percentage', 'min-scale', 'max-scale', 'initial-scale', 'scale-down-delay', 'window', 'panic-window-percentage', 'panic-threshold-percentage', 'target-burst-capacity', 'activation-scale']);
const TOPIC_KEYS: KeySpec = { apiVersion: true, kind: true, metadata: { name: true, namespace: true, labels: true, annotations: true }, spec: { topicName: true, partitions: true, replicas: true, config: true } };

/** Retention the topics need: the 72 h outage plus 24 h of replay. */
const MIN_RETENTION_MS = (72 + 24) * 3600_000;

const UNITS: Record<string, number> = { Ki: 2 ** 10, Mi: 2 ** 20, Gi: 2 ** 30 };
const memory = (q: string) => Number(q.replace(/(Ki|Mi|Gi)$/, '')) * (UNITS[q.match(/(Ki|Mi|Gi)$/)?.[1] ?? ''] ?? 1);
const cpu = (q: string | number) => (String(q).endsWith('m') ? Number(String(q).slice(0, -1)) : Number(q) * 1000);

// ---- the Kafka triggers, learned from the functions themselves ---------------------------------------------------

interface Trigger { topics: string[]; groupId: string }
interface Triggers { openfaas: Record<string, Trigger | null>; knative: Record<string, Trigger | null> } // host -> function -> trigger

// ---- checks ------------------------------------------------------------------------------------------------------

function stackProblems(stack: any, triggers: Record<string, Trigger | null>): string[] {
  const out: string[] = [];
  if (!validateStack(stack)) {
    for (const e of validateStack.errors ?? []) out.push(`stack.yml${e.instancePath}: ${e.message}${e.params && 'additionalProperty' in e.params ? ` (${e.params.additionalProperty})` : ''}${e.propertyName ? ` (${e.propertyName})` : ''}`);
    return out;
  }
  const functions: Record<string, any> = stack.functions;
  for (const name of Object.keys(FUNCTIONS)) if (!functions[name]) out.push(`stack.yml: function ${name} is registered but not deployed`);
  for (const [name, fn] of Object.entries(functions)) {
    const where = `stack.yml: functions.${name}`;
    if (!FUNCTIONS[name]) out.push(`${where}: no registered function is called ${name}`);
    const env: Record<string, string> = { ...fn.environment };
    for (const secret of fn.secrets ?? []) {
      const variable = String(secret).toUpperCase().replace(/-/g, '_');
      if (!variable.startsWith('PIONEER_')) out.push(`${where}.secrets: ${secret} does not become a PIONEER_ variable (deploy/docker-entrypoint.sh)`);
      if (variable in env) out.push(`${where}.secrets: ${secret} and environment both set ${variable}`);
      env[variable] = SECRET_SAMPLES[variable] ?? 'secret';
    }
    for (const [variable, value] of Object.entries<string>(fn.environment ?? {}))
      if (/_DIR$/.test(variable) && fn.readonly_root_filesystem && !/^\/tmp\//.test(value)) out.push(`${where}.environment: ${variable} ${value} is not writable: a read-only function writes only under /tmp`);
    for (const variable of Object.keys(SECRET_SAMPLES)) if (variable in (fn.environment ?? {})) out.push(`${where}.environment: ${variable} is a secret: give it in secrets`);
    out.push(...envProblems(`${where}.environment`, name, env));
    const min = Number(fn.labels['com.openfaas.scale.min']);
    const max = Number(fn.labels['com.openfaas.scale.max']);
    if (min > max) out.push(`${where}.labels: com.openfaas.scale.min ${min} is above com.openfaas.scale.max ${max}`);
    if (memory(fn.requests.memory) > memory(fn.limits.memory) || cpu(fn.requests.cpu) > cpu(fn.limits.cpu)) out.push(`${where}: requests exceed limits`);
    const trigger = triggers[name];
    const topic: string | undefined = fn.annotations.topic;
    if (trigger && topic === undefined) out.push(`${where}.annotations: ${name} is Kafka-triggered but has no kafka-connector topic annotation`);
    if (trigger && topic !== undefined && topic.split(',').sort().join(',') !== [...trigger.topics].sort().join(','))
      out.push(`${where}.annotations.topic: ${topic} is not the topics ${name} reads (${trigger.topics.join(',')})`);
    if (!trigger && topic !== undefined && FUNCTIONS[name]) out.push(`${where}.annotations.topic: ${name} is not Kafka-triggered`);
  }
  return out;
}

function knativeProblems(docs: Doc[], triggers: Record<string, Trigger | null>): string[] {
  const out: string[] = [];
  const configMap = ofKind(docs, 'ConfigMap').find((d) => d.obj.metadata?.name === 'pioneer-config');
  const secret = ofKind(docs, 'Secret').find((d) => d.obj.metadata?.name === 'pioneer-secrets');
  if (!configMap) out.push('knative: no ConfigMap pioneer-config');
  if (!secret) out.push('knative: no Secret template pioneer-secrets');
  const config: Record<string, string> = configMap?.obj.data ?? {};
  const secrets: Record<string, string> = secret?.obj.stringData ?? {};
  for (const [kind, values, file] of [['ConfigMap', config, configMap?.file], ['Secret', secrets, secret?.file]] as const)
    for (const key of Object.keys(values)) if (!HOST_VARS.has(key) && readers(key).length === 0) out.push(`${file}: ${kind} key ${key} is read by no function`);

  const services = ofKind(docs, 'Service').filter((d) => d.obj.apiVersion === 'serving.knative.dev/v1');
  const serviceNames = new Set(services.map((d) => d.obj.metadata?.name));
  for (const name of Object.keys(FUNCTIONS)) if (!serviceNames.has(name)) out.push(`knative: function ${name} is registered but has no Service`);

  for (const { file, obj } of services) {
    const name: string = obj.metadata?.name;
    const where = `${file}: Service ${name}`;
    try {
      new Service(obj).validate();
    } catch (err) {
      out.push(`${where}: ${(err as Error).message}`);
    }
    out.push(...unknownKeys(where, obj, SERVICE_KEYS));
    if (!FUNCTIONS[name]) out.push(`${where}: no registered function is called ${name}`);
    const template = obj.spec?.template ?? {};
    const annotations: Record<string, string> = template.metadata?.annotations ?? {};
    for (const [k, v] of Object.entries(annotations)) {
      const [prefix, key] = k.split('/');
      if (prefix === 'autoscaling.knative.dev' && !AUTOSCALING.has(key!)) out.push(`${where}: unknown annotation ${k}`);
      if (prefix !== 'autoscaling.knative.dev' && prefix !== 'prometheus.io') out.push(`${where}: unknown annotation ${k}`);
      if (/^(min|max|initial)-scale$/.test(key!) && !/^\d+$/.test(String(v))) out.push(`${where}: ${k} must be an integer, got ${v}`);
    }
    const min = Number(annotations['autoscaling.knative.dev/min-scale'] ?? 0);
    const max = Number(annotations['autoscaling.knative.dev/max-scale'] ?? Infinity);
    if (annotations['autoscaling.knative.dev/max-scale'] === undefined) out.push(`${where}: no autoscaling.knative.dev/max-scale`);
    if (min > max) out.push(`${where}: min-scale ${min} is above max-scale ${max}`);
    if (min < 1) out.push(`${where}: min-scale must be at least 1 (the functions keep connections and background work)`);
    const metric = annotations['autoscaling.knative.dev/metric'];
    if (metric !== undefined && !['concurrency', 'rps', 'cpu', 'memory'].includes(metric)) out.push(`${where}: autoscaling metric ${metric} is not concurrency, rps, cpu or memory`);
    const spec = template.spec ?? {};
    if (name === 'gateway') {
      if (!(spec.containerConcurrency === 0 || spec.containerConcurrency >= 1000)) out.push(`${where}: containerConcurrency ${spec.containerConcurrency} would cap SSE streams per instance (0 or at least 1000)`);
      if (!(spec.timeoutSeconds >= 600)) out.push(`${where}: timeoutSeconds ${spec.timeoutSeconds} cuts SSE streams too soon (at least 600)`);
    }
    const containers: any[] = spec.containers ?? [];
    if (containers.length !== 1) out.push(`${where}: expected one container, found ${containers.length}`);
    for (const c of containers) {
      if (c.readinessProbe?.httpGet?.path !== '/readyz') out.push(`${where}: readinessProbe must GET /readyz`);
      if (c.livenessProbe?.httpGet?.path !== '/healthz') out.push(`${where}: livenessProbe must GET /healthz`);
      if (c.securityContext?.runAsNonRoot !== true) out.push(`${where}: securityContext.runAsNonRoot must be true`);
      if (!c.resources?.requests || !c.resources?.limits) out.push(`${where}: resources need requests and limits`);
      else if (memory(c.resources.requests.memory) > memory(c.resources.limits.memory) || cpu(c.resources.requests.cpu) > cpu(c.resources.limits.cpu)) out.push(`${where}: requests exceed limits`);
      const env: Record<string, string> = {};
      for (const e of c.env ?? []) {
        if (e.name === 'PORT') out.push(`${where}: PORT is reserved: Knative sets it from containerPort`);
        if (e.valueFrom?.configMapKeyRef) {
          const ref = e.valueFrom.configMapKeyRef;
          if (ref.name !== 'pioneer-config' || !(ref.key in config)) out.push(`${where}: ${e.name} refers to ${ref.name}/${ref.key}, which the ConfigMap template lacks`);
          env[e.name] = config[ref.key] ?? '';
        } else if (e.valueFrom?.secretKeyRef) {
          const ref = e.valueFrom.secretKeyRef;
          if (ref.name !== 'pioneer-secrets' || !(ref.key in secrets)) out.push(`${where}: ${e.name} refers to ${ref.name}/${ref.key}, which the Secret template lacks`);
          env[e.name] = SECRET_SAMPLES[e.name] ?? 'secret';
        } else env[e.name] = String(e.value ?? '');
      }
      const mounts: string[] = (c.volumeMounts ?? []).map((m: any) => m.mountPath);
      for (const [variable, value] of Object.entries(env))
        if (/_DIR$/.test(variable) && !mounts.some((m) => value === m || value.startsWith(`${m}/`))) out.push(`${where}: ${variable} ${value} is on no mounted volume (the root file system is read-only)`);
      for (const m of c.volumeMounts ?? []) if (!(spec.volumes ?? []).some((v: any) => v.name === m.name)) out.push(`${where}: volumeMount ${m.name} has no volume`);
      for (const v of spec.volumes ?? []) {
        const claim = v.persistentVolumeClaim?.claimName;
        if (claim && !ofKind(docs, 'PersistentVolumeClaim').some((d) => d.obj.metadata?.name === claim)) out.push(`${where}: volume ${v.name} claims ${claim}, which knative/ does not define`);
      }
      if (c.envFrom) out.push(`${where}: envFrom hides which variables the function gets: list them in env`);
      out.push(...envProblems(`${where} env`, name, env));
    }
  }

  const sources = ofKind(docs, 'KafkaSource');
  const topics = ofKind(docs, 'KafkaTopic');
  const topicByName = new Map<string, any>(topics.map((d) => [d.obj.spec?.topicName ?? d.obj.metadata?.name, d.obj]));
  for (const [name, trigger] of Object.entries(triggers)) {
    if (!trigger) continue;
    const mine = sources.filter((d) => d.obj.spec?.sink?.ref?.name === name);
    if (mine.length !== 1) out.push(`knative: Kafka-triggered function ${name} needs one KafkaSource whose sink is its Service, found ${mine.length}`);
  }
  for (const { file, obj } of sources) {
    const where = `${file}: KafkaSource ${obj.metadata?.name}`;
    if (obj.apiVersion !== 'sources.knative.dev/v1beta1') out.push(`${where}: apiVersion ${obj.apiVersion}, expected sources.knative.dev/v1beta1`);
    if (!validateKafkaSource(obj))
      for (const e of validateKafkaSource.errors ?? []) out.push(`${where}${e.instancePath}: ${e.message}${e.params && 'additionalProperty' in e.params ? ` (${e.params.additionalProperty})` : ''}`);
    const spec = obj.spec ?? {};
    if (!['ordered', 'unordered'].includes(spec.ordering)) out.push(`${where}: ordering ${JSON.stringify(spec.ordering)} is neither ordered nor unordered`);
    else if (spec.ordering !== 'ordered') out.push(`${where}: ordering must be ordered (per-key order)`);
    if (!['earliest', 'latest'].includes(spec.initialOffset)) out.push(`${where}: initialOffset ${JSON.stringify(spec.initialOffset)} is neither earliest nor latest`);
    else if (spec.initialOffset !== 'earliest') out.push(`${where}: initialOffset must be earliest (a new group must not skip records)`);
    const ref = spec.sink?.ref;
    if (!ref) {
      out.push(`${where}: no sink.ref`);
      continue;
    }
    if (ref.kind !== 'Service' || ref.apiVersion !== 'serving.knative.dev/v1' || !serviceNames.has(ref.name)) out.push(`${where}: sink ${ref.kind}/${ref.name} is not a Knative Service of knative/`);
    const trigger = triggers[ref.name];
    if (!trigger) {
      out.push(`${where}: sink ${ref.name} is not a Kafka-triggered function`);
      continue;
    }
    if ([...(spec.topics ?? [])].sort().join(',') !== [...trigger.topics].sort().join(',')) out.push(`${where}: topics ${spec.topics} are not the topics ${ref.name} reads (${trigger.topics})`);
    if (spec.consumerGroup !== trigger.groupId) out.push(`${where}: consumerGroup ${spec.consumerGroup} is not ${ref.name}'s group ${trigger.groupId}`);
    const partitions = Math.min(...(spec.topics ?? []).map((t: string) => topicByName.get(t)?.spec?.partitions ?? Infinity));
    if (spec.consumers !== undefined && spec.consumers > partitions) out.push(`${where}: ${spec.consumers} consumers for ${partitions} partitions: the extra ones idle`);
  }

  // the topics the deployed functions name, each defined with enough retention
  const named = new Set<string>();
  for (const [k, v] of Object.entries(config)) if (/_TOPICS?$/.test(k)) for (const t of v.split(',')) named.add(t.trim());
  for (const t of Object.values(triggers)) for (const topic of t?.topics ?? []) named.add(topic);
  for (const topic of named) if (!topicByName.has(topic)) out.push(`knative/kafka: topic ${topic} is used by the functions but not defined`);
  for (const { file, obj } of topics) {
    const where = `${file}: KafkaTopic ${obj.metadata?.name}`;
    out.push(...unknownKeys(where, obj, TOPIC_KEYS));
    if (obj.apiVersion !== 'kafka.strimzi.io/v1beta2') out.push(`${where}: apiVersion ${obj.apiVersion}, expected kafka.strimzi.io/v1beta2`);
    if (!/^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/.test(obj.metadata?.name ?? '')) out.push(`${where}: metadata.name is not a DNS-1123 name`);
    if (!obj.metadata?.labels?.['strimzi.io/cluster']) out.push(`${where}: no strimzi.io/cluster label`);
    const retention = Number(obj.spec?.config?.['retention.ms']);
    // a compacted topic (a reference table) keeps each key's latest record whatever its age: retention does not apply
    const compacted = obj.spec?.config?.['cleanup.policy'] === 'compact';
    if (!compacted && !(retention >= MIN_RETENTION_MS)) out.push(`${where}: retention.ms ${obj.spec?.config?.['retention.ms']} is under ${MIN_RETENTION_MS} (72 h outage + 24 h replay)`);
    if (triggers['reference']?.topics.includes(obj.spec?.topicName) && !compacted) out.push(`${where}: a reference table's topic must be compacted (cleanup.policy: compact)`);
    if (!Number.isInteger(obj.spec?.partitions) || obj.spec.partitions < 1) out.push(`${where}: partitions must be a positive integer`);
  }
  const ingestTopic = config['PIONEER_INGEST_TOPIC'];
  const ingestPartitions = config['PIONEER_INGEST_TOPIC_PARTITIONS'];
  if (ingestTopic && ingestPartitions && topicByName.get(ingestTopic)?.spec?.partitions !== Number(ingestPartitions))
    out.push(`knative/kafka: ${ingestTopic} has ${topicByName.get(ingestTopic)?.spec?.partitions} partitions, PIONEER_INGEST_TOPIC_PARTITIONS says ${ingestPartitions}`);
  return out;
}

interface Stage { name: string; lines: string[] }

/** The Dockerfile's stages, each with its instructions (continuations joined, comments left out). */
function dockerStages(dockerfile: string): Stage[] {
  const lines = dockerfile.replace(/\\\n/g, ' ').split('\n').map((l) => l.trim()).filter((l) => l && !l.startsWith('#'));
  const stages: Stage[] = [];
  for (const line of lines) {
    const from = line.match(/^FROM\s+\S+(?:\s+AS\s+(\S+))?/i);
    if (from) stages.push({ name: from[1] ?? String(stages.length), lines: [] });
    else stages.at(-1)?.lines.push(line);
  }
  return stages;
}

interface ImageLayout {
  /** The final stage's WORKDIR. */
  workdir: string;
  /** Where the final stage puts the build's compiled dist/. */
  dist: string;
  /** What the final stage copies from the build context: `src` (a repository path) becomes `dest` (an image path;
   *  a directory's contents, or the file itself). */
  copies: { src: string; dest: string }[];
}

/** Where the image's files come from, as the final stage of `dockerfile` lays them out. */
function imageLayout(dockerfile: string): ImageLayout {
  let workdir = '/';
  let dist = '';
  const copies: ImageLayout['copies'] = [];
  for (const line of dockerStages(dockerfile).at(-1)?.lines ?? []) {
    const wd = line.match(/^WORKDIR\s+(\S+)/i);
    if (wd) workdir = posix.resolve(workdir, wd[1]!);
    const copy = line.match(/^COPY\s+(.*)$/i);
    if (!copy) continue;
    const parts = copy[1]!.split(/\s+/).filter((p) => !p.startsWith('--'));
    const target = parts.at(-1)!;
    if (/--from=/.test(copy[1]!)) {
      if (parts.length === 2 && /(^|\/)dist\/?$/.test(parts[0]!)) dist = posix.resolve(workdir, target);
      continue;
    }
    for (const src of parts.slice(0, -1)) {
      const repoPath = posix.normalize(src).replace(/\/$/, '');
      const isFile = existsSync(join(ROOT, repoPath)) && statSync(join(ROOT, repoPath)).isFile();
      const dest = posix.resolve(workdir, target);
      copies.push({ src: repoPath, dest: isFile && target.endsWith('/') ? posix.join(dest, posix.basename(repoPath)) : dest });
    }
  }
  return { workdir, dist, copies };
}

/** The .dockerignore pattern (Go's filepath.Match, with `**`) that leaves `path` or a folder above it out, if any. */
function dockerignored(path: string, patterns: string[]): string | undefined {
  const regex = (pattern: string) =>
    new RegExp(`^${pattern.replace(/^\/+|\/+$/g, '').split(/(\*\*\/|\*\*|\*|\?)/).map((part) =>
      part === '**/' ? '(?:.*/)?' : part === '**' ? '.*' : part === '*' ? '[^/]*' : part === '?' ? '[^/]' : part.replace(/[.+^${}()|[\]\\]/g, '\\$&'),
    ).join('')}$`);
  const segments = path.split('/');
  const prefixes = segments.map((_, i) => segments.slice(0, i + 1).join('/'));
  return patterns.find((p) => !p.startsWith('!') && prefixes.some((prefix) => regex(p).test(prefix)));
}

const packageJson = JSON.parse(read('package.json'));

function dockerfileProblems(dockerfile: string, dockerignore: string, pkg: { dependencies?: Record<string, string> } = packageJson): string[] {
  const out: string[] = [];
  const stages = dockerStages(dockerfile);
  const final = stages.at(-1);
  if (!final || stages.length < 2) return ['Dockerfile: expected a multi-stage build'];
  const ignored = dockerignore.split('\n').map((l) => l.trim()).filter((l) => l && !l.startsWith('#'));
  for (const stage of stages)
    for (const line of stage.lines) {
      const copy = line.match(/^COPY\s+(.*)$/i);
      if (!copy || /--from=/.test(copy[1]!)) continue;
      const parts = copy[1]!.split(/\s+/).filter((p) => !p.startsWith('--'));
      for (const src of parts.slice(0, -1)) {
        if (!existsSync(join(ROOT, src))) out.push(`Dockerfile: COPY ${src}: no such file in the repository`);
        const hit = ignored.find((p) => src === p || src.startsWith(`${p}/`));
        if (hit) out.push(`Dockerfile: COPY ${src}: excluded by .dockerignore (${hit})`);
      }
    }
  const user = final.lines.filter((l) => /^USER\s/i.test(l)).at(-1)?.split(/\s+/)[1];
  if (!user || /^(root|0)(:|$)/.test(user)) out.push(`Dockerfile: the final stage runs as ${user ?? 'root'}, not as a non-root user`);
  const modules = final.lines.find((l) => /^COPY\s+--from=\S+\s+\S*node_modules/i.test(l));
  const depsStage = modules?.match(/--from=(\S+)/)?.[1];
  const stage = stages.find((s) => s.name === depsStage);
  if (!stage || !stage.lines.some((l) => /^RUN\s.*npm ci\b.*--omit=dev/.test(l))) out.push('Dockerfile: the final stage\'s node_modules must come from a stage that runs npm ci --omit=dev');
  if (final.lines.some((l) => /^RUN\s.*npm (ci|install)\b/.test(l) && !/--omit=dev/.test(l))) out.push('Dockerfile: the final stage installs development dependencies');
  if (!final.lines.some((l) => /^ENTRYPOINT\s/i.test(l))) out.push('Dockerfile: no ENTRYPOINT');
  if (!stages.some((s) => s.lines.some((l) => /tsc -p tsconfig\.build\.json/.test(l) && /cp platform\/redis\/scripts\/\*\.lua dist\/platform\/redis\/scripts/.test(l))))
    out.push('Dockerfile: the build must compile tsconfig.build.json and copy the Lua scripts beside the compiled Redis client');
  for (const stage of stages)
    for (const line of stage.lines) {
      const env = line.match(/^ENV\s+(.*)$/i);
      if (!env) continue;
      // NAME=value pairs; a value may be quoted and hold '=' itself (NODE_OPTIONS="--max-old-space-size=128")
      for (const m of env[1]!.matchAll(/(?:^|\s)([A-Za-z_][A-Za-z0-9_]*)=(?:"(?:[^"\\]|\\.)*"|\S*)/g)) if (!HOST_VARS.has(m[1]!) && readers(m[1]!).length === 0) out.push(`Dockerfile: ENV ${m[1]} is read by no function`);
    }

  // the customer portal: the compiled subscriptions function reads portal/ as many levels up from dist/ as its
  // source does from the repository's root, and serves packages of node_modules, which has production ones only
  const layout = imageLayout(dockerfile);
  const portal = relative(ROOT, PORTAL_DIR);
  if (!layout.dist) out.push('Dockerfile: the final stage copies no compiled dist/ from the build');
  else {
    const wanted = posix.join(layout.dist, portal);
    if (!layout.copies.some((c) => c.src === portal && c.dest === wanted))
      out.push(`Dockerfile: the image has no ${portal}/ at ${wanted}, where the compiled subscriptions function reads the portal's files (COPY ${portal} ${posix.relative(layout.workdir, wanted)} in the final stage)`);
  }
  for (const file of readdirSync(PORTAL_DIR)) {
    const hit = dockerignored(`${portal}/${file}`, ignored);
    if (hit) out.push(`Dockerfile: ${portal}/${file}, which the portal serves, is excluded by .dockerignore (${hit})`);
  }
  for (const { specifier } of Object.values(PORTAL_VENDOR)) {
    const name = specifier.split('/').slice(0, specifier.startsWith('@') ? 2 : 1).join('/');
    if (!pkg.dependencies?.[name]) out.push(`Dockerfile: the portal serves ${specifier} from node_modules, but ${name} is not a production dependency of package.json: npm ci --omit=dev leaves it out of the image`);
  }
  return out;
}

// ---- one base URL: the Ingresses in front of the functions --------------------------------------------------------

/** "METHOD /v1/templated/{path}" -> the function whose app registers it (learned with the triggers). */
const servedRoutes = new Map<string, string>();
const templated = (honoPath: string) => honoPath.replace(/:([A-Za-z0-9_]+)(\{[^}]*\})?/g, '{$1}');

interface PathRule { where: string; path: string; fn: string | undefined }

const INGRESS_KEYS: KeySpec = {
  apiVersion: true, kind: true,
  metadata: { name: true, namespace: true, labels: true, annotations: true },
  spec: {
    ingressClassName: true,
    tls: true,
    rules: [{ host: true, http: { paths: [{ path: true, pathType: true, backend: { service: { name: true, port: { number: true, name: true } } } }] } }],
  },
};

/** The path rules of `docs`' Ingresses, each with the function it reaches (`fnOf`), and what is wrong with them. */
function ingressRules(docs: Doc[], fnOf: (where: string, ingress: any, path: any, out: string[]) => string | undefined): { rules: PathRule[]; problems: string[] } {
  const rules: PathRule[] = [];
  const out: string[] = [];
  const ingresses = ofKind(docs, 'Ingress');
  if (ingresses.length === 0) out.push('no Ingress');
  for (const { file, obj } of ingresses) {
    const where = `${file}: Ingress ${obj.metadata?.name}`;
    if (obj.apiVersion !== 'networking.k8s.io/v1') out.push(`${where}: apiVersion ${obj.apiVersion} is not networking.k8s.io/v1`);
    out.push(...unknownKeys(where, obj, INGRESS_KEYS));
    const annotations: Record<string, string> = obj.metadata?.annotations ?? {};
    if (annotations['nginx.ingress.kubernetes.io/use-regex'] !== 'true') out.push(`${where}: its paths are regular expressions, but use-regex is not "true"`);
    for (const rule of obj.spec?.rules ?? [])
      for (const p of rule.http?.paths ?? []) {
        const at = `${where} path ${p.path}`;
        if (typeof p.path !== 'string' || !p.path.startsWith('/')) out.push(`${at}: not an absolute path`);
        if (p.pathType !== 'ImplementationSpecific') out.push(`${at}: a regular expression needs pathType ImplementationSpecific, not ${p.pathType}`);
        if (typeof p.path === 'string' && !p.path.endsWith('$')) out.push(`${at}: not anchored with $ (it would take longer paths of other functions)`);
        try {
          new RegExp(p.path);
        } catch (err) {
          out.push(`${at}: ${(err as Error).message}`);
        }
        const fn = fnOf(at, obj, p, out);
        if (fn !== undefined && !FUNCTIONS[fn]) out.push(`${at}: reaches ${fn}, which is no registered function`);
        rules.push({ where: at, path: p.path, fn });
      }
  }
  return { rules, problems: out };
}

/** An operation's path with its parameters filled in, as a client sends it. */
const samplePath = (path: string) => path.replace(/\{type\}/g, 'com.example.payment.sent').replace(/\{[A-Za-z]+\}/g, 'sub_0a1b2c');

/** Paths every function answers itself, not routed from the base URL (`POST /` is a Kafka trigger's endpoint). */
const OWN_PATHS = new Set(['/healthz', '/readyz', '/metrics', '/']);

/** What the functions serve besides the API of openapi.yaml: the customer portal's page and files
 *  (`GET /portal/app.js` -> subscriptions), learned from the functions' routes like the API's. */
const pageRoutes = () => [...servedRoutes].filter(([key]) => {
  const path = key.split(' ')[1]!;
  return !path.startsWith('/v1/') && !OWN_PATHS.has(path) && !path.includes('*');
});

/** Every operation of openapi.yaml and every page (the portal's paths) must match exactly one rule (nginx matches
 *  regular expressions case-insensitively), and that rule must reach the function that serves it. */
function routingProblems(name: string, rules: PathRule[]): string[] {
  const out: string[] = [];
  const reach = (key: string, sample: string, wanted: string) => {
    const matching = rules.filter((r) => {
      try {
        return new RegExp(`^${r.path}`, 'i').test(sample);
      } catch {
        return false;
      }
    });
    if (matching.length === 0) out.push(`${name}: ${key} (${sample}) reaches no function, served by ${wanted}`);
    else if (matching.length > 1) out.push(`${name}: ${key} (${sample}) matches ${matching.length} rules: ${matching.map((r) => r.where).join('; ')}`);
    else if (matching[0]!.fn !== wanted) out.push(`${name}: ${key} (${sample}) reaches ${matching[0]!.fn}, served by ${wanted}`);
  };
  for (const op of publicOperations()) {
    const key = `${op.method.toUpperCase()} ${op.path}`;
    const wanted = servedRoutes.get(key);
    if (!wanted) {
      out.push(`${name}: ${key} is served by no function`);
      continue;
    }
    reach(key, samplePath(op.path), wanted);
  }
  for (const [key, wanted] of pageRoutes()) reach(key, key.split(' ')[1]!, wanted);
  for (const probe of ['/v1/nowhere', '/healthz', '/metrics', '/portals'])
    for (const r of rules) if (new RegExp(`^${r.path}`, 'i').test(probe)) out.push(`${name}: ${probe}, which no function serves in the API, reaches ${r.fn} (${r.where})`);
  return out;
}

/** knative/: each rule's backend is a function's Knative Service, with that Service's cluster-local host name. */
function knativeIngressProblems(docs: Doc[]): string[] {
  const services = new Set(ofKind(docs, 'Service').filter((d) => d.obj.apiVersion === 'serving.knative.dev/v1').map((d) => d.obj.metadata?.name));
  const { rules, problems } = ingressRules(docs, (at, ingress, path, out) => {
    const service = path.backend?.service;
    const name: string | undefined = service?.name;
    if (!name || !services.has(name)) out.push(`${at}: backend ${name} is not a Knative Service of knative/`);
    if (service?.port?.number !== 80) out.push(`${at}: backend port ${service?.port?.number} is not 80, the port of a Knative Service`);
    const vhost = ingress.metadata?.annotations?.['nginx.ingress.kubernetes.io/upstream-vhost'];
    if (!new RegExp(`^${name}\\.[a-z0-9-]+\\.svc\\.cluster\\.local$`).test(vhost ?? '')) out.push(`${at}: upstream-vhost ${vhost} is not ${name}'s cluster-local host, which Knative's ingress routes by`);
    return name;
  });
  return [...problems, ...routingProblems('knative', rules)];
}

/** openfaas-ingress.yaml: each rule reaches the OpenFaaS gateway, rewritten to /function/<name>/<the path>. */
function openfaasIngressProblems(docs: Doc[]): string[] {
  const { rules, problems } = ingressRules(docs, (at, ingress, path, out) => {
    const service = path.backend?.service;
    if (service?.name !== 'gateway' || service?.port?.number !== 8080) out.push(`${at}: backend ${service?.name}:${service?.port?.number} is not the OpenFaaS gateway (gateway:8080)`);
    const target: string = ingress.metadata?.annotations?.['nginx.ingress.kubernetes.io/rewrite-target'] ?? '';
    const m = /^\/function\/([a-z0-9-]+)\/\$1$/.exec(target);
    if (!m) {
      out.push(`${at}: rewrite-target ${target || 'unset'} is not /function/<name>/$1`);
      return undefined;
    }
    if (!/^\/\((?!\?)/.test(String(path.path))) out.push(`${at}: the path after its first / must be capture group 1, which rewrite-target appends`);
    return m[1];
  });
  return [...problems, ...routingProblems('openfaas', rules)];
}

function loadDocs(file: string): Doc[] {
  return parseAllDocuments(read(file)).map((d) => ({ file, obj: d.toJS() })).filter((d) => d.obj);
}

// ---- tests -------------------------------------------------------------------------------------------------------

const stack = parse(read('stack.yml'));
const knative = loadKnative();
const openfaasIngress = loadDocs('openfaas-ingress.yaml');
const dockerfile = read('Dockerfile');
const dockerignore = read('.dockerignore');
const redis = ownService('redis');
let redisUrl = '';
const triggers: Triggers = { openfaas: {}, knative: {} };

/** Creates each registered function with the configuration a host deploys, to learn its Kafka trigger. */
async function learnTriggers(host: keyof Triggers, envOf: (name: string) => Record<string, string>): Promise<void> {
  const log = createLogger({ level: 'silent' });
  for (const [name, def] of Object.entries(FUNCTIONS)) {
    const env = { ...envOf(name), PIONEER_REDIS_URL: redisUrl, PIONEER_KAFKA_BROKERS: deps().brokers, PIONEER_ADMIN_KEY: generateApiKey(), PIONEER_SECRET_KEYS: SECRET_SAMPLES['PIONEER_SECRET_KEYS']! };
    const parsed = def.config.safeParse(env);
    if (!parsed.success) {
      triggers[host][name] = null; // the configuration checks below name the problem
      continue;
    }
    const fn = await def.create(parsed.data, { log, metrics: createMetrics() });
    try {
      triggers[host][name] = fn.trigger ? { topics: [...fn.trigger.topics], groupId: fn.trigger.groupId } : null;
      for (const r of fn.app.routes) if (r.method !== 'ALL') servedRoutes.set(`${r.method} ${templated(r.path)}`, name);
    } finally {
      await fn.close();
    }
  }
}

function knativeEnv(name: string): Record<string, string> {
  const config = ofKind(knative, 'ConfigMap')[0]?.obj.data ?? {};
  const service = ofKind(knative, 'Service').find((d) => d.obj.metadata?.name === name);
  const env: Record<string, string> = {};
  for (const e of service?.obj.spec?.template?.spec?.containers?.[0]?.env ?? []) if (!e.valueFrom?.secretKeyRef) env[e.name] = e.valueFrom?.configMapKeyRef ? config[e.valueFrom.configMapKeyRef.key] : String(e.value);
  return env;
}

before(async () => {
  redisUrl = redis.start();
  await learnTriggers('openfaas', (name) => ({ ...(stack.functions?.[name]?.environment ?? {}) }));
  await learnTriggers('knative', knativeEnv);
});
after(() => redis.stop());

describe('the manifests as they are', () => {
  test('creating the functions with their deployed configuration finds the Kafka-triggered ones', () => {
    for (const host of ['openfaas', 'knative'] as const) {
      assert.deepEqual(Object.keys(triggers[host]).sort(), Object.keys(FUNCTIONS).sort());
      assert.deepEqual(triggers[host]['route'], { topics: ['pioneer.events'], groupId: 'pioneer-route' }, `${host}: the route reads the source topic`);
      assert.equal(triggers[host]['gateway'], null);
    }
  });

  test('stack.yml deploys every registered function, valid against its schema and each function\'s configuration', () => {
    assert.deepEqual(Object.keys(stack.functions).sort(), Object.keys(FUNCTIONS).sort());
    assert.deepEqual(stackProblems(stack, triggers.openfaas), []);
  });

  test('knative/ has a Service per registered function, a KafkaSource per Kafka-triggered one, and the topics', () => {
    const services = ofKind(knative, 'Service').map((d) => d.obj.metadata.name).sort();
    assert.deepEqual(services, Object.keys(FUNCTIONS).sort());
    const triggered = Object.entries(triggers.knative).filter(([, t]) => t !== null).map(([name]) => name).sort();
    assert.deepEqual(ofKind(knative, 'KafkaSource').map((d) => d.obj.spec.sink.ref.name).sort(), triggered);
    assert.deepEqual(ofKind(knative, 'KafkaTopic').map((d) => d.obj.spec.topicName).sort(), ['pioneer.dead-letter', 'pioneer.events', 'pioneer.reference.accounts']);
    assert.deepEqual(knativeProblems(knative, triggers.knative), []);
  });

  test('the Dockerfile copies files that exist, installs production dependencies only, carries the portal and runs as non-root', () => {
    assert.deepEqual(imageLayout(dockerfile).dist, '/app/dist', 'sanity: the compiled code\'s place in the image was found');
    assert.deepEqual(dockerfileProblems(dockerfile, dockerignore), []);
  });

  test('one base URL: the Ingresses route every operation of openapi.yaml and every path of the portal to the function that serves it', () => {
    assert.ok(servedRoutes.size > 10, 'sanity: the functions\' routes were learned');
    const pages = Object.fromEntries(pageRoutes());
    for (const path of ['/portal', '/portal/', '/portal/index.html', '/portal/app.js', '/portal/style.css', '/portal/vendor/preact-htm.js'])
      assert.equal(pages[`GET ${path}`], 'subscriptions', `the subscriptions function serves ${path}`);
    assert.deepEqual(knativeIngressProblems(knative), []);
    assert.deepEqual(openfaasIngressProblems(openfaasIngress), []);
  });

  test('every metric the alert rules and the dashboard use is exported by the code', () => {
    const exported = exportedMetrics();
    assert.ok(exported.has('pioneer_route_dead_letters_total') && exported.has('pioneer_process_resident_memory_bytes'), 'sanity: code and default metrics found');
    const alerts = parse(read('deploy/prometheus/alerts.yml'));
    const rules = alerts.groups.flatMap((g: any) => g.rules);
    const names = rules.map((r: any) => r.alert);
    for (const wanted of ['PioneerFunctionDown', 'PioneerRouteConsumerLag', 'PioneerRouteDeadLetters', 'PioneerWebhookDeadLetters', 'PioneerWebhookLatencyHigh', 'PioneerWebhookEndpointDisabled'])
      assert.ok(names.includes(wanted), `alert ${wanted}`);
    for (const r of rules) assert.ok(r.expr && r.labels?.severity && r.annotations?.summary, `alert ${r.alert} has expr, severity and summary`);
    assert.deepEqual(metricProblems('alerts.yml', rules.map((r: any) => r.expr).join('\n'), exported), []);
    const dashboard = JSON.parse(read('deploy/grafana/pioneer-dashboard.json'));
    const exprs = dashboard.panels.flatMap((p: any) => (p.targets ?? []).map((t: any) => t.expr)).join('\n');
    assert.deepEqual(metricProblems('pioneer-dashboard.json', exprs, exported), []);
    for (const name of codeMetrics()) assert.ok(exprs.includes(name), `the dashboard shows ${name}`);
  });
});

describe('the checks catch broken manifests', () => {
  const stackWith = (edit: (s: any) => void) => {
    const s = clone(stack);
    edit(s);
    return stackProblems(s, triggers.openfaas);
  };
  const knativeWith = (edit: (docs: Doc[]) => void) => {
    const docs = clone(knative);
    edit(docs);
    return knativeProblems(docs, triggers.knative);
  };
  const service = (docs: Doc[], name: string) => ofKind(docs, 'Service').find((d) => d.obj.metadata.name === name)!.obj;
  const source = (docs: Doc[]) => ofKind(docs, 'KafkaSource').find((d) => d.obj.spec?.sink?.ref?.name === 'route')!.obj;
  const matches = (problems: string[], re: RegExp) => assert.ok(problems.some((p) => re.test(p)), `expected a problem matching ${re}, got:\n${problems.join('\n')}`);

  test('stack.yml: a function name with upper case', () => {
    matches(stackWith((s) => { s.functions.Gateway = s.functions.gateway; delete s.functions.gateway; }), /property name must be valid|must match pattern/);
  });
  test('stack.yml: an unknown key', () => {
    matches(stackWith((s) => { s.functions.route.enviroment = { PIONEER_LOG_LEVEL: 'info' }; }), /must NOT have additional properties \(enviroment\)/);
  });
  test('stack.yml: a registered function missing', () => {
    matches(stackWith((s) => { delete s.functions.deliver; }), /function deliver is registered but not deployed/);
  });
  test('stack.yml: a function that is not registered', () => {
    matches(stackWith((s) => { s.functions.notify = clone(s.functions.gateway); }), /no registered function is called notify/);
  });
  test('stack.yml: an environment variable no function reads, or one another function reads', () => {
    matches(stackWith((s) => { s.functions.gateway.environment.PIONEER_SSE_HEARTBEAT = '1000'; }), /PIONEER_SSE_HEARTBEAT is read by no function/);
    matches(stackWith((s) => { s.functions.gateway.environment.PIONEER_DELIVER_TIMEOUT_MS = '1000'; }), /PIONEER_DELIVER_TIMEOUT_MS is not read by gateway \(only by deliver\)/);
  });
  test('stack.yml: a required variable unset, a bad value, a secret given as plain environment', () => {
    matches(stackWith((s) => { s.functions.route.secrets = ['pioneer-redis-url']; }), /route requires PIONEER_KAFKA_BROKERS/);
    matches(stackWith((s) => { s.functions.gateway.environment.PIONEER_SSE_HEARTBEAT_MS = 'soon'; }), /PIONEER_SSE_HEARTBEAT_MS is invalid for gateway/);
    matches(stackWith((s) => { s.functions.gateway.environment.PIONEER_REDIS_URL = 'redis://x:6379'; s.functions.gateway.secrets = []; }), /PIONEER_REDIS_URL is a secret/);
  });
  test('stack.yml: the route without its kafka-connector topic, or with another topic', () => {
    matches(stackWith((s) => { delete s.functions.route.annotations.topic; }), /route is Kafka-triggered but has no kafka-connector topic/);
    matches(stackWith((s) => { s.functions.route.annotations.topic = 'other.events'; }), /other\.events is not the topics route reads/);
    matches(stackWith((s) => { s.functions.gateway.annotations.topic = 'pioneer.events'; }), /gateway is not Kafka-triggered/);
  });
  test('stack.yml: scale.min above scale.max, a missing health path', () => {
    matches(stackWith((s) => { s.functions.gateway.labels['com.openfaas.scale.min'] = '30'; }), /scale.min 30 is above/);
    matches(stackWith((s) => { delete s.functions.gateway.annotations['com.openfaas.ready.http.path']; }), /must have required property 'com.openfaas.ready.http.path'/);
  });

  test('knative: ordering random, initialOffset none', () => {
    matches(knativeWith((d) => { source(d).spec.ordering = 'random'; }), /ordering "random" is neither ordered nor unordered/);
    matches(knativeWith((d) => { source(d).spec.initialOffset = 'none'; }), /initialOffset "none" is neither earliest nor latest/);
    matches(knativeWith((d) => { source(d).spec.initialOffset = 'latest'; }), /initialOffset must be earliest/);
  });
  test('knative: a KafkaSource missing its sink, or sinking elsewhere', () => {
    matches(knativeWith((d) => { delete source(d).spec.sink; }), /no sink\.ref/);
    matches(knativeWith((d) => { source(d).spec.sink.ref.name = 'gateway'; }), /sink gateway is not a Kafka-triggered function/);
  });
  test('knative: a KafkaSource field the CRD does not have, a missing required one, a wrong group', () => {
    matches(knativeWith((d) => { source(d).spec.orderring = 'ordered'; }), /must NOT have additional properties \(orderring\)/);
    matches(knativeWith((d) => { delete source(d).spec.bootstrapServers; }), /must have required property 'bootstrapServers'/);
    matches(knativeWith((d) => { source(d).spec.consumerGroup = 'other'; }), /consumerGroup other is not route's group pioneer-route/);
  });
  test('knative: a Service with an unknown field, a bad type, a missing probe, PORT set', () => {
    matches(knativeWith((d) => { service(d, 'gateway').spec.template.spec.containers[0].readinesProbe = {}; }), /readinesProbe: unknown field/);
    matches(knativeWith((d) => { service(d, 'gateway').spec.template.spec.containerConcurrency = 'many'; }), /containerConcurrency must be integer/);
    matches(knativeWith((d) => { delete service(d, 'route').spec.template.spec.containers[0].livenessProbe; }), /livenessProbe must GET \/healthz/);
    matches(knativeWith((d) => { service(d, 'route').spec.template.spec.containers[0].env.push({ name: 'PORT', value: '9000' }); }), /PORT is reserved/);
    matches(knativeWith((d) => { service(d, 'route').spec.template.metadata.annotations['autoscaling.knative.dev/minScale'] = '1'; }), /unknown annotation autoscaling.knative.dev\/minScale/);
  });
  test('knative: the gateway limited per instance or cut short', () => {
    matches(knativeWith((d) => { service(d, 'gateway').spec.template.spec.containerConcurrency = 10; }), /would cap SSE streams/);
    matches(knativeWith((d) => { service(d, 'gateway').spec.template.spec.timeoutSeconds = 30; }), /cuts SSE streams too soon/);
  });
  test('knative: a missing function, an unregistered one, an env var no function reads, a key the ConfigMap lacks', () => {
    matches(knativeWith((d) => { d.splice(d.findIndex((x) => x.obj.kind === 'Service' && x.obj.metadata.name === 'ingest'), 1); }), /function ingest is registered but has no Service/);
    matches(knativeWith((d) => { const s = clone(service(d, 'gateway')); s.metadata.name = 'notify'; d.push({ file: 'knative/notify.yaml', obj: s }); }), /no registered function is called notify/);
    matches(knativeWith((d) => { service(d, 'deliver').spec.template.spec.containers[0].env.push({ name: 'PIONEER_DELIVERY_TIMEOUT', value: '1' }); }), /PIONEER_DELIVERY_TIMEOUT is read by no function/);
    matches(knativeWith((d) => { ofKind(d, 'ConfigMap')[0]!.obj.data.PIONEER_NOTHING = 'x'; }), /ConfigMap key PIONEER_NOTHING is read by no function/);
    matches(knativeWith((d) => { delete ofKind(d, 'ConfigMap')[0]!.obj.data.PIONEER_LOG_LEVEL; }), /refers to pioneer-config\/PIONEER_LOG_LEVEL, which the ConfigMap template lacks/);
  });
  test('an export directory that is not writable, or a volume that is not there', () => {
    matches(stackWith((s) => { s.functions.export.environment.PIONEER_EXPORT_DIR = '/var/exports'; }), /PIONEER_EXPORT_DIR \/var\/exports is not writable/);
    matches(knativeWith((d) => { service(d, 'export').spec.template.spec.containers[0].volumeMounts = []; }), /PIONEER_EXPORT_DIR \/var\/lib\/pioneer\/exports is on no mounted volume/);
    matches(knativeWith((d) => { d.splice(d.findIndex((x) => x.obj.kind === 'PersistentVolumeClaim'), 1); }), /claims pioneer-exports, which knative\/ does not define/);
  });
  test('knative: a topic without enough retention, or missing; a reference table not compacted', () => {
    matches(knativeWith((d) => { ofKind(d, 'KafkaTopic')[0]!.obj.spec.config['retention.ms'] = '86400000'; }), /retention\.ms 86400000 is under/);
    const table = (d: Doc[]) => ofKind(d, 'KafkaTopic').find((x) => x.obj.spec.topicName === 'pioneer.reference.accounts')!.obj.spec.config;
    matches(knativeWith((d) => { table(d)['cleanup.policy'] = 'delete'; table(d)['retention.ms'] = '604800000'; }), /a reference table's topic must be compacted/);
    matches(knativeWith((d) => { d.splice(d.findIndex((x) => x.obj.kind === 'KafkaTopic' && x.obj.spec.topicName === 'pioneer.dead-letter'), 1); }), /topic pioneer\.dead-letter is used by the functions but not defined/);
  });

  test('Ingress: an operation routed to another function, to none, to two; a bad backend or rewrite', () => {
    const ingress = (docs: Doc[], fn: string) => ofKind(docs, 'Ingress').find((d) => d.obj.metadata.name === `pioneer-api-${fn}`)!.obj;
    const knativeIngressWith = (edit: (docs: Doc[]) => void) => {
      const docs = clone(knative);
      edit(docs);
      return knativeIngressProblems(docs);
    };
    const openfaasWith = (edit: (docs: Doc[]) => void) => {
      const docs = clone(openfaasIngress);
      edit(docs);
      return openfaasIngressProblems(docs);
    };
    matches(knativeIngressWith((d) => { ingress(d, 'gateway').spec.rules[0].http.paths[1].backend.service.name = 'subscriptions'; }), /GET \/v1\/stats \(\/v1\/stats\) reaches subscriptions, served by gateway/);
    matches(knativeIngressWith((d) => { d.splice(d.findIndex((x) => x.obj.kind === 'Ingress' && x.obj.metadata.name === 'pioneer-api-deliver'), 1); }), /GET \/v1\/subscriptions\/\{id\}\/deliveries .* reaches no function, served by deliver/);
    matches(knativeIngressWith((d) => { ingress(d, 'subscriptions').spec.rules[0].http.paths[2].path = '/v1/subscriptions.*$'; }), /GET \/v1\/subscriptions\/\{id\}\/events .* matches 2 rules/);
    matches(knativeIngressWith((d) => { ingress(d, 'ingest').metadata.annotations['nginx.ingress.kubernetes.io/upstream-vhost'] = 'api.pioneer.example.com'; }), /upstream-vhost api\.pioneer\.example\.com is not ingest's cluster-local host/);
    matches(knativeIngressWith((d) => { ingress(d, 'ingest').spec.rules[0].http.paths[0].path = '/v1/events(?:/[^/]+)?'; }), /not anchored/);
    matches(openfaasWith((d) => { ingress(d, 'export').metadata.annotations['nginx.ingress.kubernetes.io/rewrite-target'] = '/function/deliver/$1'; }), /POST \/v1\/exports \(\/v1\/exports\) reaches deliver, served by export/);
    matches(openfaasWith((d) => { ingress(d, 'gateway').spec.rules[0].http.paths[0].backend.service.name = 'gateway-external'; }), /is not the OpenFaaS gateway/);
    matches(openfaasWith((d) => { ingress(d, 'gateway').metadata.annotations['nginx.ingress.kubernetes.io/rewrite-target'] = '/function/gateway'; }), /rewrite-target \/function\/gateway is not/);
    matches(openfaasWith((d) => { ingress(d, 'gateway').spec.rules[0].http.paths[0].path = '(/v1/subscriptions/[^/]+/events)$'; }), /not an absolute path/);
  });
  test('Ingress: the portal not routed, routed to another function, or only its page', () => {
    const ingress = (docs: Doc[], fn: string) => ofKind(docs, 'Ingress').find((d) => d.obj.metadata.name === `pioneer-api-${fn}`)!.obj;
    const portalRule = (docs: Doc[]) => ingress(docs, 'subscriptions').spec.rules[0].http.paths.find((p: any) => /portal/.test(p.path));
    const withoutPortal = (docs: Doc[]) => {
      const paths = ingress(docs, 'subscriptions').spec.rules[0].http.paths;
      paths.splice(paths.indexOf(portalRule(docs)), 1);
    };
    const knativeIngressWith = (edit: (docs: Doc[]) => void) => {
      const docs = clone(knative);
      edit(docs);
      return knativeIngressProblems(docs);
    };
    const openfaasWith = (edit: (docs: Doc[]) => void) => {
      const docs = clone(openfaasIngress);
      edit(docs);
      return openfaasIngressProblems(docs);
    };
    matches(knativeIngressWith(withoutPortal), /knative: GET \/portal \(\/portal\) reaches no function, served by subscriptions/);
    matches(knativeIngressWith(withoutPortal), /knative: GET \/portal\/vendor\/preact-htm\.js .* reaches no function, served by subscriptions/);
    matches(openfaasWith(withoutPortal), /openfaas: GET \/portal\/app\.js .* reaches no function, served by subscriptions/);
    matches(knativeIngressWith((d) => { portalRule(d).path = '/portal/?$'; }), /GET \/portal\/app\.js .* reaches no function/);
    matches(knativeIngressWith((d) => {
      const rule = clone(portalRule(d));
      withoutPortal(d);
      ingress(d, 'gateway').spec.rules[0].http.paths.push(rule);
      rule.backend.service.name = 'gateway';
    }), /GET \/portal\/index\.html .* reaches gateway, served by subscriptions/);
    matches(knativeIngressWith((d) => { portalRule(d).path = '/portal.*$'; }), /\/portals, which no function serves in the API, reaches subscriptions/);
  });

  test('Dockerfile: running as root, dev dependencies, a missing file', () => {
    matches(dockerfileProblems(dockerfile.replace(/^USER .*$/m, 'USER root'), dockerignore), /runs as root/);
    matches(dockerfileProblems(dockerfile.replace(/npm ci --omit=dev/, 'npm ci'), dockerignore), /npm ci --omit=dev/);
    matches(dockerfileProblems(dockerfile.replace('COPY adapters adapters', 'COPY hosts hosts'), dockerignore), /COPY hosts: no such file/);
    matches(dockerfileProblems(dockerfile, `${dockerignore}\nadapters\n`), /COPY adapters: excluded by \.dockerignore/);
    matches(dockerfileProblems(dockerfile.replace(/^USER /m, 'ENV PIONEER_WHATEVER=1\nUSER '), dockerignore), /ENV PIONEER_WHATEVER is read by no function/);
    matches(dockerfileProblems(dockerfile.replace(/^USER /m, 'ENV NODE_OPTIONS="--a=1 --b=2" PIONEER_OTHER=1\nUSER '), dockerignore), /ENV PIONEER_OTHER is read by no function/);
  });
  test('Dockerfile: the portal left out of the image, put where the code does not read it, excluded, or its package a dev dependency', () => {
    const missing = /the image has no portal\/ at \/app\/dist\/portal, where the compiled subscriptions function reads the portal's files/;
    assert.match(dockerfile, /^COPY portal dist\/portal$/m, 'sanity: the line the edits below change');
    matches(dockerfileProblems(dockerfile.replace(/^COPY portal dist\/portal$/m, ''), dockerignore), missing);
    matches(dockerfileProblems(dockerfile.replace(/^COPY portal dist\/portal$/m, 'COPY portal portal'), dockerignore), missing);
    matches(dockerfileProblems(dockerfile.replace(/^COPY portal dist\/portal$/m, 'COPY portal/app.js dist/portal/'), dockerignore), missing);
    matches(dockerfileProblems(dockerfile, `${dockerignore}\nportal/*.css\n`), /portal\/style\.css, which the portal serves, is excluded by \.dockerignore \(portal\/\*\.css\)/);
    matches(dockerfileProblems(dockerfile, `${dockerignore}\n**/*.html\n`), /portal\/index\.html, which the portal serves, is excluded by \.dockerignore/);
    const devOnly = clone(packageJson);
    devOnly.devDependencies.htm = devOnly.dependencies.htm;
    delete devOnly.dependencies.htm;
    matches(dockerfileProblems(dockerfile, dockerignore, devOnly), /serves htm\/preact\/standalone from node_modules, but htm is not a production dependency/);
  });
  test('metrics: a name no function exports', () => {
    matches(metricProblems('alerts.yml', 'rate(pioneer_route_events_totl[5m])', exportedMetrics()), /pioneer_route_events_totl is exported by no function/);
  });
});

describe('the image', () => {
  const build = join(ROOT, '.run', randomName('image'));
  let child: ChildProcess | undefined;
  after(() => {
    child?.kill('SIGKILL');
    rmSync(build, { recursive: true, force: true });
  });

  test('tsconfig.build.json compiles, and the entrypoint starts a function from an OpenFaaS secret file', async () => {
    mkdirSync(build, { recursive: true });
    await run('npx', ['tsc', '-p', 'tsconfig.build.json', '--outDir', join(build, 'dist')], { cwd: ROOT });
    // as the Dockerfile does: the Lua scripts beside the compiled Redis client
    mkdirSync(join(build, 'dist/platform/redis/scripts'), { recursive: true });
    for (const f of readdirSync(join(ROOT, 'platform/redis/scripts'))) copyFileSync(join(ROOT, 'platform/redis/scripts', f), join(build, 'dist/platform/redis/scripts', f));
    assert.ok(existsSync(join(build, 'dist/adapters/knative/server.js')));
    // and what the final stage copies from the build context, where it puts it (the image's WORKDIR is `build`)
    const layout = imageLayout(dockerfile);
    for (const { src, dest } of layout.copies)
      if (dest.startsWith(`${layout.workdir}/`)) cpSync(join(ROOT, src), join(build, posix.relative(layout.workdir, dest)), { recursive: true });

    // the entrypoint with its secrets directory moved to a temporary one
    const secretsDir = mkdtempSync(join(tmpdir(), 'pioneer-secrets-'));
    writeFileSync(join(secretsDir, 'pioneer-redis-url'), `${redisUrl}\n`);
    const entrypoint = join(build, 'entrypoint.sh');
    writeFileSync(entrypoint, read('deploy/docker-entrypoint.sh').replace('secrets_dir=/var/openfaas/secrets', `secrets_dir=${secretsDir}`));
    chmodSync(entrypoint, 0o755);
    const env: Record<string, string> = { PATH: process.env['PATH'] ?? '', PIONEER_FUNCTION: 'gateway', PORT: '0', PIONEER_LOG_LEVEL: 'silent', PIONEER_KAFKA_BROKERS: deps().brokers };
    child = spawn(entrypoint, [], { cwd: build, env, stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    child.stdout!.on('data', (b: Buffer) => (output += b));
    child.stderr!.on('data', (b: Buffer) => (output += b));
    const url = await waitFor(() => output.match(/pioneer: gateway listening on http:\/\/0\.0\.0\.0:(\d+)/)?.[1], { timeout: 20000, message: `the listening line (output: ${output})` });
    const ready = await fetch(`http://127.0.0.1:${url}/readyz`);
    assert.equal(ready.status, 200);
    assert.deepEqual(await ready.json(), { status: 'ready', function: 'gateway', checks: { redis: true } });
    child.kill('SIGTERM');
    await new Promise((r) => child!.once('exit', r));
    rmSync(secretsDir, { recursive: true, force: true });
  });

  test('the image\'s subscriptions function serves the portal: its page, its files and Preact with htm', async () => {
    const env: Record<string, string> = {
      PATH: process.env['PATH'] ?? '', PIONEER_FUNCTION: 'subscriptions', PORT: '0', PIONEER_LOG_LEVEL: 'silent',
      PIONEER_REDIS_URL: redisUrl, PIONEER_SECRET_KEYS: SECRET_SAMPLES['PIONEER_SECRET_KEYS']!,
    };
    const fn = spawn(join(build, 'entrypoint.sh'), [], { cwd: build, env, stdio: ['ignore', 'pipe', 'pipe'] });
    child = fn;
    let output = '';
    let exited = false;
    fn.stdout!.on('data', (b: Buffer) => (output += b));
    fn.stderr!.on('data', (b: Buffer) => (output += b));
    const stopped = new Promise<never>((_, reject) => fn.once('exit', () => {
      exited = true;
      reject(new Error(`the subscriptions function stopped: ${output}`));
    }));
    stopped.catch(() => {});
    const port = await Promise.race([
      waitFor(() => output.match(/pioneer: subscriptions listening on http:\/\/0\.0\.0\.0:(\d+)/)?.[1], { timeout: 20000, message: 'the listening line' }),
      stopped,
    ]);
    try {
      const base = `http://127.0.0.1:${port}`;
      const page = await fetch(`${base}/portal`);
      assert.equal(page.status, 200, await page.clone().text());
      assert.match(page.headers.get('content-type') ?? '', /^text\/html/);
      assert.match(page.headers.get('content-security-policy') ?? '', /script-src 'self'/);
      assert.match(await page.text(), /<script type="module" src="\/portal\/app\.js">/);
      const files = [...readdirSync(PORTAL_DIR).map((f) => `/portal/${f}`), ...Object.keys(PORTAL_VENDOR)];
      for (const path of files) {
        const res = await fetch(base + path);
        assert.equal(res.status, 200, path);
        assert.ok((await res.text()).length > 0, `${path} is not empty`);
      }
      const vendor = await (await fetch(`${base}/portal/vendor/preact-htm.js`)).text();
      assert.match(vendor, /export\s*\{/, 'Preact with htm, as an ES module');
    } finally {
      fn.kill('SIGTERM');
      if (!exited) await stopped.catch(() => {});
    }
  });

  test('without the portal\'s files a function still starts, warns, and answers /portal 404 naming what is missing', async () => {
    const warnings: string[] = [];
    const log = createLogger({ level: 'silent' });
    log.warn = ((_: unknown, msg: string) => { warnings.push(msg); }) as unknown as typeof log.warn;
    const app = new Hono() as unknown as App;
    mountPortal(app, log, new Error('/app/dist/portal/index.html is missing'));
    assert.deepEqual(warnings, ['the portal is not served: /app/dist/portal/index.html is missing']);
    const res = await app.request('/portal');
    assert.equal(res.status, 404);
    const body = (await res.json()) as { code: string; title: string };
    assert.equal(body.code, 'portal_not_installed');
    assert.match(body.title, /\/app\/dist\/portal\/index\.html is missing/);
  });

  test('without its required variables the entrypoint stops with one line naming them', async () => {
    const entrypoint = join(build, 'entrypoint.sh');
    const result = await run(entrypoint, ['route'], { cwd: build, env: { PATH: process.env['PATH'] ?? '' } }).then(
      () => ({ code: 0, stderr: '' }),
      (err: { code: number; stderr: string }) => err,
    );
    assert.equal(result.code, 2);
    assert.match(result.stderr, /invalid configuration: PIONEER_KAFKA_BROKERS is required; PIONEER_REDIS_URL is required/);
  });
});

describe('scripts/create-topics.sh', () => {
  test('creates both topics with 7 days of retention and the reference topics compacted, and on a second run raises partitions and keeps them', async () => {
    const src = randomName('deploy-src');
    const dl = randomName('deploy-dl');
    const ref = randomName('deploy-ref');
    const args = ['--bootstrap-server', deps().brokers, '--source-topic', src, '--dead-letter-topic', dl, '--reference-topics', ref, '--replication-factor', '1'];
    const first = await run('bash', ['scripts/create-topics.sh', ...args, '--partitions', '3', '--dead-letter-partitions', '1'], { cwd: ROOT });
    assert.match(first.stdout, new RegExp(`created ${src}: 3 partitions, replication 1, retention.ms 604800000`));
    assert.match(first.stdout, new RegExp(`created ${ref}: 3 partitions, replication 1, compacted`));
    const second = await run('bash', ['scripts/create-topics.sh', ...args, '--partitions', '4', '--dead-letter-partitions', '1'], { cwd: ROOT });
    assert.match(second.stdout, new RegExp(`updated ${src}: partitions raised from 3 to 4`));
    const admin = kafkaClient().admin();
    await admin.connect();
    try {
      const meta = await admin.fetchTopicMetadata({ topics: [src, dl] });
      assert.deepEqual(meta.topics.map((t) => [t.name, t.partitions.length]).sort(), [[dl, 1], [src, 4]].sort());
      const configs = await admin.describeConfigs({ includeSynonyms: false, resources: [src, dl].map((name) => ({ type: 2, name, configNames: ['retention.ms'] })) });
      for (const r of configs.resources) assert.equal(r.configEntries.find((e) => e.configName === 'retention.ms')?.configValue, '604800000', r.resourceName);
      const table = await admin.describeConfigs({ includeSynonyms: false, resources: [{ type: 2, name: ref, configNames: ['cleanup.policy'] }] });
      assert.equal(table.resources[0]!.configEntries.find((e) => e.configName === 'cleanup.policy')?.configValue, 'compact');
    } finally {
      await admin.disconnect();
    }
  });

  test('refuses a missing bootstrap server', async () => {
    await assert.rejects(run('bash', ['scripts/create-topics.sh'], { cwd: ROOT }), (err: { code: number; stderr: string }) => err.code === 2 && /--bootstrap-server is required/.test(err.stderr));
  });
});
