/**
 * Kernel benchmark: envelope issue and verify against raw node:crypto Ed25519 measured in the
 * same run (SPEC §8 "JOSE speed": a hand-built codec on cached KeyObjects). Target: issue and
 * verify each cost at most 1.3× their raw baseline.
 *
 *   npm run bench:kernel            (builds, then runs dist/bench/kernel/index.js)
 *   node dist/bench/kernel/index.js 5000   (optional: total milliseconds per case)
 */
import { sign as cryptoSign, verify as cryptoVerify } from 'node:crypto';
import {
  canonicalize,
  computeParamsSha256,
  createKeyRing,
  fixedClock,
  sha256,
  verifyEnvelope,
  type EnvelopeClaims,
  type JsonValue,
  type VerifyEnvelopeContext,
} from '../../src/kernel/index.js';
import { signEnvelope, signingKeyFromSeed } from '../../src/kernel/signing/index.js';

const DURATION_MS = Number(process.argv[2] ?? 1000);
const WARMUP_MS = Math.min(300, DURATION_MS);
const TARGET = 1.3;
const ROUNDS = 10;

const key = signingKeyFromSeed(sha256('failclosed bench key'));
const params: JsonValue = {
  path: '/srv/reports/2026/q1/summary.txt',
  max_lines: 200,
  follow: false,
  options: { encoding: 'utf8', strip_ansi: true, tags: ['finance', 'quarterly'] },
};
const NOW_SEC = 1_767_225_600;
const claims: EnvelopeClaims = {
  iss: 'failclosed-control-plane',
  aud: 'executor-1',
  sub: 'agent:reporter',
  tenant: 'acme',
  tool: 'fs.read',
  params_sha256: computeParamsSha256(params),
  jti: 'b2f1c6a0e4d94c1f9a7e3d2c1b0a9f8e',
  iat: NOW_SEC,
  exp: NOW_SEC + 60,
  decision_id: 'dec-6f9a1c2e',
  request_id: 'req-3b7d9e1f',
  trace_id: '4bf92f3577b34da6a3ce929d0e0e4736',
  policy_bundle: sha256('bundle').toString('hex'),
  ledger: { index: 123456, entry_hash: sha256('entry').toString('hex') },
  approvals: [],
  constraints: {
    timeout_ms: 5000,
    max_output_bytes: 1_048_576,
    memory_bytes: 268_435_456,
    network: false,
    egress: [],
    fs_read: ['/srv/reports'],
    fs_write: [],
    max_cost_cents: null,
  },
};

const ring = createKeyRing();
ring.add(key.publicJwk);
const ctx: VerifyEnvelopeContext = {
  keys: ring,
  audience: 'executor-1',
  now: fixedClock(NOW_SEC * 1000 + 1000),
  clockToleranceSec: 5,
  maxLifetimeSec: 300,
  call: { tool: 'fs.read', tenant: 'acme', params },
  isKnownPolicyBundle: (hash) => hash === claims.policy_bundle,
};

const token = signEnvelope(claims, key);
const lastDot = token.lastIndexOf('.');
const signingInput = Buffer.from(token.slice(0, lastDot), 'latin1');
const signature = Buffer.from(token.slice(lastDot + 1), 'base64url');
const payloadText = Buffer.from(token.slice(token.indexOf('.') + 1, lastDot), 'base64url').toString('utf8');
const canonicalParams = canonicalize(params);

if (verifyEnvelope(token, ctx).outcome !== 'allow')
  throw new Error('bench setup: the envelope does not verify');

let sink = 0;

/** Runs `fn` repeatedly for `ms` milliseconds; returns operations per second. */
function run(fn: () => unknown, ms: number): number {
  const start = performance.now();
  let ops = 0;
  let elapsed = 0;
  do {
    for (let i = 0; i < 32; i++) if (fn()) sink++;
    ops += 32;
    elapsed = performance.now() - start;
  } while (elapsed < ms);
  return (ops * 1000) / elapsed;
}

const cases: [string, () => unknown][] = [
  ['raw crypto.sign (Ed25519)', () => cryptoSign(null, signingInput, key.privateKey)],
  ['raw crypto.verify (Ed25519)', () => cryptoVerify(null, signingInput, key.publicKey, signature)],
  ['JSON.parse(payload)', () => JSON.parse(payloadText)],
  ['canonicalize(params)', () => canonicalize(params)],
  ['canonicalize(claims)', () => canonicalize(claims as unknown as JsonValue)],
  ['sha256(canonical params)', () => sha256(canonicalParams)],
  [
    'issue (hash params + signEnvelope)',
    () => signEnvelope({ ...claims, params_sha256: computeParamsSha256(params) }, key),
  ],
  ['verify (verifyEnvelope)', () => verifyEnvelope(token, ctx)],
];

// Warm up every case, then interleave ROUNDS short runs per case so that load from other
// processes hits subject and baseline alike; each case keeps its best round.
for (const [, fn] of cases) run(fn, WARMUP_MS);
const opsPerSec = new Map<string, number>();
for (let round = 0; round < ROUNDS; round++) {
  for (const [name, fn] of cases) {
    opsPerSec.set(name, Math.max(opsPerSec.get(name) ?? 0, run(fn, DURATION_MS / ROUNDS)));
  }
}
const micros = (name: string): number => 1e6 / (opsPerSec.get(name) ?? Number.NaN);

const rows = cases.map(([name]) => [
  name,
  Math.round(opsPerSec.get(name)!).toLocaleString('en-US'),
  micros(name).toFixed(2),
]);
const width = [Math.max(...rows.map((r) => r[0]!.length)), 12, 10];
const line = (cells: string[]): string =>
  cells.map((c, i) => (i === 0 ? c.padEnd(width[i]!) : c.padStart(width[i]!))).join('  ');

console.log(
  `failclosed kernel benchmark: node ${process.version}, ${DURATION_MS} ms per case in ${ROUNDS} interleaved rounds (best round)\n`,
);
console.log(line(['operation', 'ops/s', 'µs/op']));
console.log(line(width.map((w) => '-'.repeat(w))));
for (const r of rows) console.log(line(r));

const issueRatio =
  micros('issue (hash params + signEnvelope)') /
  (micros('raw crypto.sign (Ed25519)') + micros('canonicalize(params)'));
const verifyRatio =
  micros('verify (verifyEnvelope)') / (micros('raw crypto.verify (Ed25519)') + micros('JSON.parse(payload)'));
const verdict = (r: number): string => (r <= TARGET ? `ok (≤ ${TARGET}×)` : `OVER TARGET (> ${TARGET}×)`);
console.log('');
console.log(
  `issue  / (raw sign + canonicalize(params))   = ${issueRatio.toFixed(3)}×  ${verdict(issueRatio)}`,
);
console.log(
  `verify / (raw verify + JSON.parse(payload))  = ${verifyRatio.toFixed(3)}×  ${verdict(verifyRatio)}`,
);
if (sink < 0) console.log(sink);
