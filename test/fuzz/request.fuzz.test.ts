/**
 * Fuzzing the signed request at the Gate (SPEC §2 step 1, FC-INV-3, docs/request-format.md).
 *
 * The wire format is one JSON body; the signature is its `signature` member, over the context
 * string and the RFC 8785 canonical form of every other member. Property: ANY byte change to a
 * valid signed body (replace, insert, delete; one edit or several) is denied by the Gate's
 * request verification with a denial code, ledgered as `gateway.failed` with that code, and
 * nothing reaches the Control Plane or the Execution Layer; and a changed body is never accepted
 * as another request: if it still parses and its signature verifies, it is the very same request
 * (same canonical fields and signature, hence the same nonce and trace id) — JSON whitespace
 * between tokens is not signed — and the replay check denies it because the original was used.
 *
 * `npm test` runs a small fixed-seed sample (well under 2 s); `npm run fuzz` (FC_FUZZ=full) runs
 * every position × a set of byte values for each edit kind, then a large random sample of
 * multi-edit changes with a fresh seed. Failing inputs are replayed from test/fuzz/regressions/
 * (files `request-*.json`, see below).
 */
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createGate, createSqliteGateState, parseSignedRequest } from '../../src/gate/index.js';
import type { Gate, GateStateStore } from '../../src/gate/index.js';
import {
  canonicalize,
  isDeny,
  requestSigningInput,
  sha256Hex,
  statusOf,
  verifyEd25519,
} from '../../src/kernel/index.js';
import type { DenialCode, JsonValue } from '../../src/kernel/index.js';
import { signingKeyFromSeed } from '../../src/kernel/signing/index.js';
import { buildSignedRequest } from '../../src/client/index.js';
import { recordingLedger } from '../gate/harness.js';
import type { RecordingLedger } from '../gate/harness.js';
import { FULL, fuzzRuns, fuzzSeed } from './budget.js';

const T0 = Date.parse('2025-06-01T12:00:00.000Z');
const key = signingKeyFromSeed(Buffer.alloc(32, 7));
/** A request touching every field type: nested parameters, numbers, booleans, null, non-ASCII text. */
const original = buildSignedRequest({
  key,
  identity: 'agent-1',
  tenant: 'acme',
  action: 'echo',
  parameters: { text: 'hé ✓', n: 10, list: [1, true, null, 'x'], nested: { ok: false, z: -2.5 } },
  timestampMs: T0,
  session: 's-1',
  requestId: 'req-fuzz-1',
  nonce: Buffer.alloc(16, 9).toString('base64url'),
});
const ORIGINAL = Buffer.from(JSON.stringify(original), 'utf8');
const ORIGINAL_CANONICAL = canonicalize(original as unknown as JsonValue);

/** One byte edit of a body. */
type Edit =
  | { readonly kind: 'replace'; readonly pos: number; readonly byte: number }
  | { readonly kind: 'insert'; readonly pos: number; readonly byte: number }
  | { readonly kind: 'delete'; readonly pos: number };

function applyEdit(body: Buffer, e: Edit): Buffer {
  const pos = Math.min(e.pos, e.kind === 'insert' ? body.length : body.length - 1);
  if (e.kind === 'delete') return Buffer.concat([body.subarray(0, pos), body.subarray(pos + 1)]);
  const at = Buffer.from([e.byte]);
  if (e.kind === 'insert') return Buffer.concat([body.subarray(0, pos), at, body.subarray(pos)]);
  return Buffer.concat([body.subarray(0, pos), at, body.subarray(pos + 1)]);
}

/** What the Gate's request verification makes of `bytes`: its parse, client and signature steps. */
function verifies(bytes: Buffer): boolean {
  const p = parseSignedRequest(bytes);
  if (isDeny(p) || p.request.identity !== original.identity) return false;
  return verifyEd25519(key.publicKey, requestSigningInput(p.request), p.signatureBytes);
}

