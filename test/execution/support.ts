/** Shared fixtures for Execution Layer tests. */
import type {
  ExecutionConstraints,
  ExecutionEntry,
  ExecutionLedger,
  LedgerRef,
  ToolAdapter,
  ToolCall,
  ToolOutput,
} from '../../src/execution/index.js';
import { sha256Hex } from '../../src/kernel/index.js';

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

/** An in-memory ExecutionLedger holding decision entries and recording appends. */
export class MemoryLedger implements ExecutionLedger {
  readonly decisions = new Map<
    string,
    { index: number; entry_hash: string; decision_id: string; tenant: string }
  >();
  readonly appended: ExecutionEntry[] = [];
  private next = 100;

  /** Records a committed decision and returns its reference. */
  addDecision(decision_id: string, tenant: string): LedgerRef {
    const ref = { index: this.next++, entry_hash: sha256Hex(`decision:${decision_id}:${tenant}`) };
    this.decisions.set(`${ref.index}`, { ...ref, decision_id, tenant });
    return ref;
  }

  hasEntry(
    ref: LedgerRef,
    expect: { type: 'decision'; decision_id: string; tenant: string },
  ): Promise<boolean> {
    const e = this.decisions.get(`${ref.index}`);
    return Promise.resolve(
      e !== undefined &&
        e.entry_hash === ref.entry_hash &&
        e.decision_id === expect.decision_id &&
        e.tenant === expect.tenant,
    );
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
