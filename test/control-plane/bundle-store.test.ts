/** Hash-addressed bundles, activation and tampering (SPEC §6 "Policy as code", §7 scenario 13). */
import { existsSync, readFileSync, writeFileSync, chmodSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { sha256Hex } from '../../src/kernel/index.js';
import {
  ACTIVE_POINTER,
  compilePolicyBundle,
  createBundleStore,
  type CompileBundle,
} from '../../src/control-plane/index.js';
import { bundleDoc, entriesOf, OPERATOR, request, rig, settableClock, type Rig } from './support.js';

const opened: Rig[] = [];
async function open(...args: Parameters<typeof rig>): Promise<Rig> {
  const r = await rig(...args);
  opened.push(r);
  return r;
}
afterEach(async () => {
  for (const r of opened.splice(0)) await r.close();
});

function reopen(r: Rig, compile: CompileBundle = compilePolicyBundle) {
  return createBundleStore({
    dir: join(r.dir, 'bundles'),
    compile,
    ledger: r.faulty,
    now: settableClock(),
    ledgerTimeoutMs: 200,
  });
}

function tamper(r: Rig): void {
  const path = join(r.dir, 'bundles', `${r.bundleHash}.json`);
  chmodSync(path, 0o644);
  const text = readFileSync(path, 'utf8').replace('echo is fine', 'echo is FINE');
  writeFileSync(path, text);
}

describe('bundle store (SPEC §6)', () => {
  it('stores the canonical bytes under their SHA-256 and points ACTIVE at the activated hash', async () => {
    const r = await open();
    const file = readFileSync(join(r.dir, 'bundles', `${r.bundleHash}.json`));
    expect(sha256Hex(file)).toBe(r.bundleHash);
    expect(readFileSync(join(r.dir, 'bundles', ACTIVE_POINTER), 'utf8').trim()).toBe(r.bundleHash);
    expect(r.cp.activeBundle()?.hash).toBe(r.bundleHash);
    expect(await r.cp.ready()).toEqual({ ready: true });
  });

  it('activation is ledgered first with bundle, previous bundle and actor', async () => {
    const r = await open();
    const second = r.bundles.put(JSON.stringify(bundleDoc('cp-test-2')));
    if (second.outcome !== 'ok') throw new Error('put failed');
    const act = await r.cp.activateBundle(second.hash, OPERATOR, 'upgrade');
    expect(act).toMatchObject({ outcome: 'ok', hash: second.hash, previous: r.bundleHash });
    const last = (await entriesOf(r.ledger)).at(-1)!;
    expect(last.type).toBe('admin.policy_activated');
    expect(last.actor).toEqual(OPERATOR);
    expect(last.payload).toMatchObject({
      policy_bundle: second.hash,
      previous_bundle: r.bundleHash,
      constitution_version: 'cp-test-2',
    });
    const res = await r.cp.decide(request('echo', { message: 'hi' }));
    expect(res.outcome === 'allow' && res.policy_bundle).toBe(second.hash);
  });

  it('activation the ledger does not confirm leaves the pointer and the active bundle unchanged', async () => {
    const r = await open();
    const second = r.bundles.put(JSON.stringify(bundleDoc('cp-test-2')));
    if (second.outcome !== 'ok') throw new Error('put failed');
    r.faulty.mode = 'fail';
    expect(await r.cp.activateBundle(second.hash, OPERATOR, 'upgrade')).toMatchObject({
      code: 'ERR_LEDGER_UNAVAILABLE',
    });
    expect(r.cp.activeBundle()?.hash).toBe(r.bundleHash);
    expect(readFileSync(join(r.dir, 'bundles', ACTIVE_POINTER), 'utf8').trim()).toBe(r.bundleHash);
  });

  it('activating an unknown hash is ERR_POLICY_BUNDLE_INVALID and ledgers nothing', async () => {
    const r = await open();
    const before = r.faulty.attempts.length;
    expect(await r.cp.activateBundle('e'.repeat(64), OPERATOR, 'x')).toMatchObject({
      code: 'ERR_POLICY_BUNDLE_INVALID',
    });
    expect(await r.cp.activateBundle('../../etc/passwd', OPERATOR, 'x')).toMatchObject({
      code: 'ERR_POLICY_BUNDLE_INVALID',
    });
    expect(r.faulty.attempts.length).toBe(before);
  });

  it('put refuses a document the policy layer refuses', async () => {
    const r = await open();
    const doc = { ...bundleDoc(), unexpected: true };
    expect(r.bundles.put(JSON.stringify(doc))).toMatchObject({
      outcome: 'deny',
      code: 'ERR_POLICY_BUNDLE_INVALID',
    });
    expect(r.bundles.put('{"a":1,"a":2}')).toMatchObject({ outcome: 'deny', code: 'ERR_JSON_DUPLICATE_KEY' });
  });

  it('compiles each bundle once and serves it from the cache', async () => {
    const r = await open();
    let compiled = 0;
    const store = reopen(r, (bytes, hash) => {
      compiled++;
      return compilePolicyBundle(bytes, hash);
    });
    store.active();
    store.get(r.bundleHash);
    store.get(r.bundleHash);
    expect(compiled).toBe(1);
  });
});

describe('tampered or unknown bundle → deny (SPEC §7 scenario 13)', () => {
  it('a tampered active bundle file: not ready, ERR_POLICY_UNAVAILABLE, get → ERR_POLICY_BUNDLE_INVALID', async () => {
    const base = await open();
    tamper(base);
    const store = reopen(base);
    expect(store.get(base.bundleHash)).toMatchObject({ code: 'ERR_POLICY_BUNDLE_INVALID' });
    expect(store.active()).toMatchObject({ code: 'ERR_POLICY_UNAVAILABLE' });
    const r = await open({ bundles: store });
    expect(await r.cp.decide(request('echo', { message: 'hi' }))).toMatchObject({
      outcome: 'deny',
      code: 'ERR_POLICY_UNAVAILABLE',
    });
    expect((await r.cp.ready()).ready).toBe(false);
    expect(r.cp.activeBundle()).toBeUndefined();
  });

  it('reload re-verifies from disk and drops a bundle tampered after load', async () => {
    const r = await open();
    tamper(r);
    expect(r.bundles.active()).toHaveProperty('hash', r.bundleHash);
    r.bundles.reload();
    expect(r.bundles.active()).toMatchObject({ code: 'ERR_POLICY_UNAVAILABLE' });
  });

  it.each([
    ['malformed', 'not-a-hash\n'],
    ['unknown', `${'d'.repeat(64)}\n`],
  ])('a %s ACTIVE pointer → ERR_POLICY_UNAVAILABLE', async (_name, pointer) => {
    const r = await open();
    writeFileSync(join(r.dir, 'bundles', ACTIVE_POINTER), pointer);
    expect(reopen(r).active()).toMatchObject({ code: 'ERR_POLICY_UNAVAILABLE' });
  });

  it('a bundle file removed from disk is unknown', async () => {
    const r = await open();
    const store = reopen(r);
    expect(existsSync(join(r.dir, 'bundles', `${'0'.repeat(64)}.json`))).toBe(false);
    expect(store.get('0'.repeat(64))).toMatchObject({ code: 'ERR_POLICY_BUNDLE_INVALID' });
  });
});
