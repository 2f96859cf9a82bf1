/**
 * The streamed audit bundle (v2, docs/ledger.md "Audit bundle"): an export written chunk by chunk
 * verifies from disk (whole, range and trace scopes), and a tampered, truncated or malformed one
 * does not (SPEC §5, OE-INV-016, L7 ledger protection).
 */
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { exportBundleStream, writeBundleFile, type Ledger } from '../../src/ledger/index.js';
import { verifyBundle, verifyBundleFile, type VerifyReport } from '../../src/verify/index.js';
import { AUDITOR, openLedger, tempDir, tempSqliteStore } from '../ledger/fixtures.js';
import { appendRealistic, LINKAGE_EXPORT } from './realistic.js';

const failing = (r: VerifyReport): string[] => r.checks.filter((c) => c.status === 'fail').map((c) => c.id);
const codes = (r: VerifyReport): string[] => r.checks.flatMap((c) => c.findings.map((f) => f.code));

/** The ledger key of the ledger under test, pinned as an auditor would (docs/COMPLIANCE.md). */
let pin: { trustedKey: string } = { trustedKey: '' };

async function withLedger<T>(n: number, f: (ledger: Ledger, dir: string) => Promise<T>): Promise<T> {
  const t = tempSqliteStore();
  const d = tempDir();
  try {
    const ledger = await openLedger(t.store);
    pin = { trustedKey: ledger.ledgerKey.vkey };
    await appendRealistic(ledger, n);
    const r = await f(ledger, d.dir);
    await ledger.close();
    return r;
  } finally {
    t.cleanup();
    d.cleanup();
  }
}

async function exportTo(ledger: Ledger, path: string, scope: object = {}): Promise<void> {
  const s = await exportBundleStream({
    ledger,
    actor: AUDITOR,
    ...LINKAGE_EXPORT,
    chunkEntries: 7,
    ...scope,
  });
  await writeBundleFile(s.lines, path);
}

