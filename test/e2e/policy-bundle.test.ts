/**
 * SPEC §7 scenario 13 end to end: an unknown or tampered policy bundle is never used (SPEC §6
 * "the policy store unavailable → deny, never a fallback to an unknown policy"). The active bundle
 * file is tampered on disk and the deployment restarted; the ACTIVE pointer is aimed at an
 * unknown hash; an unknown hash is activated; an envelope names an unknown bundle. Every call is
 * denied and no tool runs.
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
  readSigningKey,
  startEmbedded,
} from '../../src/embedded/index.js';
import type { EmbeddedInstance } from '../../src/embedded/index.js';
import { partsOf, signRaw, withClaim } from './forge.js';

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

  it('scenario 13: an envelope naming an unknown policy bundle (well signed) → ERR_ENVELOPE_POLICY_UNKNOWN', async () => {
    const instance = await start();
    try {
      const params = { message: 'unknown-bundle' };
      // A real envelope: the consumed one, from its receipt (no unconsumed JWS is ever at rest).
      const ran = await echo(instance, params.message);
      expect(ran).toMatchObject({ outcome: 'executed' });
      const records = (await instance.core.ledger.store.readByRequest(ran.request_id ?? '')) as unknown as {
        type: string;
        payload: { envelope?: string };
      }[];
      const envelope = records.find((e) => e.type === 'execution.receipt')?.payload.envelope ?? '';
      const { header, payload } = partsOf(envelope);
      const forged = signRaw(
        header,
        withClaim(payload, 'policy_bundle', 'cd'.repeat(32)),
        readSigningKey(dataPaths(dir).issuerKey),
      );
      const before = runs;
      const res = await fetch(`${instance.executionUrl}/v1/execute`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ envelope: forged, tool: 'echo', tenant: 'acme', params }),
      });
      expect(await res.json()).toMatchObject({ outcome: 'deny', code: 'ERR_ENVELOPE_POLICY_UNKNOWN' });
      expect(runs).toBe(before);
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
