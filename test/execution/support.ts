/** Shared fixtures for Execution Layer tests. */
import type {
  EnvelopeLedgerContext,
  ExecutionConstraints,
  ExecutionEntry,
  ExecutionLedger,
  LedgerRecord,
  LedgerRef,
  ToolAdapter,
  ToolCall,
  ToolOutput,
} from '../../src/execution/index.js';
import { envelopeSha256, issuedPayload, sha256Hex } from '../../src/kernel/index.js';
import type { EnvelopeClaims } from '../../src/kernel/index.js';

/** Constraints with everything denied but a little time, memory and output. */
export function constraints(over: Partial<ExecutionConstraints> = {}): ExecutionConstraints {
  return {
    timeout_ms: 5000,
    max_output_bytes: 64 * 1024,
    memory_bytes: 512 * 1024 * 1024,
    network: false,
    egress: [],
    fs_read: [],
    fs_write: [],
    max_cost_cents: null,
    ...over,
  };
}

/** What a test decision record states (the defaults match the claims the test signs). */
export interface DecisionFields {
  readonly decision_id: string;
  readonly tenant: string;
  readonly request_id: string;
  readonly tool: string;
  readonly client: string;
  readonly policy_bundle: string;
  readonly params_sha256: string;
  readonly outcome?: 'allow' | 'escalate' | 'deny';
  readonly type?: string;
}

/**
 * An in-memory ExecutionLedger: decision, `envelope.issued` and `approval.finalized` records the
 * test puts there, and every append it records. Its reads answer like the real ledger's.
 */
export class MemoryLedger implements ExecutionLedger {
  readonly records = new Map<number, LedgerRecord>();
  readonly appended: ExecutionEntry[] = [];
  private next = 100;

  private put(r: Omit<LedgerRecord, 'index' | 'entry_hash'>): LedgerRef {
    const index = this.next++;
    const entry_hash = sha256Hex(`${index}:${JSON.stringify(r)}`);
    this.records.set(index, { ...r, index, entry_hash });
    return { index, entry_hash };
  }

  /** Records a committed decision and returns its reference. */
  addDecision(f: DecisionFields): LedgerRef {
    return this.put({
      type: f.type ?? 'decision',
      tenant: f.tenant,
      trace_id: `trace-${f.request_id}`,
      request_id: f.request_id,
      payload: {
        decision_id: f.decision_id,
        outcome: f.outcome ?? 'allow',
        tool: f.tool,
        client: f.client,
        policy_bundle: f.policy_bundle,
        params_sha256: f.params_sha256,
      },
    });
  }

  /** Records the issuance of the envelope `jws` with `claims`. */
  addIssued(claims: EnvelopeClaims, jws: string): LedgerRef {
    return this.put({
      type: 'envelope.issued',
      tenant: claims.tenant,
      trace_id: claims.trace_id,
      request_id: claims.request_id,
      payload: issuedPayload(claims, 'kid', envelopeSha256(jws)),
    });
  }

  /** Records an `approval.finalized` entry. */
  addFinalized(decision_id: string, tenant: string, verdict: string): LedgerRef {
    return this.put({
      type: 'approval.finalized',
      tenant,
      trace_id: '',
      request_id: '',
      payload: { decision_id, verdict },
    });
  }

  readEnvelopeContext(q: {
    index: number;
    jti: string;
    decision_id: string;
  }): Promise<EnvelopeLedgerContext> {
    const all = [...this.records.values()];
    return Promise.resolve({
      decision: this.records.get(q.index),
      issued: all.filter((r) => r.type === 'envelope.issued' && r.payload['jti'] === q.jti),
      finalized: all.filter(
        (r) => r.type === 'approval.finalized' && r.payload['decision_id'] === q.decision_id,
      ),
    });
  }

  append(entry: ExecutionEntry): Promise<LedgerRef> {
    this.appended.push(entry);
    return Promise.resolve({ index: this.next++, entry_hash: sha256Hex(JSON.stringify(entry)) });
  }

  ofType(type: string): ExecutionEntry[] {
    return this.appended.filter((e) => e.type === type);
  }
}

/** An adapter that records every call and answers with `answer`. */
export function spyAdapter(
  answer: (call: ToolCall) => Promise<ToolOutput> = (c) =>
    Promise.resolve({ outcome: 'ok', result: c.params }),
) {
  const calls: ToolCall[] = [];
  const adapter: ToolAdapter = {
    run(call) {
      calls.push(call);
      return answer(call);
    },
  };
  return { adapter, calls };
}

/** A promise that never settles: a dependency hanging past any timeout. */
export function never<T>(): Promise<T> {
  return new Promise<T>(() => undefined);
}
