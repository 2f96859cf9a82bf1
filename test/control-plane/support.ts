/** Shared fixtures for Control Plane tests: a bundle, a real SQLite ledger, fault injection, requests. */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { sha256Hex, type Clock, type JsonValue } from '../../src/kernel/index.js';
import { signingKeyFromSeed, noteSignerFor, type SigningKey } from '../../src/kernel/signing/index.js';
import {
  createLedger,
  createSqliteLedgerStore,
  type Ledger,
  type LedgerEntry,
} from '../../src/ledger/index.js';
import {
  compilePolicyBundle,
  createBundleStore,
  createControlPlane,
  createMemoryGovernanceState,
  type BundleStore,
  type ControlPlaneDeps,
  type ControlPlaneService,
  type GovernanceState,
  type GovernedRequest,
  type LedgerAppend,
  type LedgerAppender,
  type LedgerRef,
} from '../../src/control-plane/index.js';

export const T0 = Date.UTC(2025, 5, 1, 12, 0, 0);
export const ISS = 'failclosed-control-plane';
export const AUD = 'failclosed-executor';
export const DERIVATION_KEY = Buffer.alloc(32, 0x42);
export const OPERATOR = { id: 'ops-1', role: 'operator' } as const;

const SCHEMA = `
entity Tenant;
entity Agent in [Tenant] { roles: Set<String> };
action "echo" appliesTo { principal: Agent, resource: Tenant,
  context: { params: { message: String }, risk: String, tainted: Bool } };
action "pay" appliesTo { principal: Agent, resource: Tenant,
  context: { params: { amount_cents: Long }, risk: String, tainted: Bool } };
action "wire" appliesTo { principal: Agent, resource: Tenant,
  context: { params: { amount_cents: Long }, risk: String, tainted: Bool } };
`;

const object = (properties: Record<string, JsonValue>, required: string[]): Record<string, JsonValue> => ({
  type: 'object',
  properties,
  required,
  additionalProperties: false,
});

/** The test bundle: echo (allow, limits), pay (allow, $50 cap), wire (escalate), a forbid and tenant isolation. */
export function bundleDoc(name = 'cp-test'): Record<string, JsonValue> {
  const amount = object({ amount_cents: { type: 'integer', minimum: 0 } }, ['amount_cents']);
  return {
    format: 'failclosed.policy-bundle/v1',
    name,
    schema: SCHEMA,
    policies: {
      'echo-ok': '@reason("echo is fine") permit (principal, action == Action::"echo", resource);',
      'echo-no-forbidden': `@reason("forbidden word") forbid (principal, action == Action::"echo", resource)
        when { context.params.message == "forbidden" };`,
      'pay-ok':
        '@reason("payments") @max_cost_usd("50") permit (principal, action == Action::"pay", resource);',
      'wire-approve':
        '@reason("wires need approval") @approvals("2") permit (principal, action == Action::"wire", resource);',
      isolation:
        '@reason("own tenant only") forbid (principal, action, resource) unless { principal in resource };',
    },
    tools: [
      {
        name: 'echo',
        description: 'Echo.',
        risk: 'low',
        adapter: {
          type: 'builtin',
          function: 'echo',
          limits: { timeout_ms: 2000, egress: ['api.example.com'] },
        },
        parameters: object({ message: { type: 'string', maxLength: 100 } }, ['message']),
      },
      {
        name: 'pay',
        description: 'Pay.',
        risk: 'medium',
        adapter: { type: 'builtin', function: 'pay' },
        parameters: amount,
      },
      {
        name: 'wire',
        description: 'Wire.',
        risk: 'high',
        adapter: { type: 'builtin', function: 'wire' },
        parameters: amount,
      },
    ],
  };
}