let dir: string;
let state: GateStateStore;
let ledger: RecordingLedger;
let gate: Gate;
let cpCalls = 0;
let execCalls = 0;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'fc-request-fuzz-'));
  state = createSqliteGateState({ path: join(dir, 'state.db') });
  await state.registerClient({ identity: 'agent-1', tenant: 'acme', jwk: key.publicJwk, atMs: T0 });
  ledger = recordingLedger();
  gate = createGate({
    clock: () => T0,
    clients: state,
    replay: state,
    ledger,
    controlPlane: {
      decide: () => {
        cpCalls += 1;
        return Promise.resolve({
          outcome: 'allow',
          decision_id: 'dec-1',
          envelope: 'aGVhZA.eyJ0b29sIjoiZWNobyJ9.c2ln',
          decision_ref: { index: 3, entry_hash: 'ef'.repeat(32) },
          policy_bundle: 'bundle',
        });
      },
      ready: () => Promise.resolve({ ready: true }),
      issuerJwks: () => ({ keys: [], revoked: [] }),
    },
    executor: {
      execute: () => {
        execCalls += 1;
        return Promise.resolve({
          outcome: 'executed',
          result: { ok: true },
          receipt: { index: 4, entry_hash: '01'.repeat(32) },
        });
      },
      void: () => Promise.resolve({ outcome: 'voided', recorded: true }),
    },
    operatorTokenSha256: sha256Hex('operator-token'),
    // Every denial is recorded: the fuzz checks each one's ledger record.
    unauthenticatedRecordsPerSecond: Number.MAX_SAFE_INTEGER,
  });
  // The original is valid, runs once, and its nonce and request id are now used.
  const first = await gate.call(ORIGINAL);
  expect(first.status).toBe(200);
  expect([cpCalls, execCalls]).toEqual([1, 1]);
});

afterAll(async () => {
  await state.close();
  rmSync(dir, { recursive: true, force: true });
});

/**
 * Sends `bytes` (a changed body) to the Gate and checks the property; returns a failure
 * description, or undefined when it holds.
 */
async function check(bytes: Buffer): Promise<string | undefined> {
  if (bytes.equals(ORIGINAL)) return undefined;
  ledger.events.length = 0;
  const before = [cpCalls, execCalls];
  const a = await gate.call(bytes);
  const body = a.body as unknown as Record<string, unknown>;
  const code = body['code'] as DenialCode;
  if (body['outcome'] !== 'deny') return `outcome ${String(body['outcome'])}`;
  if (a.status !== statusOf(code) || a.status < 400) return `status ${a.status} for ${code}`;
  if (cpCalls !== before[0] || execCalls !== before[1]) return 'reached the Control Plane or ran';
  const failed = ledger.events.filter((e) => e.type === 'gateway.failed');
  if (ledger.events.length !== 1 || failed.length !== 1 || failed[0]!.payload['code'] !== code)
    return `ledger records ${JSON.stringify(ledger.events.map((e) => [e.type, e.payload['code']]))}`;
  if (failed[0]!.payload['request_sha256'] !== sha256Hex(bytes)) return 'record not of these bytes';
  if (verifies(bytes)) {
    // Still authentic: only possible as the very same request, which was already used.
    const p = parseSignedRequest(bytes);
    if (isDeny(p) || canonicalize(p.request as unknown as JsonValue) !== ORIGINAL_CANONICAL)
      return 'a changed body verified as another request';
    if (code !== 'ERR_REQUEST_REPLAYED') return `authentic copy denied ${code}, not as a replay`;
  } else if (failed[0]!.identity !== null || failed[0]!.tenant !== null || failed[0]!.request_id !== null) {
    return 'an unauthenticated denial was attributed to a client';
  }
  return undefined;
}

