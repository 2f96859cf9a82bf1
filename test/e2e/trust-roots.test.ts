/**
 * Trust roots out of band (SPEC §5, issue "the auditor cannot pin anything"): a real deployment
 * publishes its trust roots by `failclosed trust-roots` and `GET /v1/trust-roots` (the same
 * document), and `failclosed verify --trust FILE` checks a bundle only under those pinned keys.
 * A bundle re-signed with another ledger key, or an envelope re-signed with an unpublished issuer
 * key, passes when the bundle's own keys are trusted and fails once the roots are pinned; without
 * pinned roots verify never reports success (exit 3) unless told `--trust-bundle-keys`.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCli } from '../../src/cli/run.js';
import { createClient } from '../../src/client/index.js';
import {
  DEMO_CLIENT,
  dataPaths,
  initDataDir,
  readClientFile,
  readOperatorToken,
  readSigningKey,
  startEmbedded,
} from '../../src/embedded/index.js';
import { generateSigningKey, type SigningKey } from '../../src/kernel/signing/index.js';
import type { VerifyReport } from '../../src/verify/index.js';
import { mutable, text, type MutableBundle } from '../verify/helpers.js';
import { relink, resignEnvelope, swapConsumed } from '../verify/relink.js';
import { v1Of } from '../verify/v1.js';

let work: string;
let dir: string;
let issuer: SigningKey;
/** The bundle exported from the deployment, untouched. */
let bundleText: string;
/** `GET /v1/trust-roots` as served (fetched with no operator token), and its bytes. */
let served: unknown;
let servedText: string;
let servedStatus: number;

beforeAll(async () => {
  work = mkdtempSync(join(tmpdir(), 'fc-e2e-trust-'));
  dir = join(work, 'data');
  await initDataDir(dir);
  issuer = readSigningKey(dataPaths(dir).issuerKey);
  const instance = await startEmbedded(dir, { port: 0, executionPort: 0 });
  try {
    const file = readClientFile(dir, DEMO_CLIENT.identity);
    const client = createClient({
      url: instance.url,
      identity: file.identity,
      tenant: file.tenant,
      key: file.key,
    });
    expect(await client.call('echo', { message: 'pin me' }, { session: 'trust-1' })).toMatchObject({
      outcome: 'executed',
    });
    // Public keys: no operator token needed.
    const res = await fetch(`${instance.url}/v1/trust-roots`);
    servedStatus = res.status;
    servedText = await res.text();
    served = JSON.parse(servedText);
    const exp = await fetch(`${instance.url}/v1/admin/ledger-export`, {
      method: 'POST',
      headers: { authorization: `Bearer ${readOperatorToken(dir)}`, 'content-type': 'application/json' },
      body: '{}',
    });
    expect(exp.status).toBe(200);
    // The export is v2 (JSON Lines); these tests tamper with the bundle as one object (v1, same verdict).
    bundleText = v1Of(await exp.text());
  } finally {
    await instance.close();
  }
}, 60_000);

afterAll(() => {
  rmSync(work, { recursive: true, force: true });
});

let counter = 0;
function save(content: string): string {
  counter += 1;
  const path = join(work, `file-${counter}.json`);
  writeFileSync(path, content);
  return path;
}

async function cli(argv: readonly string[]): Promise<{ code: number; out: string }> {
  const out: string[] = [];
  const code = await runCli(argv, { out: (t) => out.push(t), err: (t) => out.push(t), env: {} });
  return { code, out: out.join('') };
}

async function verify(bundle: string, ...extra: string[]): Promise<{ code: number; report: VerifyReport }> {
  const r = await cli(['verify', save(bundle), '--json', ...extra]);
  const report = JSON.parse(r.out) as VerifyReport;
  expect(report.exitCode).toBe(r.code);
  return { code: r.code, report };
}

const codes = (r: VerifyReport): string[] => r.checks.flatMap((c) => c.findings.map((f) => f.code));

/** The trust file as the command writes it. */
async function trustFile(): Promise<string> {
  const path = join(work, 'trust-roots.json');
  const r = await cli(['--data', dir, 'trust-roots', '--out', path]);
  expect(r.code).toBe(0);
  return path;
}

