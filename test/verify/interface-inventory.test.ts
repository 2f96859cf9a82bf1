/**
 * The interface inventory check of `failclosed verify` (FC-INV-6 evidence, docs/inventory.md) on
 * a real deployment's export: the inventory recorded in the ledger lists every interface the
 * receipts came through. Each forgery is made by the consistent forger (relink.ts: chain, hashes,
 * envelopes and checkpoint rebuilt, the forger's ledger key pinned), so every other check passes
 * and only this one can catch it, naming the receipt.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
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
import { canonicalize, parseInventory, sha256Hex } from '../../src/kernel/index.js';
import type { SigningKey } from '../../src/kernel/signing/index.js';
import { verifyBundle, type VerifyReport } from '../../src/verify/index.js';
import { mutable, text, type MutableBundle } from './helpers.js';
import { relink } from './relink.js';
import { v1Of } from './v1.js';

let work: string;
/** The export as the Gate streams it (v2), and as one document (v1) for forging. */
let streamed: string;
let full: string;
let traced: string;
let trust: string;
let issuer: SigningKey;
let echoTrace: string;

async function exportVia(url: string, dir: string, body: object): Promise<string> {
  const res = await fetch(`${url}/v1/admin/ledger-export`, {
    method: 'POST',
    headers: { authorization: `Bearer ${readOperatorToken(dir)}`, 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
  expect(res.status).toBe(200);
  return res.text();
}

beforeAll(async () => {
  work = mkdtempSync(join(tmpdir(), 'fc-verify-inventory-'));
  const dir = join(work, 'data');
  await initDataDir(dir);
  issuer = readSigningKey(dataPaths(dir).issuerKey);
  const file = readClientFile(dir, DEMO_CLIENT.identity);
  const instance = await startEmbedded(dir, { port: 0, executionPort: 0 });
  try {
    const client = createClient({
      url: instance.url,
      identity: file.identity,
      tenant: file.tenant,
      key: file.key,
    });
    const echo = await client.call('echo', { message: 'inventory' }, { session: 'inventory-1' });
    expect(echo).toMatchObject({ outcome: 'executed' });
    echoTrace = (echo as { trace_id: string }).trace_id;
    streamed = await exportVia(instance.url, dir, {});
    full = v1Of(streamed);
    traced = v1Of(await exportVia(instance.url, dir, { trace_id: echoTrace }));
    trust = await (await fetch(`${instance.url}/v1/trust-roots`)).text();
  } finally {
    await instance.close();
  }
}, 60_000);

afterAll(() => {
  rmSync(work, { recursive: true, force: true });
});

const CHECK = 'interface-inventory';
const check = (r: VerifyReport) => r.checks.find((c) => c.id === CHECK);
const failing = (r: VerifyReport): string[] => r.checks.filter((c) => c.status === 'fail').map((c) => c.id);
const entriesOf = (b: MutableBundle): MutableBundle[] => b['entries'] as MutableBundle[];
const receiptOf = (b: MutableBundle): MutableBundle =>
  entriesOf(b).find((e) => e['trace_id'] === echoTrace && e['type'] === 'execution.receipt')!;

/** Applies `tamper`, rebuilds the ledger consistently and verifies with the forger's key pinned. */
function forge(
  tamper: (b: MutableBundle) => void,
  requireInventory = false,
): { r: VerifyReport; b: MutableBundle } {
  const b = mutable(full);
  tamper(b);
  const { vkey } = relink(b, issuer);
  return {
    r: verifyBundle(text(b), { trustedKey: vkey, ...(requireInventory ? { requireInventory } : {}) }),
    b,
  };
}

describe('a real export carries its inventory and every receipt is listed (FC-INV-6)', () => {
  it('the streamed export verifies: the check passes and nothing is noted about the inventory', () => {
    for (const bundle of [streamed, full]) {
      const r = verifyBundle(bundle, { trust, requireInventory: true });
      expect(r.exitCode).toBe(0);
      expect(check(r)?.status).toBe('pass');
      expect(r.notes.filter((n) => n.startsWith('inventory:'))).toEqual([]);
    }
  });

  it('the recorded inventory is evidence naming the active bundle, its listener and the echo tool', () => {
    const b = mutable(full);
    const recorded = entriesOf(b).filter((e) => e['type'] === 'inventory.recorded');
    expect(recorded.length).toBeGreaterThan(0);
    const last = recorded.at(-1)!;
    const blob = b['evidence'][last['payload'].inventory_sha256 as string] as { body_b64: string };
    const doc = parseInventory(JSON.parse(Buffer.from(blob.body_b64, 'base64').toString('utf8')));
    if (typeof doc === 'string') throw new Error(doc);
    expect(doc.policy_bundle).toBe(last['payload'].policy_bundle);
    expect(doc.interfaces.find((e) => e.id === 'tool:echo')).toMatchObject({
      kind: 'builtin',
      tool: 'echo',
      adapter: 'builtin',
      policy: { actions: ['Action::"echo"'], permit: 'possible' },
    });
    expect(doc.interfaces.find((e) => e.kind === 'execution-listener')?.audience).toBe(
      receiptOf(b)['actor'].id,
    );
  });

  it('the consistent forger alone changes nothing the check sees', () => {
    expect(forge(() => undefined).r.exitCode).toBe(0);
  });
});

describe('a receipt from an unlisted interface fails verification (FC-INV-6)', () => {
  it('a receipt naming an adapter the inventory does not list for its tool: INVENTORY_UNLISTED, only this check fails', () => {
    const { r, b } = forge((x) => {
      receiptOf(x)['payload'].adapter = 'command';
    });
    expect(r.exitCode).toBe(1);
    expect(failing(r)).toEqual([CHECK]);
    expect(check(r)?.findings[0]).toMatchObject({ code: 'INVENTORY_UNLISTED', index: receiptOf(b)['index'] });
    expect(r.firstViolation).toMatchObject({ check: CHECK, code: 'INVENTORY_UNLISTED' });
  });

  it('a receipt written by an executor the inventory does not list: INVENTORY_EXECUTOR_UNLISTED', () => {
    const { r, b } = forge((x) => {
      receiptOf(x)['actor'].id = 'rogue-executor';
    });
    expect(r.exitCode).toBe(1);
    expect(failing(r)).toEqual([CHECK]);
    expect(check(r)?.findings[0]).toMatchObject({
      code: 'INVENTORY_EXECUTOR_UNLISTED',
      index: receiptOf(b)['index'],
    });
  });

  it('an inventory rewritten without the tool (re-hashed, re-linked) no longer covers its receipt', () => {
    const { r } = forge((x) => {
      const entry = entriesOf(x)
        .filter((e) => e['type'] === 'inventory.recorded')
        .at(-1)!;
      const old = entry['payload'].inventory_sha256 as string;
      const doc = JSON.parse(
        Buffer.from(x['evidence'][old].body_b64 as string, 'base64').toString('utf8'),
      ) as {
        interfaces: { id: string }[];
      };
      doc.interfaces = doc.interfaces.filter((e) => e.id !== 'tool:echo');
      const body = Buffer.from(canonicalize(doc as never));
      const sha = sha256Hex(body);
      x['evidence'][sha] = {
        media_type: 'application/vnd.failclosed.inventory+json',
        body_b64: body.toString('base64'),
      };
      entry['payload'].inventory_sha256 = sha;
      entry['payload'].interfaces = doc.interfaces.length;
    });
    expect(failing(r)).toEqual([CHECK]);
    expect(check(r)?.findings[0]?.code).toBe('INVENTORY_UNLISTED');
  });

  it('an inventory entry whose document is not in the bundle: INVENTORY_MISSING', () => {
    const { r } = forge((x) => {
      for (const e of entriesOf(x).filter((y) => y['type'] === 'inventory.recorded'))
        delete x['evidence'][e['payload'].inventory_sha256 as string];
    });
    expect(r.exitCode).toBe(1);
    expect(check(r)?.findings.map((f) => f.code)).toContain('INVENTORY_MISSING');
  });
});

describe('older ledgers without an inventory', () => {
  const withoutInventory = (x: MutableBundle): void => {
    x['entries'] = entriesOf(x).filter((e) => e['type'] !== 'inventory.recorded');
  };

  it('verify with a note "inventory: not present", not a failure', () => {
    const { r } = forge(withoutInventory);
    expect(r.exitCode).toBe(0);
    expect(check(r)?.status).toBe('pass');
    expect(r.notes.some((n) => n.startsWith('inventory: not present'))).toBe(true);
  });

  it('--require-inventory makes every receipt without one a violation: INVENTORY_NOT_PRESENT', () => {
    const { r, b } = forge(withoutInventory, true);
    expect(r.exitCode).toBe(1);
    expect(failing(r)).toEqual([CHECK]);
    expect(check(r)?.findings[0]).toMatchObject({
      code: 'INVENTORY_NOT_PRESENT',
      index: receiptOf(b)['index'],
    });
  });

  it('a trace export (the inventory lies outside it) notes it and passes', () => {
    const r = verifyBundle(traced, { trust });
    expect(r.exitCode).toBe(0);
    expect(r.notes.some((n) => n.startsWith('inventory: not in this partial bundle'))).toBe(true);
  });
});
