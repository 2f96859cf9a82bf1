#!/usr/bin/env node
// @ts-check
/**
 * `npm run mutation [-- [--record] [--survivors] [GROUP…]]`: runs StrykerJS over the enforcement
 * core, group by group (`mutation/groups.mjs`, incremental), then prints the per-file score table
 * from every group's JSON report and exits 1 when a scoped file scores below the threshold.
 *
 *   --record     also write the table, dated, to docs/mutation.md
 *   --survivors  also list each surviving or uncovered mutant (file:line, mutator, replacement)
 *   --report     only print the table from the reports already on disk; run nothing
 *   --force      retest every mutant, ignoring the recorded incremental results
 *
 * Score = (killed + timed out) / (killed + timed out + survived + no coverage), per file; mutants
 * Stryker could not run (compile or runtime errors) and those excluded in `stryker.config.mjs`
 * are not counted, as in Stryker's own "mutation score".
 */
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { groups } from '../mutation/groups.mjs';

const THRESHOLD = 90;
const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const args = process.argv.slice(2);
const flags = new Set(args.filter((a) => a.startsWith('--')));
const unknownFlag = [...flags].find((f) => !['--record', '--survivors', '--report', '--force'].includes(f));
if (unknownFlag !== undefined) fail(`unknown option ${unknownFlag}`);
const named = args.filter((a) => !a.startsWith('--'));
for (const n of named)
  if (!(n in groups)) fail(`unknown group "${n}"; groups: ${Object.keys(groups).join(', ')}`);
const chosen = named.length > 0 ? named : Object.keys(groups);

if (!flags.has('--report')) {
  for (const name of chosen) {
    process.stdout.write(`\n== mutation group ${name}\n`);
    const run = spawnSync(
      process.execPath,
      [
        join(root, 'node_modules/@stryker-mutator/core/bin/stryker.js'),
        'run',
        ...(flags.has('--force') ? ['--force'] : []),
      ],
      {
        cwd: root,
        stdio: 'inherit',
        env: { ...process.env, FC_MUTATION_GROUP: name },
      },
    );
    if (run.status !== 0) fail(`stryker failed for group ${name} (exit ${run.status ?? run.signal})`);
  }
}

const UNDETECTED = new Set(['Survived', 'NoCoverage']);
/** @type {{group: string, file: string, killed: number, timeout: number, survived: number, noCoverage: number, ignored: number, score: number}[]} */
const rows = [];
/** @type {string[]} */
const survivors = [];
for (const name of Object.keys(groups)) {
  const path = join(root, 'mutation/reports', `${name}.json`);
  if (!existsSync(path)) continue;
  const report = JSON.parse(readFileSync(path, 'utf8'));
  for (const [file, result] of Object.entries(report.files).sort(([a], [b]) => a.localeCompare(b))) {
    const count = (/** @type {string} */ s) => result.mutants.filter((m) => m.status === s).length;
    const killed = count('Killed');
    const timeout = count('Timeout');
    const survived = count('Survived');
    const noCoverage = count('NoCoverage');
    const ignored = count('Ignored');
    const valid = killed + timeout + survived + noCoverage;
    rows.push({
      group: name,
      file,
      killed,
      timeout,
      survived,
      noCoverage,
      ignored,
      score: valid === 0 ? 100 : (100 * (killed + timeout)) / valid,
    });
    for (const m of result.mutants) {
      if (!UNDETECTED.has(m.status)) continue;
      const where = `${file}:${m.location.start.line}:${m.location.start.column}`;
      survivors.push(`${where} ${m.status} ${m.mutatorName}: ${JSON.stringify(m.replacement ?? '')}`);
    }
  }
}
if (rows.length === 0) fail('no mutation reports in mutation/reports; run `npm run mutation` first');

const table = [
  '| group | file | killed | timed out | survived | no coverage | ignored | score |',
  '| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |',
  ...rows.map(
    (r) =>
      `| ${r.group} | \`${r.file}\` | ${r.killed} | ${r.timeout} | ${r.survived} | ${r.noCoverage} | ${r.ignored} | ${r.score.toFixed(1)} % |`,
  ),
].join('\n');
process.stdout.write(`\n${table}\n`);
if (flags.has('--survivors')) process.stdout.write(`\n${survivors.join('\n')}\n`);

const below = rows.filter((r) => r.score < THRESHOLD);
if (flags.has('--record')) {
  const date = new Date().toISOString().slice(0, 10);
  const doc = join(root, 'docs/mutation.md');
  const text = readFileSync(doc, 'utf8');
  const start = text.indexOf('<!-- mutation-table:start -->');
  const end = text.indexOf('<!-- mutation-table:end -->');
  if (start < 0 || end < start) fail('docs/mutation.md has no mutation-table markers');
  const block = `<!-- mutation-table:start -->\nRecorded on ${date} by \`npm run mutation -- --record\` (StrykerJS, Node ${process.version}).\n\n${table}\n`;
  writeFileSync(doc, text.slice(0, start) + block + text.slice(end));
  process.stdout.write(`\nrecorded in docs/mutation.md (${date})\n`);
}
if (below.length > 0) {
  process.stdout.write(
    `\n${below.length} file(s) below ${THRESHOLD} %: ${below.map((r) => r.file).join(', ')}\n`,
  );
  process.exit(1);
}
process.stdout.write(`\nevery scoped file at or above ${THRESHOLD} %\n`);

/** @param {string} message */
function fail(message) {
  process.stderr.write(`mutation: ${message}\n`);
  process.exit(2);
}
