/**
 * consumer-sdk/Dockerfile, checked offline as test/unit/deploy-manifests.test.ts checks the platform's image
 * (there is no Docker engine to build it with):
 * - multi-stage, every base image pinned by a tag (not latest) or a digest, and no Node.js in the final one;
 * - every COPY names files that exist and that consumer-sdk/Dockerfile.dockerignore lets through, and the
 *   ignore file keeps the repository's secrets and build output out of the build context;
 * - the ENTRYPOINT is the executable the build stage's build-binary.sh writes, CMD a command of the CLI;
 * - the final stage runs as a non-root user (by number), the files directory (PIONEER_DIR) is a VOLUME that
 *   user owns, and ENV sets only what the CLI reads, no secret;
 * - built from nothing but what the COPY lines bring (and the locked node_modules), the build stage's script
 *   produces an executable that answers --help.
 * Each check is also shown to fail on a broken copy of the Dockerfile.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { ROOT } from '../../test/support/helpers.ts';
import { SETTINGS } from '../src/config.ts';

const read = (path: string) => readFileSync(join(ROOT, path), 'utf8');
const dockerfile = read('consumer-sdk/Dockerfile');
const dockerignore = read('consumer-sdk/Dockerfile.dockerignore');

/** What the CLI reads from its environment: its settings, the progress line, and node's own NODE_OPTIONS. */
const READ_BY_THE_CLI = new Set([...SETTINGS.map((s) => s.env), 'PIONEER_PROGRESS', 'NODE_OPTIONS']);
const SECRET_NAME = /KEY|SECRET|TOKEN|PASSWORD|PASSWD|CREDENTIAL/i;
const BUILD_SCRIPT = 'consumer-sdk/scripts/build-binary.sh';
const COMMANDS = new Set(['run', 'status', 'seed', '--help']);

interface Stage { name: string; base: string; lines: string[] }

/** The stages, with ARG defaults declared before the first FROM substituted into the base images. */
function parseDockerfile(text: string): Stage[] {
  const lines = text.replace(/\\\n/g, ' ').split('\n').map((l) => l.trim()).filter((l) => l && !l.startsWith('#'));
  const args = new Map<string, string>();
  const stages: Stage[] = [];
  for (const line of lines) {
    const from = line.match(/^FROM\s+(?:--platform=\S+\s+)?(\S+)(?:\s+AS\s+(\S+))?/i);
    if (from) {
      const base = from[1]!.replace(/\$\{?([A-Za-z_][A-Za-z0-9_]*)\}?/g, (m, name: string) => args.get(name) ?? m);
      stages.push({ name: from[2] ?? String(stages.length), base, lines: [] });
      continue;
    }
    const arg = !stages.length && line.match(/^ARG\s+([A-Za-z_][A-Za-z0-9_]*)(?:=(.*))?$/i);
    if (arg && arg[2] !== undefined) args.set(arg[1]!, arg[2].replace(/^"(.*)"$/, '$1'));
    stages.at(-1)?.lines.push(line);
  }
  return stages;
}

