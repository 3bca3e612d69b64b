/**
 * Writes docs/configuration.md from the functions' zod config schemas, so the reference cannot drift from the
 * code: `npx tsx scripts/config-doc.ts` (a test fails when the file is out of date).
 */
import { writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { z } from 'zod';
import { FUNCTIONS } from '../functions/registry.ts';
import { hostSchema } from '../adapters/local/host.ts';
import { containerHostSchema } from '../adapters/http/start-function.ts';

interface Row {
  name: string;
  users: Set<string>;
  required: boolean;
  def: string;
  type: string;
}

function describeSchema(schema: z.ZodType): { required: boolean; def: string; type: string } {
  const json = z.toJSONSchema(schema, { io: 'input', unrepresentable: 'any' }) as Record<string, unknown>;
  const def = schema.safeParse(undefined);
  // the default as it is written in the environment where the schema knows it, else the parsed default
  const raw = json['default'] !== undefined ? json['default'] : def.success ? def.data : undefined;
  const shown = Array.isArray(raw) ? raw.join(',') : typeof raw === 'object' && raw !== null ? JSON.stringify(raw) : raw;
  const type = json['enum'] ? (json['enum'] as string[]).join(' \\| ') : (json['type'] as string | undefined) ?? 'string';
  const bounds = [json['minimum'] !== undefined ? `≥ ${json['minimum']}` : '', json['maximum'] !== undefined ? `≤ ${json['maximum']}` : ''].filter(Boolean).join(', ');
  return {
    required: !def.success && !(schema as z.ZodType).safeParse(undefined).success && !schema.isOptional(),
    def: shown !== undefined && shown !== '' ? '`' + String(shown) + '`' : '',
    type: bounds ? `${type} (${bounds})` : type,
  };
}

/** Variables of which one must be set (createRedis refuses to start without either). */
const EITHER: Record<string, string> = {
  PIONEER_REDIS_URL: 'PIONEER_REDIS_CLUSTER_NODES',
  PIONEER_REDIS_CLUSTER_NODES: 'PIONEER_REDIS_URL',
};

export function configurationDoc(): string {
  const rows = new Map<string, Row>();
  const add = (owner: string, shape: Record<string, z.ZodType>) => {
    for (const [name, schema] of Object.entries(shape)) {
      const row = rows.get(name) ?? { name, users: new Set<string>(), ...describeSchema(schema) };
      row.users.add(owner);
      rows.set(name, row);
    }
  };
  for (const [name, def] of Object.entries(FUNCTIONS)) {
    add(name, (def.config as unknown as z.ZodObject).shape as Record<string, z.ZodType>);
    add('local host', { [`PIONEER_${name.toUpperCase()}_PORT`]: z.coerce.number().int().min(0).max(65535).default(def.defaultPort) });
  }
  add('local host', hostSchema.shape as unknown as Record<string, z.ZodType>);
  add('container host', containerHostSchema.shape as unknown as Record<string, z.ZodType>);
  const lines = [
    '# Configuration',
    '',
    'Every function reads its configuration from environment variables, parsed once at start-up; a missing or',
    'malformed variable stops it with one line naming the variable. This reference is generated from the code',
    '(`npx tsx scripts/config-doc.ts`); a test fails when it is out of date.',
    '',
    'Durations are milliseconds unless the name says otherwise. "local host" is `adapters/local/main.ts` (all',
    'functions in one process); "container host" is `adapters/knative/server.ts` (one function per container).',
    '',
    '| variable | read by | required | default | type |',
    '| --- | --- | --- | --- | --- |',
  ];
  for (const r of [...rows.values()].sort((a, b) => a.name.localeCompare(b.name)))
    lines.push(`| \`${r.name}\` | ${[...r.users].sort().join(', ')} | ${r.required ? 'yes' : EITHER[r.name] ? `yes, or \`${EITHER[r.name]}\`` : ''} | ${r.def} | ${r.type} |`);
  return lines.join('\n') + '\n';
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const out = fileURLToPath(new URL('../docs/configuration.md', import.meta.url));
  writeFileSync(out, configurationDoc());
  process.stdout.write(`wrote ${out}\n`);
}
