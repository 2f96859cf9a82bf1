/**
 * A Control Plane over a real SQLite ledger and bundle store with tools for the approval step:
 * `wire` (2 approvals), `purge` (1 approval + preview; the tool declares a preview), `blind`
 * (preview required, none declared). Reuses the Control Plane test fixtures.
 */
import { join } from 'node:path';
import { breakGlassSigningInput, encodeBase64url } from '../../src/kernel/index.js';
import type { BreakGlassStatement, JsonValue } from '../../src/kernel/index.js';
import { signEd25519 } from '../../src/kernel/signing/index.js';
import type { SigningKey } from '../../src/kernel/signing/index.js';
import {
  compilePolicyBundle,
  createBundleStore,
  createControlPlane,
  createMemoryGovernanceState,
} from '../../src/control-plane/index.js';
import { createApprovalService } from '../../src/control-plane/index.js';
import type {
  ApprovalService,
  ApprovalServiceDeps,
  ApprovalStore,
  BundleStore,
  ControlPlaneDeps,
  ControlPlaneService,
  LedgerAppender,
} from '../../src/control-plane/index.js';
import type { Ledger } from '../../src/ledger/index.js';
import {
  AUD,
  bundleDoc as baseDoc,
  DERIVATION_KEY,
  entriesOf,
  faultyLedger,
  ISS,
  issuerKey,
  OPERATOR,
  openLedger,
  request,
  settableClock,
  tempDir,
} from '../control-plane/support.js';

export { entriesOf, OPERATOR, request };

const ids = { type: 'array', items: { type: 'string', maxLength: 10 }, minItems: 1, maxItems: 20 };

/** The test bundle plus `purge` and `blind`. */
export function bundleDoc(name = 'cp-approvals'): Record<string, JsonValue> {
  const doc = baseDoc(name);
  const action = (n: string) => `action "${n}" appliesTo { principal: Agent, resource: Tenant,
  context: { params: { ids: Set<String> }, risk: String, tainted: Bool } };`;
  const params = { type: 'object', properties: { ids }, required: ['ids'], additionalProperties: false };
  return {
    ...doc,
    schema: `${doc['schema'] as string}\n${action('purge')}\n${action('blind')}\n`,
    policies: {
      ...(doc['policies'] as Record<string, JsonValue>),
      'purge-review':
        '@reason("purges need a look") @approvals("1") @preview("true") permit (principal, action == Action::"purge", resource);',
      'blind-review':
        '@reason("blind needs a preview") @preview("true") permit (principal, action == Action::"blind", resource);',
    },
    tools: [
      ...(doc['tools'] as JsonValue[]),
      {
        name: 'purge',
        description: 'Purge.',
        risk: 'high',
        adapter: { type: 'builtin', function: 'purge' },
        parameters: params,
        preview: {
          irreversible: true,
          summary: 'Deletes the ids.',
          dry_run: { type: 'describe', objects: 'ids' },
        },
      },
      {
        name: 'blind',
        description: 'Blind.',
        risk: 'high',
        adapter: { type: 'builtin', function: 'blind' },
        parameters: params,
      },
    ],
  };
}

/** The bundle text of {@link bundleDoc}. */
export function compile(name: string): string {
  return JSON.stringify(bundleDoc(name));
}

/** A Control Plane rig. */
export interface Rig {
  readonly cp: ControlPlaneService;
  readonly ledger: Ledger;
  readonly faulty: ReturnType<typeof faultyLedger>;
  readonly bundles: BundleStore;
  readonly clock: ReturnType<typeof settableClock>;
  close(): Promise<void>;
}

/**
 * Builds a rig; `extra` supplies further dependencies (the approval service, a fault-injecting
 * wrapper of the bundle store) over the rig's ledger, clock and bundle store.
 */
export async function rig(
  extra: (d: {
    ledger: LedgerAppender;
    rawLedger: Ledger;
    now: () => number;
    bundles: BundleStore;
  }) => Partial<ControlPlaneDeps>,
): Promise<Rig> {
  const { dir, cleanup } = tempDir();
  const clock = settableClock();
  const ledger = await openLedger(dir, clock);
  const faulty = faultyLedger(ledger);
  const bundles = createBundleStore({
    dir: join(dir, 'bundles'),
    compile: compilePolicyBundle,
    ledger: faulty,
    now: clock,
    ledgerTimeoutMs: 1000,
  });
  const put = bundles.put(compile('cp-approvals'));
  if (put.outcome !== 'ok') throw new Error(`bundle rejected: ${put.code}`);
  const act = await bundles.activate(put.hash, OPERATOR, 'initial');
  if (act.outcome !== 'ok') throw new Error(`activation failed: ${act.code}`);
  const cp = createControlPlane({
    ledger: faulty,
    now: clock,
    issuer: { key: issuerKey(), iss: ISS, audience: AUD, envelopeTtlSec: 60 },
    bundles,
    state: createMemoryGovernanceState(),
    derivationKey: DERIVATION_KEY,
    deadlines: { ledgerMs: 500, policyMs: 500, stateMs: 500 },
    ...extra({ ledger: faulty, rawLedger: ledger, now: clock, bundles }),
  });
  return {
    cp,
    ledger,
    faulty,
    bundles,
    clock,
    async close() {
      await ledger.close();
      cleanup();
    },
  };
}

/**
 * dave's signed break-glass statement for `wire` in `acme` (an incident, 300 s), timed now by
 * `clock`, as `ApprovalService.breakGlass` takes it.
 */
export function daveBreakGlass(
  key: SigningKey,
  clock: () => number,
): { statement: BreakGlassStatement; signature: string } {
  const s: BreakGlassStatement = {
    approver: 'dave',
    tenant: 'acme',
    tool: 'wire',
    reason_category: 'incident',
    reason: 'outage',
    ttl_sec: 300,
    timestamp: new Date(clock()).toISOString(),
  };
  return { statement: { ...s }, signature: encodeBase64url(signEd25519(key, breakGlassSigningInput(s))) };
}

/**
 * A rig whose Control Plane asks the real approval service over `store`, which the rig's ledger,
 * clock and evidence serve; `agent-1` is the only client unless `over` says otherwise.
 */
export async function rigWithApprovals(
  store: ApprovalStore,
  over: Partial<Omit<ApprovalServiceDeps, 'store' | 'ledger' | 'putEvidence' | 'now'>> = {},
): Promise<{ r: Rig; approvals: ApprovalService }> {
  let approvals!: ApprovalService;
  const r = await rig((deps) => {
    approvals = createApprovalService({
      store,
      ledger: deps.ledger,
      putEvidence: (bytes, media) => deps.rawLedger.putEvidence(bytes, media),
      now: deps.now,
      isClient: (n) => n === 'agent-1',
      ...over,
    });
    return { approvals };
  });
  return { r, approvals };
}