/** A .dockerignore pattern as Docker reads it: a glob over the path or any of its parent directories. */
function globRegExp(pattern: string): RegExp {
  const body = pattern.replace(/^\/+|\/+$/g, '').split('**').map((part) => part.replace(/[.+^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '[^/]*').replace(/\?/g, '[^/]')).join('.*');
  return new RegExp(`^${body}$`);
}

/** Whether the ignore file keeps `path` out of the build context (the last matching pattern decides). */
function ignored(ignoreFile: string, path: string): boolean {
  const parts = path.split('/');
  const prefixes = parts.map((_, i) => parts.slice(0, i + 1).join('/'));
  let out = false;
  for (const raw of ignoreFile.split('\n').map((l) => l.trim()).filter((l) => l && !l.startsWith('#'))) {
    const negated = raw.startsWith('!');
    const re = globRegExp(negated ? raw.slice(1).trim() : raw);
    if (prefixes.some((p) => re.test(p))) out = !negated;
  }
  return out;
}

/** The files under a path of the repository (the path itself when it is a file). */
function filesUnder(path: string): string[] {
  const abs = join(ROOT, path);
  if (!statSync(abs).isDirectory()) return [path];
  return readdirSync(abs, { recursive: true, withFileTypes: true }).filter((d) => d.isFile()).map((d) => join(d.parentPath, d.name).slice(ROOT.length + 1));
}

/** An instruction's arguments in exec form (a JSON array), or null when it is in shell form. */
function execForm(args: string): string[] | null {
  try {
    const v = JSON.parse(args);
    return Array.isArray(v) && v.every((s) => typeof s === 'string') ? v : null;
  } catch {
    return null;
  }
}

/** Every COPY of the build context: [sources, destination], flags left out. */
function contextCopies(stages: Stage[]): [string[], string][] {
  return stages.flatMap((s) => s.lines.flatMap((l) => {
    const copy = l.match(/^COPY\s+(.*)$/i);
    if (!copy || /--from=/.test(copy[1]!)) return [];
    const parts = copy[1]!.split(/\s+/).filter((p) => !p.startsWith('--'));
    return [[parts.slice(0, -1), parts.at(-1)!] as [string[], string]];
  }));
}

function dockerfileProblems(text: string, ignoreFile: string): string[] {
  const out: string[] = [];
  const stages = parseDockerfile(text);
  const final = stages.at(-1);
  if (!final || stages.length < 2) return ['Dockerfile: expected a multi-stage build'];

  // base images: pinned, and the final one without Node.js
  stages.forEach((s, i) => {
    if (stages.slice(0, i).some((earlier) => earlier.name === s.base)) return;
    if (/\$/.test(s.base)) out.push(`Dockerfile: FROM ${s.base}: an ARG without a default`);
    else if (!/@sha256:[0-9a-f]{64}$/.test(s.base) && !/:[\w][\w.-]*$/.test(s.base.split('/').at(-1)!)) out.push(`Dockerfile: FROM ${s.base} is not pinned by a tag or digest`);
    else if (/:latest$/.test(s.base)) out.push(`Dockerfile: FROM ${s.base}: latest is no pin`);
  });
  if (/(^|\/)node(js[^/]*)?[:@]/.test(final.base)) out.push(`Dockerfile: the final stage runs on ${final.base}, an image with Node.js: it needs the executable only`);

  // COPY from the context: files that exist and that the ignore file lets through
  for (const [sources] of contextCopies(stages))
    for (const src of sources) {
      if (!existsSync(join(ROOT, src))) {
        out.push(`Dockerfile: COPY ${src}: no such file in the repository`);
        continue;
      }
      const hidden = filesUnder(src).filter((f) => ignored(ignoreFile, f));
      if (hidden.length) out.push(`Dockerfile: COPY ${src}: excluded by Dockerfile.dockerignore (${hidden.slice(0, 3).join(', ')})`);
    }
  for (const secret of ['.git/config', '.env', '.env.local', 'node_modules/x/index.js', 'consumer-sdk/dist-bin/pioneer-consumer', '.run/test/redis/dump.rdb', 'consumer-sdk/node_modules/x.js'])
    if (!ignored(ignoreFile, secret)) out.push(`Dockerfile.dockerignore: ${secret} would be sent to the builder`);

  // ENTRYPOINT: the executable the build stage's script writes, copied into the final stage
  let built: string | undefined;
  let builder: Stage | undefined;
  for (const s of stages) {
    const run = s.lines.map((l) => l.match(new RegExp(`^RUN\\s.*\\b${BUILD_SCRIPT.replace(/[.]/g, '\\.')}\\s+(\\S+)`))).find(Boolean);
    if (run) [built, builder] = [`${run[1]!.replace(/\/$/, '')}/pioneer-consumer`, s];
  }
  if (!built || !builder) out.push(`Dockerfile: no stage runs ${BUILD_SCRIPT} OUT_DIR`);
  const copied = final.lines.map((l) => l.match(/^COPY\s+(?:--\S+\s+)*?--from=(\S+)\s+(?:--\S+\s+)*(\S+)\s+(\S+)$/i)).filter((m) => m !== null);
  const executable = copied.find((m) => m[1] === builder?.name && m[2] === built)?.[3];
  if (built && !executable) out.push(`Dockerfile: the final stage does not copy ${built} from the stage that builds it`);
  const entrypoints = final.lines.filter((l) => /^ENTRYPOINT\s/i.test(l));
  const entrypoint = execForm(entrypoints.at(-1)?.replace(/^ENTRYPOINT\s+/i, '') ?? '');
  if (!entrypoint) out.push('Dockerfile: no ENTRYPOINT in exec form (a JSON array): the executable must be PID 1 to get SIGTERM');
  else if (executable && entrypoint[0] !== executable) out.push(`Dockerfile: ENTRYPOINT runs ${entrypoint[0]}, not the executable the build copied to ${executable}`);
  const cmd = execForm(final.lines.filter((l) => /^CMD\s/i.test(l)).at(-1)?.replace(/^CMD\s+/i, '') ?? '');
  if (!cmd || !COMMANDS.has(cmd[0] ?? '')) out.push(`Dockerfile: CMD should be a command of the CLI (${[...COMMANDS].join(', ')}) in exec form`);

  // a non-root user, by number, owning the files directory, which is a volume
  const user = final.lines.filter((l) => /^USER\s/i.test(l)).at(-1)?.split(/\s+/)[1];
  const [uid, gid] = (user ?? '').split(':');
  if (!user || !/^\d+$/.test(uid!) || Number(uid) === 0 || (gid !== undefined && (!/^\d+$/.test(gid) || Number(gid) === 0)))
    out.push(`Dockerfile: the final stage runs as ${user ?? 'root'}, not as a non-root user given by number (runAsNonRoot checks numbers)`);
  const env = new Map<string, string>();
  for (const s of stages)
    for (const line of s.lines) {
      const e = line.match(/^ENV\s+(.*)$/i);
      if (!e) continue;
      const legacy = e[1]!.match(/^([A-Za-z_][A-Za-z0-9_]*)\s+([^=]*)$/);
      const pairs = legacy ? [[legacy[1]!, legacy[2]!]] : [...e[1]!.matchAll(/(?:^|\s)([A-Za-z_][A-Za-z0-9_]*)=("(?:[^"\\]|\\.)*"|\S*)/g)].map((m) => [m[1]!, m[2]!.replace(/^"(.*)"$/, '$1')]);
      for (const [name, value] of pairs) if (s === final) env.set(name!, value!);
      for (const [name] of pairs) {
        if (SECRET_NAME.test(name!)) out.push(`Dockerfile: ENV ${name} bakes a secret into the image: pass it at run time`);
        else if (!READ_BY_THE_CLI.has(name!)) out.push(`Dockerfile: ENV ${name} is read by nothing in the image`);
      }
    }
  for (const s of stages)
    for (const line of s.lines) {
      const a = line.match(/^ARG\s+([A-Za-z_][A-Za-z0-9_]*)/i);
      if (a && SECRET_NAME.test(a[1]!)) out.push(`Dockerfile: ARG ${a[1]}: build arguments stay in the image's history, no secret there`);
    }
  const dir = env.get('PIONEER_DIR');
  const volumes = final.lines.filter((l) => /^VOLUME\s/i.test(l)).flatMap((l) => {
    const args = l.replace(/^VOLUME\s+/i, '');
    return execForm(args) ?? args.split(/\s+/);
  });
  if (!dir) out.push('Dockerfile: the final stage sets no PIONEER_DIR: where do the files go?');
  else {
    if (!volumes.includes(dir)) out.push(`Dockerfile: PIONEER_DIR ${dir} is not a VOLUME: the files and the checkpoint would go with the container`);
    const owned = copied.some((m) => m[3] === dir && new RegExp(`--chown=${uid}(:|\\s|$)`).test(m[0]));
    if (!owned) out.push(`Dockerfile: nothing gives ${dir} to user ${uid}: a fresh volume would be root's and the consumer could not write it`);
  }
  return out;
}

test('consumer-sdk/Dockerfile: pinned bases, the executable as ENTRYPOINT, non-root, the files directory a volume, no secret', () => {
  assert.deepEqual(dockerfileProblems(dockerfile, dockerignore), []);
  const stages = parseDockerfile(dockerfile);
  assert.match(stages[0]!.base, /^node:20[-\w.]*$/, 'built on Node 20, the version the executable carries');
  assert.match(stages.at(-1)!.base, /^gcr\.io\/distroless\/cc-debian12:/);
});

test('the Dockerfile checks fail on broken copies', () => {
  const problems = (text: string, ignore = dockerignore) => dockerfileProblems(text, ignore).join('\n');
  const swap = (from: string | RegExp, to: string) => {
    const broken = dockerfile.replace(from, to);
    assert.notEqual(broken, dockerfile, `${from} is in the Dockerfile`);
    return broken;
  };
  assert.match(problems(swap(/^ARG RUNTIME_IMAGE=.*$/m, 'ARG RUNTIME_IMAGE=gcr.io/distroless/cc-debian12')), /is not pinned/);
  assert.match(problems(swap(/^ARG NODE_IMAGE=.*$/m, 'ARG NODE_IMAGE=node:latest')), /latest is no pin/);
  assert.match(problems(swap(/^ARG RUNTIME_IMAGE=.*$/m, 'ARG RUNTIME_IMAGE=node:20-bookworm-slim')), /an image with Node\.js/);
  assert.match(problems(swap(/^USER .*$/m, 'USER root')), /runs as root, not as a non-root user/);
  assert.match(problems(swap(/^USER .*$/m, 'USER nonroot')), /not as a non-root user given by number/);
  assert.match(problems(swap(/^USER .*$/m, 'USER 0:0')), /non-root/);
  assert.match(problems(swap(/^ENTRYPOINT .*$/m, 'ENTRYPOINT ["/usr/local/bin/node"]')), /ENTRYPOINT runs \/usr\/local\/bin\/node, not the executable/);
  assert.match(problems(swap(/^ENTRYPOINT .*$/m, 'ENTRYPOINT /usr/local/bin/pioneer-consumer')), /exec form/);
  assert.match(problems(swap(/^CMD .*$/m, 'CMD ["serve"]')), /CMD should be a command of the CLI/);
  assert.match(problems(swap('/out/pioneer-consumer /usr/local/bin', '/out/pioneer-consumer.cjs /usr/local/bin')), /does not copy \/out\/pioneer-consumer/);
  assert.match(problems(swap(/RUN bash consumer-sdk\/scripts\/build-binary\.sh \/out/, 'RUN bash consumer-sdk/scripts/build-binary.sh /bin-out')), /does not copy \/bin-out\/pioneer-consumer/);
  assert.match(problems(swap(/^VOLUME .*$/m, '')), /is not a VOLUME/);
  assert.match(problems(swap('--chown=65532:65532 ', '')), /a fresh volume would be root's/);
  assert.match(problems(swap(/^USER /m, 'ENV PIONEER_API_KEY=pk_live\nUSER ')), /ENV PIONEER_API_KEY bakes a secret/);
  assert.match(problems(swap(/^USER /m, 'ENV PIONEER_URL=https://pioneer.example.com AWS_SECRET_ACCESS_KEY=x\nUSER ')), /ENV AWS_SECRET_ACCESS_KEY bakes a secret/);
  assert.match(problems(swap(/^USER /m, 'ENV PIONEER_WHATEVER 1\nUSER ')), /ENV PIONEER_WHATEVER is read by nothing/);
  assert.match(problems(swap(/^FROM \$\{NODE_IMAGE\} AS build$/m, 'FROM ${NODE_IMAGE} AS build\nARG NPM_TOKEN')), /ARG NPM_TOKEN/);
  assert.match(problems(swap('COPY consumer-sdk/src consumer-sdk/src', 'COPY consumer-sdk/lib consumer-sdk/lib')), /COPY consumer-sdk\/lib: no such file/);
  assert.match(problems(dockerfile, dockerignore.replace('!consumer-sdk/src\n', '')), /COPY consumer-sdk\/src: excluded by Dockerfile\.dockerignore \(consumer-sdk\/src\//);
  assert.match(problems(dockerfile, `${dockerignore}consumer-sdk/src/*.test.ts\nconsumer-sdk/src/cli.ts\n`), /COPY consumer-sdk\/src: excluded .*consumer-sdk\/src\/cli\.ts/);
  assert.match(problems(dockerfile, dockerignore.replace(/^\*$/m, '')), /\.git\/config would be sent to the builder/);
  assert.match(problems(dockerfile, `${dockerignore}!.env\n`), /\.env would be sent/);
});

test('built from only what the Dockerfile copies, the build stage\'s script makes an executable that answers --help', () => {
  // the build context as the builder sees it: the COPY lines' files that the ignore file lets through, at the
  // same paths; node_modules stands for `npm ci` of the same lock file
  const context = mkdtempSync(join(tmpdir(), 'pioneer-consumer-image-'));
  for (const [sources] of contextCopies(parseDockerfile(dockerfile)))
    for (const src of sources)
      for (const f of filesUnder(src).filter((f) => !ignored(dockerignore, f))) {
        mkdirSync(dirname(join(context, f)), { recursive: true });
        cpSync(join(ROOT, f), join(context, f));
      }
  symlinkSync(join(ROOT, 'node_modules'), join(context, 'node_modules'));
  try {
    execFileSync('bash', [join(context, BUILD_SCRIPT), join(context, 'out')], { cwd: context, stdio: ['ignore', 'inherit', 'inherit'] });
    const help = execFileSync(join(context, 'out/pioneer-consumer'), ['--help'], { env: { PATH: mkdtempSync(join(tmpdir(), 'pioneer-empty-path-')) }, encoding: 'utf8' });
    assert.match(help, /^pioneer-consumer — pull a Pioneer subscription into NDJSON files\n/);
  } finally {
    rmSync(context, { recursive: true, force: true }); // the executable is 95 MiB
  }
});