describe('streamed audit bundle (v2)', () => {
  it('a whole, a range and a trace export verify from disk; the export is ledgered before it is read', async () => {
    await withLedger(60, async (ledger, dir) => {
      const whole = join(dir, 'whole.jsonl');
      await exportTo(ledger, whole);
      const lines = readFileSync(whole, 'utf8').trimEnd().split('\n');
      expect(JSON.parse(lines[0]!)).toMatchObject({ record: 'header', format: 'failclosed.audit-bundle/v2' });
      expect(JSON.parse(lines[lines.length - 1]!)).toEqual({ record: 'end', entries: 61 });
      // The last entry is the audit.export record of this very export, covered by the checkpoint.
      const last = JSON.parse(lines[lines.length - 2]!) as { entry: { type: string } };
      expect(last.entry.type).toBe('audit.export');
      const r = await verifyBundleFile(whole, pin);
      expect(failing(r)).toEqual([]);
      expect(r.exitCode).toBe(0);
      expect(r.coverage).toMatchObject({ entries: 61, complete: true });
      // The same bytes verify in memory too.
      expect(verifyBundle(readFileSync(whole), pin).exitCode).toBe(0);

      const range = join(dir, 'range.jsonl');
      await exportTo(ledger, range, { from: 10, to: 29 });
      const rr = await verifyBundleFile(range, pin);
      expect(failing(rr)).toEqual([]);
      expect(rr.coverage).toMatchObject({ entries: 20, first: 10, last: 29, complete: false });

      const trace = join(dir, 'trace.jsonl');
      const traceId = (JSON.parse(lines[3]!) as { entry?: { trace_id?: string } }).entry?.trace_id;
      const firstEntry = lines
        .map((l) => JSON.parse(l) as { record: string; entry?: { trace_id: string } })
        .find((x) => x.record === 'entry' && x.entry?.trace_id !== '');
      await exportTo(ledger, trace, { traceId: traceId ?? firstEntry?.entry?.trace_id });
      const tr = await verifyBundleFile(trace, pin);
      expect(failing(tr)).toEqual([]);
      expect(tr.exitCode).toBe(0);
    });
  });

  it('L7 read path: an export whose audit.export the ledger cannot record is refused and reads nothing', async () => {
    await withLedger(5, async (ledger) => {
      let reads = 0;
      const count =
        <A extends unknown[], R>(fn: (...a: A) => R) =>
        (...a: A): R => {
          reads += 1;
          return fn(...a);
        };
      const reader = {
        readRange: count(ledger.store.readRange.bind(ledger.store)),
        readByTrace: count(ledger.store.readByTrace.bind(ledger.store)),
        getEvidence: count(ledger.store.getEvidence.bind(ledger.store)),
      };
      // The ledger as the export sees it, with appends failing (a full disk).
      const failing = Object.create(ledger) as Ledger;
      Object.defineProperty(failing, 'append', { value: () => Promise.reject(new Error('disk full')) });
      await expect(
        exportBundleStream({ ledger: failing, reader, actor: AUDITOR, ...LINKAGE_EXPORT }),
      ).rejects.toThrow('disk full');
      expect(reads).toBe(0);
      expect(ledger.size()).toBe(5);
      // Recorded, with who exported, before anything is read.
      const ok = await exportBundleStream({ ledger, reader, actor: AUDITOR, ...LINKAGE_EXPORT });
      const last = (await ledger.store.readRange(ledger.size() - 1, ledger.size()))[0];
      expect(last).toMatchObject({ type: 'audit.export', actor: AUDITOR });
      for await (const _ of ok.lines) void _;
      expect(reads).toBeGreaterThan(0);
    });
  });

  it('an edited entry, a cut tail, a missing end record and a foreign record are caught', async () => {
    await withLedger(30, async (ledger, dir) => {
      const path = join(dir, 'b.jsonl');
      await exportTo(ledger, path);
      const lines = readFileSync(path, 'utf8').trimEnd().split('\n');
      const at = lines.findIndex((l) => l.includes('"gateway.accepted"'));
      const write = (name: string, ls: string[]): string => {
        const p = join(dir, name);
        writeFileSync(p, `${ls.join('\n')}\n`);
        return p;
      };

      const edited = [...lines];
      edited[at] = edited[at]!.replace('"tenant":"acme"', '"tenant":"evil"');
      const e = await verifyBundleFile(write('edited.jsonl', edited), pin);
      expect(e.exitCode).toBe(1);
      expect(codes(e)).toContain('ENTRY_HASH_MISMATCH');
      expect(codes(e)).toContain('REQUEST_EVIDENCE');

      // Drop the last two entries and fix the end count: the checkpoint still covers them.
      const entryLines = lines.flatMap((l, i) => (l.startsWith('{"record":"entry"') ? [i] : []));
      const cut = lines.filter((_, i) => !entryLines.slice(-2).includes(i)).slice(0, -1);
      cut.push(JSON.stringify({ record: 'end', entries: entryLines.length - 2 }));
      const c = await verifyBundleFile(write('cut.jsonl', cut), pin);
      expect(c.exitCode).toBe(1);
      expect(codes(c)).toContain('ENTRIES_MISSING');

      const truncated = await verifyBundleFile(write('truncated.jsonl', lines.slice(0, -1)), pin);
      expect(truncated.exitCode).toBe(2);
      expect(truncated.unusable).toMatch(/truncated/);

      const foreign = [...lines.slice(0, 2), '{"record":"surprise"}', ...lines.slice(2)];
      expect((await verifyBundleFile(write('foreign.jsonl', foreign), pin)).exitCode).toBe(2);

      // The built CLI streams from disk with the request checks in a worker thread: same verdicts.
      const cli = 'dist/src/cli/main.js';
      if (existsSync('dist/src/verify/request-worker.js')) {
        const run = (file: string): { status: number | null; report: VerifyReport } => {
          const r = spawnSync(
            process.execPath,
            [cli, 'verify', file, '--json', '--trusted-key', pin.trustedKey],
            { encoding: 'utf8' },
          );
          return { status: r.status, report: JSON.parse(r.stdout) as VerifyReport };
        };
        expect(run(path).status).toBe(0);
        const bad = run(join(dir, 'edited.jsonl'));
        expect(bad.status).toBe(1);
        expect(codes(bad.report)).toContain('ENTRY_HASH_MISMATCH');
        // Found by a request check in the worker: the entry no longer matches its signed request.
        expect(codes(bad.report)).toContain('REQUEST_EVIDENCE');
        expect(run(join(dir, 'truncated.jsonl')).status).toBe(2);
      }
    });
  });
});