describe('trust roots are published out of band', () => {
  it('the command and the public endpoint publish the same trust file: origin, vkey, issuer JWKS, approvers', async () => {
    expect(servedStatus).toBe(200);
    const bytes = readFileSync(await trustFile(), 'utf8');
    // Byte for byte: the auditor can compare SHA-256 digests across the two channels.
    expect(bytes).toBe(servedText);
    const fromCommand = JSON.parse(bytes) as Record<string, unknown>;
    const printed = await cli(['--data', dir, 'trust-roots']);
    expect(printed.code).toBe(0);
    expect(JSON.parse(printed.out)).toEqual(served);
    const b = mutable(bundleText);
    expect(fromCommand).toMatchObject({
      format: 'failclosed.trust-roots/v1',
      origin: b['origin'],
      ledger: { vkey: b['ledger_key'].vkey },
      issuer: { keys: [{ kid: issuer.kid }], revoked: [] },
      approvers: { keys: [], revoked: [] },
    });
  });

  it('failclosed jwks prints the issuer JWKS (not the ledger key)', async () => {
    const r = await cli(['--data', dir, 'jwks']);
    expect(r.code).toBe(0);
    expect(JSON.parse(r.out)).toEqual((served as { issuer: unknown }).issuer);
  });
});

describe('verify takes pinned trust roots', () => {
  it('the untouched export verifies under the pinned trust file (exit 0)', async () => {
    const { code, report } = await verify(bundleText, '--trust', await trustFile());
    expect(code).toBe(0);
    expect(report).toMatchObject({ ok: true, trust: 'trust-file', keyPinned: true });
    expect(report.checks.find((c) => c.id === 'trust-roots')?.status).toBe('pass');
  });

  it('every client key of a real export is ledgered (init registers the demo client), so pinned roots decide every request signature (FC-INV-3)', async () => {
    const b = mutable(bundleText);
    const registered = (b['entries'] as MutableBundle[])
      .filter((e) => e['type'] === 'admin.client_registered' && e['payload']['key_use'] === 'request')
      .map((e) => `${e['payload']['kid']} ${e['payload']['client']} ${e['tenant']}`);
    const named = Object.entries(b['jwks'].client_identities as Record<string, MutableBundle>).map(
      ([kid, o]) => `${kid} ${o['identity']} ${o['tenant']}`,
    );
    expect(named.length).toBeGreaterThan(0);
    expect(registered).toEqual(expect.arrayContaining(named));
    expect((b['entries'] as MutableBundle[]).some((e) => e['type'] === 'gateway.accepted')).toBe(true);
    const { code, report } = await verify(bundleText, '--trust', await trustFile());
    expect(code).toBe(0);
    const outcome = report.checks.find((c) => c.id === 'attributable-outcome');
    expect(outcome).toMatchObject({ status: 'pass', findings: [] });
    expect(outcome?.undecided).toBeUndefined();
  });

  it('without pinned roots verify never reports success: exit 3, not ok', async () => {
    const { code, report } = await verify(bundleText);
    expect(code).toBe(3);
    expect(report).toMatchObject({ ok: false, exitCode: 3, trust: 'none' });
    const textual = await cli(['verify', save(bundleText)]);
    expect(textual.code).toBe(3);
    expect(textual.out).toContain('NOT VERIFIED: no pinned trust roots');
  });

  it('--trust-bundle-keys passes (exit 0) and says loudly that nothing was pinned', async () => {
    const { code, report } = await verify(bundleText, '--trust-bundle-keys');
    expect(code).toBe(0);
    expect(report).toMatchObject({ ok: true, trust: 'bundle-keys', keyPinned: false });
    expect(report.notes.join(' ')).toContain('NOTHING PINNED');
    const textual = await cli(['verify', save(bundleText), '--trust-bundle-keys']);
    expect(textual.out).toContain("BUNDLE'S OWN KEYS");
  });

  it('a bundle rewritten and re-signed with another ledger key passes on its own keys, fails pinned', async () => {
    const b = mutable(bundleText);
    // The forger edits history, re-links every hash and re-signs the checkpoint with a key of its own.
    const echo = (b['entries'] as MutableBundle[]).find((e) => e['type'] === 'gateway.accepted')!;
    echo['tenant'] = 'someone-else';
    relink(b, issuer);
    const forged = text(b);
    expect(b['ledger_key'].vkey).not.toBe(mutable(bundleText)['ledger_key'].vkey);
    // On the bundle's own keys the forgery is self-consistent enough to pass the key checks.
    const own = await verify(forged, '--trust-bundle-keys');
    expect(own.report.checks.find((c) => c.id === 'checkpoint-signature')?.status).toBe('pass');
    expect((await verify(forged)).code).not.toBe(0);
    const pinned = await verify(forged, '--trust', await trustFile());
    expect(pinned.code).toBe(1);
    expect(pinned.report.checks.find((c) => c.id === 'checkpoint-signature')?.findings[0]).toMatchObject({
      code: 'LEDGER_KEY',
    });
    expect(codes(pinned.report)).toContain('CHECKPOINT_SIGNATURE');
    const vkey = (served as { ledger: { vkey: string } }).ledger.vkey;
    expect((await verify(forged, '--trusted-key', vkey)).code).toBe(1);
  });

  it('a pure key swap (same entries, checkpoint re-signed) exits 0 on bundle keys and 1 pinned', async () => {
    const b = mutable(bundleText);
    relink(b, issuer);
    const swapped = text(b);
    expect((await verify(swapped, '--trust-bundle-keys')).code).toBe(0);
    const pinned = await verify(swapped, '--trust', await trustFile());
    expect(pinned.code).toBe(1);
    expect(pinned.report.firstViolation).toMatchObject({ check: 'checkpoint-signature' });
  });

  it('an envelope re-signed with an issuer key the deployment never published fails under pinned issuer keys', async () => {
    const b = mutable(bundleText);
    const rogue = generateSigningKey();
    // Every consumed envelope (in its receipt) re-signed by the rogue key, and its issued record
    // made to name the new digest and kid: a forger who can re-hash the chain.
    const entries = b['entries'] as MutableBundle[];
    entries.forEach((e, i) => {
      const p = e['payload'] as MutableBundle;
      if (e['type'] !== 'execution.receipt' || typeof p['envelope'] !== 'string') return;
      swapConsumed(b, i, resignEnvelope(p['envelope'], rogue));
      for (const issued of entries)
        if (issued['type'] === 'envelope.issued' && (issued['payload'] as MutableBundle)['jti'] === p['jti'])
          (issued['payload'] as MutableBundle)['kid'] = rogue.kid;
    });
    b['jwks'].issuer = { keys: [{ ...rogue.publicJwk }], revoked: [] };
    const { vkey } = relink(b, issuer);
    const forged = text(b);
    // Pinning the (forger's) ledger key alone leaves the issuer keys to the bundle: it passes.
    expect((await verify(forged, '--trusted-key', vkey)).code).toBe(0);
    // The trust file pins the issuer keys: the rogue key is refused even with that ledger key.
    const trust = JSON.parse(readFileSync(await trustFile(), 'utf8')) as MutableBundle;
    trust['ledger'] = { vkey };
    const r = await verify(forged, '--trust', save(JSON.stringify(trust)));
    expect(r.code).toBe(1);
    const binding = r.report.checks.find((c) => c.id === 'envelope-binding');
    expect(binding?.findings[0]).toMatchObject({ code: 'ENVELOPE_KEY' });
    expect(binding?.findings[0]?.message).toContain('pinned issuer keys');
    expect(r.report.checks.find((c) => c.id === 'trust-roots')?.findings[0]).toMatchObject({
      code: 'TRUST_ROOT_MISMATCH',
    });
  });

  it('a key the pinned trust file revokes stays revoked, whatever the bundle says', async () => {
    const trust = JSON.parse(readFileSync(await trustFile(), 'utf8')) as MutableBundle;
    trust['issuer'].revoked = [issuer.kid];
    const r = await verify(bundleText, '--trust', save(JSON.stringify(trust)));
    expect(r.code).toBe(1);
    expect(r.report.checks.find((c) => c.id === 'envelope-binding')?.findings[0]).toMatchObject({
      code: 'ENVELOPE_KEY',
    });
  });

  it('an unusable trust file, or --trust-bundle-keys with pinned roots, is unusable input (exit 2)', async () => {
    expect((await verify(bundleText, '--trust', save('{"format":"nope"}'))).code).toBe(2);
    const bad = JSON.parse(readFileSync(await trustFile(), 'utf8')) as MutableBundle;
    bad['ledger'] = { vkey: 'not-a-vkey' };
    expect((await verify(bundleText, '--trust', save(JSON.stringify(bad)))).code).toBe(2);
    const both = await cli(['verify', save(bundleText), '--trust-bundle-keys', '--trust', await trustFile()]);
    expect(both.code).toBe(2);
  });

  it('--trusted-key is repeatable: one matching pinned key suffices', async () => {
    const vkey = (served as { ledger: { vkey: string } }).ledger.vkey;
    const other = relink(mutable(bundleText), issuer).vkey;
    const r = await verify(bundleText, '--trusted-key', other, '--trusted-key', vkey);
    expect(r.code).toBe(0);
    expect(r.report.trust).toBe('ledger-key');
  });
});
