/**
 * The compiled command-line tool (dist/src/cli/main.js), run as a child
 * process: strict option parsing (unknown options and bad values are usage
 * errors, exit code 2, naming the option), `--flag=value` and
 * `--flag value` alike, --version from package.json, help per command, and
 * a quiet, successful end when stdout's reader goes away.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const CLI = fileURLToPath(new URL('../../src/cli/main.js', import.meta.url));
const ROOT = fileURLToPath(new URL('../../../', import.meta.url));

interface Ran {
  code: number;
  stdout: string;
  stderr: string;
}

function cli(...args: string[]): Promise<Ran> {
  return new Promise((resolve) => {
    execFile(process.execPath, [CLI, ...args], { cwd: ROOT }, (err, stdout, stderr) => {
      const code = err === null ? 0 : typeof err.code === 'number' ? err.code : -1;
      resolve({ code, stdout, stderr });
    });
  });
}

/** Runs a shell pipeline with bash; prints the first command's exit code last. */
function pipeline(line: string): Promise<Ran> {
  return new Promise((resolve) => {
    execFile('bash', ['-c', `${line}; echo "rc=\${PIPESTATUS[0]}"`], { cwd: ROOT }, (err, stdout, stderr) => {
      resolve({ code: err === null ? 0 : -1, stdout, stderr });
    });
  });
}

test('an unknown option is a usage error naming it (exit code 2)', async () => {
  for (const [args, flag] of [
    [['demo', '--bogus'], '--bogus'],
    [['demo', '--workers=2', '--frobnicate=3'], '--frobnicate'],
    [['demo', '-x'], '-x'],
    [['--nope'], '--nope'],
  ] as const) {
    const r = await cli(...args);
    assert.equal(r.code, 2, `${args.join(' ')}: exit code`);
    assert.ok(r.stderr.includes(flag), `${args.join(' ')}: stderr names ${flag}: ${r.stderr}`);
    assert.ok(!/\n\s+at /.test(r.stderr), `${args.join(' ')}: no stack trace: ${r.stderr}`);
    assert.equal(r.stdout, '');
  }
});

test('bad or missing values, stray arguments and unknown commands are usage errors', async () => {
  for (const [args, needle] of [
    [['demo', '--workers=0'], '--workers'],
    [['demo', '--workers', 'two'], '--workers'],
    [['demo', '--ops'], '--ops'],
    [['demo', 'extra'], 'extra'],
    [['frob'], 'frob'],
    [['help', 'frob'], 'frob'],
  ] as const) {
    const r = await cli(...args);
    assert.equal(r.code, 2, `${args.join(' ')}: exit code`);
    assert.ok(r.stderr.includes(needle), `${args.join(' ')}: ${r.stderr}`);
  }
});

test('--workers=2, --workers 2 and -w 2 all start 2 workers', async () => {
  for (const args of [['--workers=2'], ['--workers', '2'], ['-w', '2']]) {
    const r = await cli('demo', ...args, '--ops=2000', '--seed', '7');
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^anyalloc demo: 2 workers x 2000 messages/m, args.join(' '));
    assert.deepEqual(
      [...r.stdout.matchAll(/^ {2}worker (\d+): sent 2000,/gm)].map((m) => m[1]),
      ['0', '1'],
      `${args.join(' ')}: one line per worker`,
    );
    assert.match(r.stdout, /heap\.validate\(\): consistent/);
  }
});

test('--version prints the version in package.json', async () => {
  const { version } = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string };
  for (const flag of ['--version', '-v']) {
    const r = await cli(flag);
    assert.equal(r.code, 0);
    assert.equal(r.stdout, `${version}\n`);
  }
});

test('help: the command list, and each command through --help or help <command>', async () => {
  const list = await cli('help');
  assert.equal(list.code, 0);
  assert.match(list.stdout, /^usage: anyalloc <command>/);
  assert.match(list.stdout, /^ {2}demo /m);
  assert.equal((await cli('--help')).stdout, list.stdout);
  assert.equal((await cli()).stdout, list.stdout);

  const demo = await cli('demo', '--help');
  assert.equal(demo.code, 0);
  assert.match(demo.stdout, /^usage: anyalloc demo \[--workers N\]/);
  for (const opt of ['--workers', '--ops', '--seed', '--help']) assert.ok(demo.stdout.includes(opt), opt);
  assert.equal((await cli('demo', '-h')).stdout, demo.stdout);
  assert.equal((await cli('help', 'demo')).stdout, demo.stdout);
  // --help wins over the rest of the line: nothing runs.
  assert.equal((await cli('demo', '--workers=2', '--help')).stdout, demo.stdout);

  const help = await cli('help', '--help');
  assert.equal(help.code, 0);
  assert.match(help.stdout, /^usage: anyalloc help \[command\]/);
});

test('demo | head -1: the closed pipe ends the demo quietly with exit code 0', { timeout: 60_000 }, async () => {
  const r = await pipeline(`"${process.execPath}" "${CLI}" demo --ops 20000 | head -1`);
  const lines = r.stdout.trimEnd().split('\n');
  assert.equal(lines.length, 2, r.stdout);
  assert.match(lines[0]!, /^anyalloc demo: 4 workers x 20000 messages/);
  assert.equal(lines[1], 'rc=0', `exit code of the demo; stderr: ${r.stderr}`);
  assert.ok(!r.stderr.includes('EPIPE'), r.stderr);
  assert.equal(r.stderr, '');
});
