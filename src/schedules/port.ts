/**
 * What the scheduler's parts share (docs/schedules.md): the ledger port and its confirmed append,
 * the Gate's actor for its own schedule records, bounded waits, and the schedule id of a creation.
 */
import { createHash } from 'node:crypto';
import { isLedgerRef } from '../kernel/index.js';
import type { JsonObject } from '../kernel/index.js';
import type { LedgerRef } from '../gate/index.js';

/** Entry types the scheduler appends. */
export type ScheduleEntryType =
  'schedule.created' | 'schedule.paused' | 'schedule.resumed' | 'schedule.removed';

/** The ledger as the scheduler needs it: a confirmed append. */
export interface ScheduleLedger {
  append(entry: {
    readonly type: ScheduleEntryType;
    readonly trace_id: string;
    readonly request_id: string;
    readonly tenant: string;
    readonly actor: { readonly id: string; readonly role: string };
    readonly payload: JsonObject;
  }): Promise<unknown>;
}

/** Who changes a schedule (recorded as the entry's actor). */
export interface Actor {
  readonly id: string;
  readonly role: string;
}

/** The actor of the Gate's own schedule records (`schedule.created`, a pause for a revoked creator). */
export const GATE_ACTOR: Actor = Object.freeze({ id: 'scheduler', role: 'gate' });

/** What {@link within} rejects with when `fn` did not settle in time (its own failures pass through). */
export class TimedOut extends Error {
  constructor() {
    super('timed out');
  }
}

/** `fn`, rejected with {@link TimedOut} after `ms`. */
export async function within<T>(fn: () => Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([
      fn(),
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new TimedOut()), ms);
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

export const iso = (ms: number | null): string | null => (ms === null ? null : new Date(ms).toISOString());

/** The schedule id of a creation decision: one schedule per approved creation. */
export function scheduleIdOf(decisionId: string): string {
  return `sch-${createHash('sha256').update(decisionId).digest('hex').slice(0, 24)}`;
}

/** A confirmed append: the entry's reference, or undefined when the ledger did not confirm it in time. */
export type Append = (entry: Parameters<ScheduleLedger['append']>[0]) => Promise<LedgerRef | undefined>;

/** The confirmed append over `ledger`, bounded by `ms`. */
export function confirmedAppend(ledger: ScheduleLedger, ms: number): Append {
  return async (entry) => {
    try {
      const ref = await within(() => ledger.append(entry), ms);
      return isLedgerRef(ref) ? { index: ref.index, entry_hash: ref.entry_hash } : undefined;
    } catch {
      return undefined;
    }
  };
}