/** A temp directory and its cleanup. */
export function tempDir(): { dir: string; cleanup: () => void } {
  const dir = mkdtempSync(join(tmpdir(), 'failclosed-cp-'));
  return { dir, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

/** A settable clock. */
export function settableClock(start = T0): Clock & { set(ms: number): void; advance(ms: number): void } {
  let t = start;
  const clock = (() => t) as Clock & { set(ms: number): void; advance(ms: number): void };
  clock.set = (ms) => {
    t = ms;
  };
  clock.advance = (ms) => {
    t += ms;
  };
  return clock;
}

/** Fault modes of {@link faultyLedger}. */
export type LedgerMode = 'ok' | 'fail' | 'hang' | 'garbage';

/**
 * Wraps a ledger: records every attempted append, and fails, hangs or answers garbage on demand.
 * Its `appendThen` (the inner ledger's, unless `joined` is false) records the first entry and each
 * continued entry built; a fault of either type fails the pair, as a failed commit fails both.
 */
export function faultyLedger(
  inner: LedgerAppender,
  joined = true,
): LedgerAppender & {
  mode: LedgerMode;
  /** Fail only appends of this type (with `mode`), others pass. */
  onlyType: string | undefined;
  readonly attempts: LedgerAppend[];
} {
  const wrapper = {
    mode: 'ok' as LedgerMode,
    onlyType: undefined as string | undefined,
    attempts: [] as LedgerAppend[],
    append(
      entry: LedgerAppend,
      _writes?: unknown,
      options?: { readonly ifOpen?: number },
    ): Promise<LedgerRef> {
      wrapper.attempts.push(entry);
      const hit = wrapper.onlyType === undefined || wrapper.onlyType === entry.type;
      // The condition passes through (the own-connection store commits each batch itself).
      if (!hit || wrapper.mode === 'ok') return inner.append(entry, undefined, options);
      if (wrapper.mode === 'fail') return Promise.reject(new Error('disk full'));
      if (wrapper.mode === 'hang') return new Promise<LedgerRef>(() => undefined);
      return Promise.resolve({ index: -1, entry_hash: 'nope' } as LedgerRef);
    },
  };
  if (!joined || inner.appendThen === undefined) return wrapper;
  const innerThen = inner.appendThen.bind(inner);
  const appendThen: NonNullable<LedgerAppender['appendThen']> = (entry, next) => {
    wrapper.attempts.push(entry);
    const hit = wrapper.onlyType === undefined || [entry.type, next.type].includes(wrapper.onlyType as never);
    if (!hit || wrapper.mode === 'ok')
      return innerThen(entry, {
        ...next,
        build: (ref) => {
          const built = next.build(ref);
          if (built !== undefined) wrapper.attempts.push(built);
          return built;
        },
      });
    if (wrapper.mode === 'fail') return Promise.reject(new Error('disk full'));
    if (wrapper.mode === 'hang') return new Promise(() => undefined);
    return Promise.resolve({ first: { index: -1, entry_hash: 'nope' }, next: undefined });
  };
  return Object.assign(wrapper, { appendThen });
}

/** A real SQLite ledger in `dir`. */
export async function openLedger(dir: string, clock: Clock, file = 'ledger.db'): Promise<Ledger> {
  return createLedger({
    store: createSqliteLedgerStore({ path: join(dir, file) }),
    clock,
    checkpointSigner: noteSignerFor(
      'failclosed.local/cp-test',
      signingKeyFromSeed(Buffer.alloc(32, 9)).privateKey,
    ),
    origin: 'failclosed.local/cp-test',
  });
}

/** All committed entries of a ledger. */
export async function entriesOf(ledger: Ledger): Promise<LedgerEntry[]> {
  return [...(await ledger.store.readRange(0, ledger.size()))];
}

/** The issuer key used by default. */
export function issuerKey(seed = 1): SigningKey {
  return signingKeyFromSeed(Buffer.alloc(32, seed));
}

/** A request for `tool` with `params`. */
export function request(
  tool: string,
  params: JsonValue,
  over: Partial<GovernedRequest> = {},
): GovernedRequest {
  const base = {
    request_id: 'req-1',
    trace_id: 'trace-1',
    identity: 'agent-1',
    tenant: 'acme',
    tool,
    params,
    timestamp: T0,
    session: 'sess-1',
    ...over,
  };
  return { ...base, request_sha256: over.request_sha256 ?? sha256Hex(JSON.stringify(base)) };
}

/** Everything a test needs: a control plane over a real ledger and bundle store. */
export interface Rig {
  readonly cp: ControlPlaneService;
  readonly ledger: Ledger;
  readonly faulty: ReturnType<typeof faultyLedger>;
  readonly bundles: BundleStore;
  readonly state: GovernanceState;
  readonly clock: ReturnType<typeof settableClock>;
  readonly bundleHash: string;
  readonly dir: string;
  close(): Promise<void>;
}

/**
 * Builds a {@link Rig}; `over` replaces dependencies. `joined: false` gives the Control Plane a
 * ledger port without `appendThen` (a ledger that cannot append two entries in one commit).
 */
export async function rig(
  over: Partial<ControlPlaneDeps> = {},
  opts: { activate?: boolean; joined?: boolean } = {},
): Promise<Rig> {
  const { dir, cleanup } = tempDir();
  const clock = settableClock();
  const ledger = await openLedger(dir, clock);
  const faulty = faultyLedger(ledger, opts.joined ?? true);
  const bundles = createBundleStore({
    dir: join(dir, 'bundles'),
    compile: compilePolicyBundle,
    ledger: faulty,
    now: clock,
    ledgerTimeoutMs: 1000,
  });
  const put = bundles.put(JSON.stringify(bundleDoc()));
  if (put.outcome !== 'ok') throw new Error(`bundle rejected: ${put.code}`);
  if (opts.activate !== false) {
    const act = await bundles.activate(put.hash, OPERATOR, 'initial');
    if (act.outcome !== 'ok') throw new Error(`activation failed: ${act.code}`);
  }
  const state = over.state ?? createMemoryGovernanceState();
  const cp = createControlPlane({
    ledger: faulty,
    now: clock,
    issuer: { key: issuerKey(), iss: ISS, audience: AUD, envelopeTtlSec: 60 },
    bundles,
    state,
    derivationKey: DERIVATION_KEY,
    deadlines: { ledgerMs: 200, policyMs: 200, stateMs: 200 },
    ...over,
  });
  return {
    cp,
    ledger,
    faulty,
    bundles: over.bundles ?? bundles,
    state,
    clock,
    bundleHash: put.hash,
    dir,
    close: async () => {
      await ledger.close();
      cleanup();
    },
  };
}
