/**
 * The executor test world shared by the executor test files: real signing keys, a real SQLite
 * nonce store per world, the real redactor and default builtins, a spy adapter and an in-memory
 * ExecutionLedger holding the decision and issuance each envelope points at.
 */
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  createDefaultBuiltinAdapter,
  createEnvSecretResolver,
  createRedactor,
  createSqliteNonceStore,
} from '../../src/execution/index.js';
import type { ExecutorDeps, NonceStore, ToolExecutionSpec } from '../../src/execution/index.js';
import { computeParamsSha256, createKeyRing, sha256Hex } from '../../src/kernel/index.js';
import type { EnvelopeClaims, JsonValue } from '../../src/kernel/index.js';
import { generateSigningKey, signEnvelope } from '../../src/kernel/signing/index.js';
import { constraints, MemoryLedger, spyAdapter } from './support.js';
import type { DecisionFields } from './support.js';

export const NOW_MS = 1_750_000_000_000;
export const NOW = NOW_MS / 1000;
export const AUD = 'executor-1';
export const BUNDLE = sha256Hex('bundle-1');
export const SECRET = 'sk_live_0123456789abcdef';

/**
 * The scratch folder, made again if an earlier file removed it (test files share this module
 * when they share a worker); {@link removeScratch} deletes it (call it in `afterAll`).
 */
const scratch = mkdtempSync(join(tmpdir(), 'fc-executor-'));
export const scratchDir = (): string => {
  mkdirSync(scratch, { recursive: true });
  return scratch;
};
export const removeScratch = (): void => rmSync(scratch, { recursive: true, force: true });

export const key = generateSigningKey();
export const keys = createKeyRing();
keys.add(key.publicJwk);
let seq = 0;

export interface World {
  ledger: MemoryLedger;
  nonces: NonceStore;
  spy: ReturnType<typeof spyAdapter>;
  deps: ExecutorDeps;
  envelope: (
    over?: Partial<EnvelopeClaims>,
    params?: JsonValue,
    record?: { issued?: boolean; decision?: Partial<DecisionFields> },
  ) => string;
}

export function world(over: Partial<ExecutorDeps> = {}, spy = spyAdapter()): World {
  const ledger = new MemoryLedger();
  const nonces = createSqliteNonceStore({ path: join(scratchDir(), `n${++seq}.db`), now: () => NOW_MS });
  const secrets = createEnvSecretResolver({ env: { FC_SECRET_API_KEY: SECRET } });
  const specs: Record<string, ToolExecutionSpec> = {
    echo: { type: 'spy' },
    transfer_funds: { type: 'builtin' },
    leak_secret: { type: 'builtin' },
    exotic: { type: 'mcp' },
  };
  const builtins = createDefaultBuiltinAdapter({ now: () => NOW_MS });
  const deps: ExecutorDeps = {
    audience: AUD,
    keys,
    now: () => NOW_MS,
    clockToleranceSec: 30,
    maxLifetimeSec: 300,
    isKnownPolicyBundle: (h) => h === BUNDLE,
    ledger,
    nonces,
    resolveTool: (bundle, tool) => (bundle === BUNDLE ? specs[tool] : undefined),
    adapters: { spy: spy.adapter, builtin: builtins },
    redactor: createRedactor({ secrets: () => secrets.knownValues() }),
    secrets,
    timeouts: { ledgerMs: 100, nonceMs: 100, adapterGraceMs: 50 },
    ...over,
  };
  const envelope = (
    o: Partial<EnvelopeClaims> = {},
    params: JsonValue = { message: 'hi' },
    record: { issued?: boolean; decision?: Partial<DecisionFields> } = {},
  ): string => {
    const decision_id = o.decision_id ?? `dec-${++seq}`;
    const tenant = o.tenant ?? 'acme';
    const base = {
      iss: 'control-plane',
      aud: AUD,
      sub: 'agent-7',
      tenant,
      tool: 'echo',
      params_sha256: computeParamsSha256(params),
      jti: `jti-${++seq}`,
      iat: NOW,
      exp: NOW + 60,
      decision_id,
      request_id: `req-${seq}`,
      trace_id: `trace-${seq}`,
      policy_bundle: BUNDLE,
      approvals: [],
      constraints: constraints({ timeout_ms: 200 }),
      ...o,
    };
    // The decision the envelope points at: by default exactly the decided call, allowed.
    const ledgerRef =
      o.ledger ??
      ledger.addDecision({
        decision_id: base.decision_id,
        tenant: base.tenant,
        request_id: base.request_id,
        tool: base.tool,
        client: base.sub,
        policy_bundle: base.policy_bundle,
        params_sha256: base.params_sha256,
        ...record.decision,
      });
    const claims: EnvelopeClaims = { ...base, ledger: ledgerRef };
    const jws = signEnvelope(claims, key);
    if (record.issued !== false) ledger.addIssued(claims, jws);
    return jws;
  };
  return { ledger, nonces, spy, deps, envelope };
}

export const call = (envelope: unknown, params: JsonValue = { message: 'hi' }, tool = 'echo') => ({
  envelope,
  tool,
  tenant: 'acme',
  params,
  trace_id: 'gate-trace',
});
