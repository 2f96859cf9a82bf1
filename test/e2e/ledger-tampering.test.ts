/**
 * SPEC §7 scenario 12 end to end: a real deployment's ledger is exported through the operator
 * endpoint into an audit bundle, `failclosed verify --trust` (the CLI entry point, with the
 * deployment's trust roots pinned) accepts it (exit 0),
 * and each kind of tampering — edit, delete, insert, reorder, truncate, fork — makes it exit 1
 * and name the entry (SPEC §4, §5; L7 ledger protection).
 */
import { cpSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCli } from '../../src/cli/run.js';
import {
  DEMO_CLIENT,
  initDataDir,
  readClientFile,
  readOperatorToken,
  startEmbedded,
} from '../../src/embedded/index.js';
import { createClient } from '../../src/client/index.js';

interface Entry {
  index: number;
  payload: Record<string, unknown>;
  [k: string]: unknown;
}
/** A v2 bundle opened for editing: its header, other records (evidence, policy bundles) and entries. */
interface Bundle {
  header: Record<string, unknown>;
  records: unknown[];
  entries: Entry[];
  checkpoint: string;
}
interface Report {
  exitCode: number;
  firstViolation?: { code: string; index?: number; check: string };
}

let work: string;
let dirA: string;
let dirB: string;
let bundleText: string;
/** The deployment's trust roots, as the auditor pins them (`failclosed trust-roots --out`). */
let trustPath: string;

async function withDeployment<T>(dir: string, fn: (url: string) => Promise<T>): Promise<T> {
  const instance = await startEmbedded(dir, { port: 0, executionPort: 0 });
  try {
    return await fn(instance.url);
  } finally {
    await instance.close();
  }
}

async function calls(dir: string, url: string, messages: readonly string[]): Promise<void> {
  const file = readClientFile(dir, DEMO_CLIENT.identity);
  const client = createClient({ url, identity: file.identity, tenant: file.tenant, key: file.key });
  for (const message of messages) {
    expect(await client.call('echo', { message }, { session: `tamper-${message}` })).toMatchObject({
      outcome: 'executed',
    });
  }
  // A denied call leaves records too (FC-INV-5).
  const denied = await client.call(
    'transfer_funds',
    { from_account: 'acct_a', to_account: 'acct_b', amount: 99999, currency: 'USD' },
    { session: 'tamper-deny' },
  );
  expect(denied).toMatchObject({ outcome: 'deny', code: 'ERR_POLICY_DENY' });
}

async function exportLedger(dir: string, url: string): Promise<string> {
  const res = await fetch(`${url}/v1/admin/ledger-export`, {
    method: 'POST',
    headers: { authorization: `Bearer ${readOperatorToken(dir)}`, 'content-type': 'application/json' },
    body: '{}',
  });
  expect(res.status).toBe(200);
  expect(res.headers.get('content-type')).toMatch(/^application\/x-ndjson/);
  return res.text();
}

let fileCounter = 0;
async function verify(text: string, ...extra: string[]): Promise<Report> {
  fileCounter += 1;
  const path = join(work, `bundle-${fileCounter}.json`);
  writeFileSync(path, text);
  const out: string[] = [];
  const code = await runCli(['verify', path, '--trust', trustPath, '--json', ...extra], {
    out: (t) => out.push(t),
    err: () => undefined,
    env: {},
  });
  const report = JSON.parse(out.join('')) as Report;
  expect(report.exitCode).toBe(code);
  return report;
}

function parse(text: string): Bundle {
  const [header, ...rest] = text
    .trimEnd()
    .split('\n')
    .map((l) => JSON.parse(l) as { record: string; entry?: Entry });
  const entries = rest.filter((r) => r.record === 'entry').map((r) => r.entry!);
  const records = rest.filter((r) => r.record !== 'entry' && r.record !== 'end');
  const h = header as unknown as Record<string, unknown>;
  return { header: h, records, entries, checkpoint: h['checkpoint'] as string };
}
/** One chunk: every evidence and policy record, then the entries, then the end record. */
const render = (b: Bundle): string =>
  `${[
    b.header,
    ...b.records,
    ...b.entries.map((entry) => ({ record: 'entry', entry })),
    { record: 'end', entries: b.entries.length },
  ]
    .map((r) => JSON.stringify(r))
    .join('\n')}\n`;

