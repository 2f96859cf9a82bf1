/**
 * The offline payload-allowlist check (OE-INV-009 "no secrets in the ledger", L7 Secret Handling):
 * an entry whose payload carries a field its type does not allow is named, even when the chain,
 * the Merkle tree and the checkpoint were rebuilt around it so that no other check can tell.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { expectFinding, findingsOf, forge } from './forge.js';
import { makeBundle, type MutableBundle } from './helpers.js';

let base: string;

beforeAll(async () => {
  base = (await makeBundle(6)).text;
});

describe('OE-INV-009: every payload holds only the fields allowlisted for its entry type', () => {
  it('an untouched export has no payload finding', () => {
    const { report } = forge(base, () => undefined);
    expect(report.exitCode).toBe(0);
    expect(findingsOf(report, 'payload-allowlist')).toEqual([]);
  });

  it('a field smuggled into one entry, the ledger re-linked and re-signed: PAYLOAD_FIELD at that entry only', () => {
    let index = -1;
    const { report } = forge(base, (b) => {
      const entry = (b['entries'] as MutableBundle[])[1]!;
      entry['payload']['api_key'] = 'sk-live-0000';
      index = entry['index'] as number;
    });
    expectFinding(report, 'payload-allowlist', 'PAYLOAD_FIELD', [index]);
  });

  it('two entries carrying extra fields are each named', () => {
    const indices: number[] = [];
    const { report } = forge(base, (b) => {
      for (const n of [1, 3]) {
        const entry = (b['entries'] as MutableBundle[])[n]!;
        entry['payload']['password'] = 'hunter2';
        indices.push(entry['index'] as number);
      }
    });
    expectFinding(report, 'payload-allowlist', 'PAYLOAD_FIELD', indices);
  });
});
