/**
 * SPEC §7 scenario 13 end to end: an unknown or tampered policy bundle is never used (SPEC §6
 * "the policy store unavailable → deny, never a fallback to an unknown policy"). The active bundle
 * file is tampered on disk and the deployment restarted; the ACTIVE pointer is aimed at an
 * unknown hash; an unknown hash is activated; an envelope names an unknown bundle. Every call is
 * denied and no tool runs. The envelope naming an unknown bundle is checked in both topologies
 * (harness.ts): in `distributed` a separate Execution Layer, which fetches bundles by hash from
 * the Gate process, still names it in its place in the verification order (SPEC §3). The other
 * cases restart their own embedded deployments.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync, chmodSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createClient } from '../../src/client/index.js';
import {
  DEMO_CLIENT,
  dataPaths,
  initDataDir,
  readClientFile,
  startEmbedded,
} from '../../src/embedded/index.js';
import type { EmbeddedInstance } from '../../src/embedded/index.js';
import { flipBit, partsOf, signRaw, withClaim } from './forge.js';
import type { E2e } from './harness.js';
import { ALL_TOPOLOGIES, expectDenied, startE2e } from './harness.js';

let work: string;
let dir: string;
let runs = 0;
let live: EmbeddedInstance | undefined;

async function start(): Promise<EmbeddedInstance> {
  live = await startEmbedded(dir, { port: 0, executionPort: 0, onToolRun: () => void (runs += 1) });
  return live;
}

async function stop(): Promise<void> {
  await live?.close();
  live = undefined;
}

async function echo(instance: EmbeddedInstance, message: string) {
  const file = readClientFile(dir, DEMO_CLIENT.identity);
  const client = createClient({
    url: instance.url,
    identity: file.identity,
    tenant: file.tenant,
    key: file.key,
  });
  return client.call('echo', { message }, { session: `s13-${message}` });
}

const bundlesDir = (): string => dataPaths(dir).bundles;
const activeHash = (): string => readFileSync(join(bundlesDir(), 'ACTIVE'), 'utf8').trim();

beforeAll(async () => {
  work = mkdtempSync(join(tmpdir(), 'fc-e2e-policy-'));
  dir = join(work, 'data');
  await initDataDir(dir);
});

afterAll(async () => {
  await stop();
  rmSync(work, { recursive: true, force: true });
});

describe('scenario 13: unknown or tampered policy bundle', () => {
  it('scenario 13: activating an unknown hash or an invalid bundle is refused; the verified bundle stays active', async () => {
    const instance = await start();
    try {
      const before = activeHash();
      const r = await instance.core.controlPlane.activateBundle(
        'ab'.repeat(32),
        { id: 'operator', role: 'operator' },
        'e2e',
      );
      expect(r).toMatchObject({ outcome: 'deny', code: 'ERR_POLICY_BUNDLE_INVALID' });
      const broken = JSON.parse(readFileSync(join(bundlesDir(), `${before}.json`), 'utf8')) as {
        policies: Record<string, string>;
      };
      broken.policies['tenant-isolation'] =
        'forbid (principal, action, resource) unless { principal.no_such_attribute };';
      const token = readFileSync(dataPaths(dir).operatorToken, 'utf8').trim();
      const res = await fetch(`${instance.url}/v1/admin/policy-activate`, {
        method: 'POST',
        headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
        body: JSON.stringify({ bundle: JSON.stringify(broken) }),
      });
      expect(await res.json()).toMatchObject({ outcome: 'deny', code: 'ERR_POLICY_BUNDLE_INVALID' });
      expect(activeHash()).toBe(before);
      expect(await echo(instance, 'still-governed')).toMatchObject({ outcome: 'executed' });
    } finally {
      await stop();
    }
  });

  it('scenario 13: the active bundle file tampered on disk → after restart every call is denied ERR_POLICY_UNAVAILABLE', async () => {
    const path = join(bundlesDir(), `${activeHash()}.json`);
    const original = readFileSync(path, 'utf8');
    // Raise the hard cap: still valid JSON and valid Cedar, but no longer the hash it is named by.
    const tampered = original.replace('decimal(\\"50000.0\\")', 'decimal(\\"5000000.0\\")');
    expect(tampered).not.toBe(original);
    chmodSync(path, 0o644);
    writeFileSync(path, tampered);
    try {
      const instance = await start();
      const before = runs;
      expect(await echo(instance, 'tampered')).toMatchObject({
        outcome: 'deny',
        code: 'ERR_POLICY_UNAVAILABLE',
      });
      expect(runs).toBe(before);
    } finally {
      await stop();
      writeFileSync(path, original);
    }
  });

  it('scenario 13: the ACTIVE pointer aimed at an unknown bundle → after restart every call is denied', async () => {
    const pointer = join(bundlesDir(), 'ACTIVE');
    const original = readFileSync(pointer, 'utf8');
    writeFileSync(pointer, `${'ef'.repeat(32)}\n`);
    try {
      const instance = await start();
      const before = runs;
      expect(await echo(instance, 'unknown-active')).toMatchObject({
        outcome: 'deny',
        code: 'ERR_POLICY_UNAVAILABLE',
      });
      expect(runs).toBe(before);
    } finally {
      await stop();
      writeFileSync(pointer, original);
    }
    // Restored: the verified bundle governs again.
    const instance = await start();
    try {
      expect(await echo(instance, 'restored')).toMatchObject({ outcome: 'executed' });
    } finally {
      await stop();
    }
  });
});

describe.each(ALL_TOPOLOGIES)(
  '%s topology: scenario 13: an envelope naming an unknown policy bundle',
  (topology) => {
    let e2e: E2e;

    beforeAll(async () => {
      e2e = await startE2e({ topology });
    }, 60_000);

    afterAll(async () => {
      await e2e?.close();
    });

    it('scenario 13: well signed → ERR_ENVELOPE_POLICY_UNKNOWN, and the genuine envelope still runs', async () => {
      const params = { message: 'unknown-bundle' };
      const { envelope } = await e2e.unusedEnvelope('echo', params);
      const { header, payload } = partsOf(envelope);
      const forged = signRaw(header, withClaim(payload, 'policy_bundle', 'cd'.repeat(32)), e2e.issuerKey());
      const present = (env: string) => () =>
        e2e.execute({ envelope: env, tool: 'echo', tenant: 'acme', params });
      await expectDenied(e2e, 'ERR_ENVELOPE_POLICY_UNKNOWN', present(forged));
      // The check has its place in the verification order (SPEC §3): a bad signature is named first.
      await expectDenied(e2e, 'ERR_ENVELOPE_SIGNATURE', present(flipBit(forged, 2)));
      const before = e2e.totalRuns();
      expect((await present(envelope)()).body).toMatchObject({ outcome: 'executed' });
      expect(e2e.totalRuns()).toBe(before + 1);
    });
  },
);
