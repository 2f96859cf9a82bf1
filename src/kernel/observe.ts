/**
 * What the roles tell an observer about their work (docs/deployment.md "Observability"): timed
 * stages of a governed call, its outcome, ledger batches, breaker trips and shed load. Plain
 * callbacks with numbers and bounded names, never parameters, results or secrets (OE-INV-009).
 * The roles depend only on this interface; logs, metrics and traces are composed elsewhere
 * (`src/embedded/telemetry/`), and without one nothing is measured.
 */

/** The request name syntax of a tenant or tool (`src/gate/request.ts`). */
export const REQUEST_NAME = /^[A-Za-z0-9._-]{1,128}$/;

/**
 * A tool name as logged and traced: itself when it has the request name syntax, `invalid`
 * otherwise (an MCP `tools/call` names its tool unchecked; it never reaches logs or span names
 * raw), `null` for none.
 */
export function observedToolName(tool: string | null): string | null {
  if (tool === null) return null;
  return REQUEST_NAME.test(tool) ? tool : 'invalid';
}

/** A timed stage of a governed call. `call` is the whole call at the Gate. */
export type CallStage =
  | 'call'
  | 'authenticate'
  | 'ledger_accept'
  | 'decide'
  | 'policy'
  | 'ledger_decision'
  | 'approval_wait'
  | 'envelope_issue'
  | 'execute'
  | 'envelope_verify'
  | 'nonce'
  | 'tool'
  | 'ledger_receipt'
  | 'ledger_complete'
  /**
   * The ledger process (`serve ledger`) read the call's new entries and verified them (each
   * unaltered, continuing the chain) before it signs a checkpoint over them. Off the call path:
   * it follows the shared ledger, so the span ends after the call's answer.
   */
  | 'ledger_verify';

/** How a governed call ended at the Gate, as its answer says. */
export interface CallEnd {
  readonly outcome: 'executed' | 'deny' | 'pending' | 'queued';
  /** The denial code (`null` when executed). */
  readonly code: string | null;
  readonly status: number;
  /** The ledger's `trace_id` of the call, and its request id once authenticated. */
  readonly trace_id: string;
  readonly request_id: string | null;
  /** The tool the call named once authenticated (`observedToolName`: `invalid` when not a request name). */
  readonly tool: string | null;
  /** The ingress: signed `POST /v1/calls` or MCP `tools/call`. */
  readonly ingress: 'http' | 'mcp';
  /** `performance.now()` at entry and answer. */
  readonly startMs: number;
  readonly endMs: number;
  /** A W3C `traceparent` the caller sent, unparsed (the observer parses it, or ignores it). */
  readonly traceparent?: string;
}

/** Receives what the roles measure. Every method must be cheap and must never throw. */
export interface Observer {
  /** One stage of the call with `traceId` ran from `startMs` to `endMs` (`performance.now()`). */
  stage(stage: CallStage, traceId: string, startMs: number, endMs: number): void;
  /** A governed call was answered. */
  callEnded(end: CallEnd): void;
  /** The ledger wrote a batch of `size` items in `seconds` (failed: not written). */
  ledgerBatch(size: number, seconds: number, failed: boolean): void;
  /** The envelope nonce store answered a consumption in `seconds`. */
  nonceStore(seconds: number): void;
  /** A circuit breaker tripped (OE-INV-021). */
  breakerTrip(breaker: string): void;
}

/** An observer that does nothing: the default of every role. */
export const NO_OBSERVER: Observer = Object.freeze({
  stage: () => undefined,
  callEnded: () => undefined,
  ledgerBatch: () => undefined,
  nonceStore: () => undefined,
  breakerTrip: () => undefined,
});

/**
 * `o` with every method made unable to throw: what the roles are given, so that no observer (a
 * failing exporter, a logger, a metric with a bad label) can turn a governed call's outcome into
 * an exception after its tool ran. Its answer and records never depend on telemetry.
 */
export function guardObserver(o: Observer): Observer {
  const guarded =
    <A extends unknown[]>(fn: (...a: A) => void) =>
    (...a: A): void => {
      try {
        fn(...a);
      } catch {
        // The call's outcome does not depend on its telemetry.
      }
    };
  return Object.freeze({
    stage: guarded((s: CallStage, t: string, a: number, b: number) => o.stage(s, t, a, b)),
    callEnded: guarded((e: CallEnd) => o.callEnded(e)),
    ledgerBatch: guarded((n: number, sec: number, f: boolean) => o.ledgerBatch(n, sec, f)),
    nonceStore: guarded((sec: number) => o.nonceStore(sec)),
    breakerTrip: guarded((b: string) => o.breakerTrip(b)),
  });
}
