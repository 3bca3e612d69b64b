/**
 * The `pioneer-consumer` command as npm installs it: from a checkout of the repository after `npm ci` (the
 * workspace links the SDK's bin, with nothing built), and from the package as published (bin and dist only).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, realpathSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { ROOT } from '../../test/support/helpers.ts';
import { buildPackage } from './cli-process.ts';

const run = promisify(execFile);
const pkg = JSON.parse(readFileSync(join(ROOT, 'consumer-sdk/package.json'), 'utf8')) as { bin: Record<string, string>; files: string[] };
const env = { PATH: process.env['PATH'] ?? '', HOME: process.env['HOME'] ?? '', npm_config_update_notifier: 'false', npm_config_yes: 'false' };

async function help(cmd: string, args: string[], cwd: string) {
  const r = await run(cmd, args, { cwd, env, timeout: 60_000 }).catch((err: { code?: number; stdout?: string; stderr?: string }) => err);
  return { code: 'code' in r && typeof r.code === 'number' ? r.code : 0, stdout: r.stdout ?? '', stderr: r.stderr ?? '' };
}

test('npx pioneer-consumer --help from the repository root prints the usage and exits 0', async () => {
  // npm links the workspace's bin into the root's node_modules/.bin: the file the SDK's package.json names
  assert.equal(realpathSync(join(ROOT, 'node_modules/.bin/pioneer-consumer')), join(ROOT, 'consumer-sdk', pkg.bin['pioneer-consumer']!));
  const r = await help('npx', ['pioneer-consumer', '--help'], ROOT);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /^usage:\n {2}pioneer-consumer run /m);
  assert.match(r.stdout, /exit status: 0 graceful stop/);
});

test('the published package runs its compiled CLI through the same bin, without tsx', async () => {
  const dir = join(mkdtempSync(join(tmpdir(), 'pioneer-package-')), 'consumer-sdk');
  buildPackage(join(dir, 'dist'));
  const bin = pkg.bin['pioneer-consumer']!;
  assert.ok(pkg.files.includes(bin.split('/')[0]!), `package.json "files" ships ${bin}`);
  mkdirSync(join(dir, 'bin'));
  copyFileSync(join(ROOT, 'consumer-sdk', bin), join(dir, bin));
  copyFileSync(join(ROOT, 'consumer-sdk/package.json'), join(dir, 'package.json'));
  const r = await help(process.execPath, [join(dir, bin), '--help'], dir);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /^usage:\n {2}pioneer-consumer run /m);
});