beforeAll(async () => {
  work = mkdtempSync(join(tmpdir(), 'fc-e2e-tamper-'));
  dirA = join(work, 'a');
  dirB = join(work, 'b');
  await initDataDir(dirA);
  await withDeployment(dirA, (url) => calls(dirA, url, ['one', 'two', 'three']));
  // B is A's exact copy from here on: the same keys and history, then diverging (a fork).
  cpSync(dirA, dirB, { recursive: true });
  bundleText = await withDeployment(dirA, async (url) => {
    await calls(dirA, url, ['four']);
    return exportLedger(dirA, url);
  });
  trustPath = join(work, 'trust-roots.json');
  const pinned = await runCli(['--data', dirA, 'trust-roots', '--out', trustPath], {
    out: () => undefined,
    err: () => undefined,
    env: {},
  });
  expect(pinned).toBe(0);
});

afterAll(() => {
  rmSync(work, { recursive: true, force: true });
});

describe('scenario 12: ledger tampering is caught by failclosed verify', () => {
  it('scenario 12: the untouched export verifies (exit 0)', async () => {
    expect((await verify(bundleText)).exitCode).toBe(0);
  });

  it('scenario 12: an edited entry → exit 1 naming that entry', async () => {
    const b = parse(bundleText);
    const k = b.entries.findIndex((e) => e['type'] === 'decision');
    const target = b.entries[k]!;
    target.payload = { ...target.payload, outcome: 'deny' };
    const r = await verify(render(b));
    expect(r.exitCode).toBe(1);
    expect(r.firstViolation?.index).toBe(target.index);
  });

  it('scenario 12: a deleted entry → exit 1 naming where the chain breaks', async () => {
    const b = parse(bundleText);
    const removed = b.entries.splice(5, 1)[0]!;
    const r = await verify(render(b));
    expect(r.exitCode).toBe(1);
    expect([removed.index, removed.index + 1]).toContain(r.firstViolation?.index);
  });

  it('scenario 12: an inserted entry → exit 1 naming it', async () => {
    const b = parse(bundleText);
    const copy = { ...b.entries[4]!, request_id: 'inserted' };
    b.entries.splice(5, 0, copy);
    const r = await verify(render(b));
    expect(r.exitCode).toBe(1);
    expect([copy.index, copy.index + 1]).toContain(r.firstViolation?.index);
  });

  it('scenario 12: two entries reordered → exit 1 naming one of them', async () => {
    const b = parse(bundleText);
    const [x, y] = [b.entries[6]!, b.entries[7]!];
    b.entries[6] = y;
    b.entries[7] = x;
    const r = await verify(render(b));
    expect(r.exitCode).toBe(1);
    expect([x.index, y.index]).toContain(r.firstViolation?.index);
  });

  it('scenario 12: a truncated ledger → exit 1', async () => {
    const b = parse(bundleText);
    b.entries = b.entries.slice(0, b.entries.length - 3);
    const r = await verify(render(b));
    expect(r.exitCode).toBe(1);
    // The cut is named where it starts, by the chain check (the checkpoint covers the lost tail).
    const chain = (
      r as unknown as { checks: { id: string; findings: { code: string; index?: number }[] }[] }
    ).checks.find((c) => c.id === 'chain-continuity');
    expect(chain?.findings[0]).toMatchObject({ code: 'CHAIN_INDEX', index: b.entries.length });
  });

  it('scenario 12: a fork (same keys, diverging history) against a kept checkpoint → exit 1 naming the entry', async () => {
    const forked = await withDeployment(dirB, async (url) => {
      await calls(dirB, url, ['alt-four', 'alt-five']);
      return exportLedger(dirB, url);
    });
    expect((await verify(forked)).exitCode).toBe(0);
    // The auditor kept A's checkpoint; B's bundle is a different history signed by the same key.
    const kept = join(work, 'kept-checkpoint.txt');
    writeFileSync(kept, parse(bundleText).checkpoint);
    const r = await verify(forked, '--since', kept);
    expect(r.exitCode).toBe(1);
    expect(r.firstViolation?.code).toBe('FORK');
    expect(typeof r.firstViolation?.index).toBe('number');
  });
});
