/**
 * Every read of raw evidence is ledgered with who read it (L7 read path "Access logging (who
 * viewed what, when)", "Export controls for audit downloads"), in a real embedded deployment: the
 * evidence view over HTTP and through the CLI appends `audit.read` before it answers, the export
 * appends `audit.export`, and the exported bundle holding both verifies offline.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readOperatorToken } from '../../src/embedded/index.js';
import { verifyBundle } from '../../src/verify/index.js';
import { v1Of } from '../verify/v1.js';
import { startRig, type Rig } from './support.js';

let rig: Rig;
beforeAll(async () => {
  rig = await startRig();
}, 60_000);
afterAll(async () => {
  await rig.close();
});

interface Entry {
  readonly type: string;
  readonly request_id: string;
  readonly actor: { readonly id: string; readonly role: string };
  readonly payload: Record<string, unknown>;
}

describe('L7 read path: reads of raw evidence are ledgered', () => {
  it('the evidence view (HTTP and CLI) and the export are recorded with the reader; the bundle verifies', async () => {
    const r = await rig.agent().call('echo', { message: 'hello' });
    expect(r.outcome).toBe('executed');
    const id = r.request_id ?? '';
    const res = await fetch(`${rig.instance.url}/v1/requests/${id}`, {
      headers: { authorization: `Bearer ${readOperatorToken(rig.dir)}` },
    });
    expect(res.status).toBe(200);
    // Without the token: refused, and nothing was read.
    expect((await fetch(`${rig.instance.url}/v1/requests/${id}`)).status).toBe(401);
    expect((await rig.cli('requests', 'show', id)).code).toBe(0);
    const out = join(rig.dir, 'bundle.json');
    expect((await rig.cli('ledger', 'export', '--out', out)).code).toBe(0);
    const text = v1Of(readFileSync(out, 'utf8'));
    const entries = (JSON.parse(text) as { entries: Entry[] }).entries;
    const reads = entries.filter((e) => e.type === 'audit.read');
    expect(reads).toHaveLength(2);
    for (const e of reads) {
      expect(e.actor).toEqual({ id: 'operator', role: 'operator' });
      expect(e.payload).toEqual({ scope: 'request', request_id: id });
      // Not part of the request's own trace.
      expect(e.request_id).toBe('');
    }
    const executed = entries.findIndex((e) => e.type === 'gateway.completed' && e.request_id === id);
    expect(entries.findIndex((e) => e.type === 'audit.read')).toBeGreaterThan(executed);
    expect(entries.filter((e) => e.type === 'audit.export').map((e) => e.actor)).toEqual([
      { id: 'operator', role: 'operator' },
    ]);
    const trustPath = join(rig.dir, 'trust-roots.json');
    expect((await rig.cli('trust-roots', '--out', trustPath)).code).toBe(0);
    const report = verifyBundle(Buffer.from(text), { trust: readFileSync(trustPath, 'utf8') });
    expect(report.checks.filter((c) => c.status === 'fail').map((c) => c.id)).toEqual([]);
    expect(report.ok).toBe(true);
  });
});