const editArb: fc.Arbitrary<Edit> = fc.oneof(
  fc.record({ kind: fc.constant('replace' as const), pos: fc.nat(ORIGINAL.length - 1), byte: fc.nat(255) }),
  fc.record({ kind: fc.constant('insert' as const), pos: fc.nat(ORIGINAL.length), byte: fc.nat(255) }),
  fc.record({ kind: fc.constant('delete' as const), pos: fc.nat(ORIGINAL.length - 1) }),
);

const applyAll = (edits: readonly Edit[]): Buffer => edits.reduce(applyEdit, ORIGINAL);

/** Regression cases: `request-*.json` files `{ "target": "request.fuzz", "edits": [Edit…] }`. */
const REGRESSIONS = join(import.meta.dirname, 'regressions');
const regressions = readdirSync(REGRESSIONS)
  .filter((f) => f.startsWith('request-') && f.endsWith('.json'))
  .map((f) => [f, JSON.parse(readFileSync(join(REGRESSIONS, f), 'utf8')) as { edits: Edit[] }] as const);

describe('FC-INV-3: any byte change to a signed request is denied before policy (SPEC §2 step 1)', () => {
  it('the fixture is a valid signed request whose body verifies', () => {
    expect(verifies(ORIGINAL)).toBe(true);
    // Sanity of the oracle: an authentic copy with a space is the same request.
    expect(verifies(Buffer.from(` ${ORIGINAL.toString('utf8')}`))).toBe(true);
  });

  it('known edits: in the signature, a signed field, the JSON structure, whitespace', async () => {
    const text = ORIGINAL.toString('utf8');
    const sigAt = text.indexOf(original.signature);
    const cases: Edit[] = [
      { kind: 'replace', pos: sigAt, byte: original.signature.startsWith('A') ? 0x42 : 0x41 },
      { kind: 'replace', pos: sigAt + original.signature.length - 1, byte: 0x41 },
      { kind: 'delete', pos: sigAt },
      { kind: 'insert', pos: text.indexOf('"n":10') + 5, byte: 0x30 },
      { kind: 'replace', pos: text.indexOf('acme'), byte: 0x41 },
      { kind: 'delete', pos: 0 },
      { kind: 'insert', pos: 1, byte: 0x20 },
    ];
    for (const e of cases) expect([e, await check(applyEdit(ORIGINAL, e))]).toEqual([e, undefined]);
  });

  it.each(regressions)('regression %s', async (_f, r) => {
    expect(await check(applyAll(r.edits))).toBeUndefined();
  });

  it('random edits (one to three) never pass', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(editArb, { minLength: 1, maxLength: 3 }), async (edits) => {
        expect(await check(applyAll(edits))).toBeUndefined();
      }),
      { numRuns: fuzzRuns(150, 200_000), seed: fuzzSeed(13_013) },
    );
  });

  it.runIf(FULL)('exhaustive: every position × byte values, for replace, insert and delete', async () => {
    // Every byte value for replace and insert: structural, whitespace, alphabet and UTF-8 bytes.
    const values = Array.from({ length: 256 }, (_v, i) => i);
    const failures: string[] = [];
    let cases = 0;
    const probe = async (e: Edit): Promise<void> => {
      cases += 1;
      const why = await check(applyEdit(ORIGINAL, e));
      if (why !== undefined) failures.push(`${JSON.stringify(e)}: ${why}`);
    };
    for (let pos = 0; pos <= ORIGINAL.length; pos += 1) {
      if (pos < ORIGINAL.length) await probe({ kind: 'delete', pos });
      for (const byte of values) {
        await probe({ kind: 'insert', pos, byte });
        if (pos < ORIGINAL.length && byte !== ORIGINAL[pos]) await probe({ kind: 'replace', pos, byte });
      }
    }
    process.stdout.write(`request fuzz: ${cases} single-byte edits of a ${ORIGINAL.length}-byte body\n`);
    expect(failures.slice(0, 20)).toEqual([]);
  });
});
