/**
 * Client keys under pinned trust roots (FC-INV-3, SPEC §5 "Trust roots out of band"): with the
 * ledger key pinned, a request signature verifies only under a key bound by a ledgered
 * `admin.client_registered` record the verified checkpoint covers. A key added to the bundle's
 * unsigned `jwks.clients` / `jwks.client_identities` (by whoever rewrites the bundle, or by a
 * ledger writer fabricating requests) is never read then; only `--trust-bundle-keys` keeps that
 * fallback, and its report says nothing was pinned.
 */
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { signingKeyFromSeed } from '../../src/kernel/signing/index.js';
import { exportBundle, exportBundleStream, writeBundleFile, type Ledger } from '../../src/ledger/index.js';
import { verifyBundle, verifyBundleFile, type VerifyReport } from '../../src/verify/index.js';
import { AUDITOR, openLedger, tempDir, tempSqliteStore, testSigner } from '../ledger/fixtures.js';
import { mutable, resign, text } from './helpers.js';
import {
  appendRealistic,
  appendTrace,
  CLIENT,
  CLIENT_KEY,
  ISSUER_KEY,
  LINKAGE_EXPORT,
  TENANT,
  traceIdOf,
} from './realistic.js';

/** A key nobody registered: the forger's. */
const FORGED = signingKeyFromSeed(Buffer.alloc(32, 99));

/** Export options whose unsigned client JWKS also binds the forged key to `agent-1`. */
const FORGED_EXPORT = {
  ...LINKAGE_EXPORT,
  publicKeys: {
    ...LINKAGE_EXPORT.publicKeys,
    clients: {
      keys: [
        { ...CLIENT_KEY.publicJwk, kid: CLIENT_KEY.kid },
        { ...FORGED.publicJwk, kid: FORGED.kid },
      ],
      revoked: [],
    },
    clientIdentities: [
      { kid: CLIENT_KEY.kid, identity: CLIENT, tenant: TENANT },
      { kid: FORGED.kid, identity: CLIENT, tenant: TENANT },
    ],
  },
};

const attributable = (r: VerifyReport) => r.checks.find((c) => c.id === 'attributable-outcome');

let ledger: Ledger;
let store: ReturnType<typeof tempSqliteStore>;
let dir: ReturnType<typeof tempDir>;
/** The trust file an auditor would have pinned (ledger vkey, issuer keys, no approvers). */
let trust: string;
/** Index of the `gateway.accepted` of the request signed by the forged key. */
let forgedAt: number;

beforeAll(async () => {
  store = tempSqliteStore();
  dir = tempDir();
  ledger = await openLedger(store.store);
  // agent-1's ledgered registration, then two calls signed by its registered key.
  await appendRealistic(ledger, 11);
  // A call "by agent-1" whose request was signed by a key never registered (a fabricated request).
  forgedAt = (await appendTrace(ledger, 2, FORGED))[0]!.index;
  trust = JSON.stringify({
    format: 'failclosed.trust-roots/v1',
    origin: ledger.origin,
    ledger: { vkey: ledger.ledgerKey.vkey },
    issuer: { keys: [{ ...ISSUER_KEY.publicJwk, kid: ISSUER_KEY.kid }], revoked: [] },
    approvers: { keys: [], revoked: [] },
  });
});

afterAll(async () => {
  await ledger.close();
  store.cleanup();
  dir.cleanup();
});

describe('pinned roots: client keys come from ledgered registrations only (FC-INV-3)', () => {
  it('a request signed by a key added to jwks.clients fails REQUEST_SIGNATURE under --trust and --trusted-key', async () => {
    const b = await exportBundle({ ledger, actor: AUDITOR, ...FORGED_EXPORT });
    for (const pin of [{ trust }, { trustedKey: ledger.ledgerKey.vkey }]) {
      const r = verifyBundle(b.text, pin);
      expect(r.exitCode).toBe(1);
      expect(r.checks.filter((c) => c.status === 'fail').map((c) => c.id)).toEqual(['attributable-outcome']);
      expect(attributable(r)?.findings).toEqual([
        expect.objectContaining({ code: 'REQUEST_SIGNATURE', index: forgedAt }),
      ]);
    }
    // The streamed file (v2) is checked by the same rule, request group by request group.
    const file = join(dir.dir, 'forged.jsonl');
    await writeBundleFile(
      (await exportBundleStream({ ledger, actor: AUDITOR, ...FORGED_EXPORT })).lines,
      file,
    );
    const streamed = await verifyBundleFile(file, { trust });
    expect(streamed.exitCode).toBe(1);
    expect(attributable(streamed)?.findings[0]).toMatchObject({ code: 'REQUEST_SIGNATURE', index: forgedAt });
  });

  it('with the checkpoint re-signed by another key no registration is covered: FC-INV-3 alone fails', async () => {
    const b = mutable((await exportBundle({ ledger, actor: AUDITOR, ...FORGED_EXPORT })).text);
    const forger = testSigner(42, ledger.origin);
    // Same entries, the real key named, the signature by another key.
    resign(b, forger, ledger.ledgerKey.vkey, { ...ledger.ledgerKey.jwk });
    const r = verifyBundle(text(b), { trustedKey: ledger.ledgerKey.vkey, invariant: 'FC-INV-3' });
    expect(r.exitCode).toBe(1);
    expect(attributable(r)?.findings).toEqual([
      expect.objectContaining({ code: 'REQUEST_SIGNATURE', message: expect.stringContaining('checkpoint') }),
    ]);
  });

  it('without pinned roots the bundle keys still stand in, and the report says nothing was pinned', async () => {
    const b = await exportBundle({ ledger, actor: AUDITOR, ...FORGED_EXPORT });
    const r = verifyBundle(b.text, { trustBundleKeys: true });
    expect(r).toMatchObject({ exitCode: 0, trust: 'bundle-keys' });
    expect(r.notes.join('\n')).toContain('NOTHING PINNED');
  });

  it('the registered client verifies with pinned roots; a trace export without its registration is undecided', async () => {
    const b = await exportBundle({ ledger, actor: AUDITOR, ...LINKAGE_EXPORT, traceId: traceIdOf(1) });
    const r = verifyBundle(b.text, { trust });
    // Not failed: the registration lies outside this bundle ...
    expect(r.exitCode).toBe(0);
    expect(attributable(r)?.findings).toEqual([]);
    // ... and not passed either: the signature is listed as undecided, and the report says so.
    expect(attributable(r)?.undecided).toEqual([
      expect.objectContaining({ code: 'REQUEST_SIGNATURE', partial: true, index: 6 }),
    ]);
    expect(r.notes.join('\n')).toContain('were not decided');
    // A range holding the registration decides it.
    const range = await exportBundle({ ledger, actor: AUDITOR, ...LINKAGE_EXPORT, from: 0, to: 10 });
    const rr = verifyBundle(range.text, { trust });
    expect(rr.exitCode).toBe(0);
    expect(attributable(rr)?.undecided).toBeUndefined();
  });
});
