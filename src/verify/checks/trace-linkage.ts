/**
 * Trace linkage (FC-INV-6, the FC seed's "All execution traces include Gate, Control Plane, and
 * Execution Layer components", `verify.sh: INV-6`; SPEC §1 "the only allowed path is Client →
 * Gate → Control Plane → Gate → Execution Layer → Audit System"): every trace in which a tool ran
 * (an `execution.receipt`, recorded by the Execution Layer) holds, in this order, the Gate's
 * `gateway.accepted`, a Control Plane record (`decision` or `envelope.issued`), the receipt, and
 * the Gate's completion record (`gateway.completed`, `gateway.failed`, or `request.abandoned` when
 * the process stopped before the Gate could record the outcome). A run the Gate did not
 * mediate (a direct call to the Execution Layer) lacks one of them. Traces where nothing ran
 * (ingress denials that never reached the Control Plane, policy denials) are exempt.
 *
 * A background call's `gateway.queued` (docs/jobs.md) is the Gate's (role `gate`) and follows the
 * Control Plane's `envelope.issued` of the same decision in its trace: a job handed to a queue
 * without an issued envelope, or by another role, is named. A call the Gate accepted as a
 * background call (`background: true` in its `gateway.accepted`; its envelope grants the
 * background time limit) runs only from the queue: a receipt of its decision with no
 * `gateway.queued` of that decision before it in the trace is named (`TRACE_QUEUE_MISSING`).
 */
import { linkageOf, type View } from '../linkage.js';
import type { Finding, FindingCode, VerifyCheck } from '../types.js';
import { entryFinding } from './util.js';

const HEX64 = /^[0-9a-f]{64}$/;
const CONTROL_PLANE_TYPES: ReadonlySet<string> = new Set(['decision', 'envelope.issued']);
// A run whose process stopped before the Gate recorded it is closed by `request.abandoned`.
const COMPLETION_TYPES: ReadonlySet<string> = new Set([
  'gateway.completed',
  'gateway.failed',
  'request.abandoned',
]);

const by =
  (role: string) =>
  (v: View): boolean =>
    v.entry.actor.role === role;

/** Trace linkage check. */
export const traceLinkageCheck: VerifyCheck = {
  id: 'trace-linkage',
  title: 'every execution trace holds Gate, Control Plane and Execution Layer records in order',
  requirements: ['FC-INV-6'],
  unit: 'requests',
  run: (ctx) => {
    const out: Finding[] = [];
    const l = linkageOf(ctx);
    for (const r of l.views) {
      if (r.entry.type === 'gateway.queued') {
        out.push(...queuedFindings(r, l.traces.get(r.entry.trace_id) ?? []));
        continue;
      }
      if (r.entry.type !== 'execution.receipt') continue;
      // A link the bundle does not hold is undecidable in a partial export, a violation in a complete one.
      const bad = (code: FindingCode, message: string, partial = true): void =>
        void out.push({
          ...entryFinding(r, code, `trace ${r.entry.trace_id}: ${message}`),
          ...(partial ? { partial: true as const } : {}),
        });
      if (!by('executor')(r))
        bad(
          'TRACE_ROLE',
          `the receipt was recorded by ${r.entry.actor.role}, not the Execution Layer`,
          false,
        );
      const trace = l.traces.get(r.entry.trace_id) ?? [];
      const before = trace.filter((v) => v.entry.index < r.entry.index);
      const gate = before.find((v) => v.entry.type === 'gateway.accepted' && by('gate')(v));
      if (gate === undefined) {
        bad(
          'TRACE_GATE_MISSING',
          'no Gate record (gateway.accepted) before the execution: the call did not pass the Gate',
        );
      } else if (
        !before.some(
          (v) =>
            v.entry.index > gate.entry.index &&
            CONTROL_PLANE_TYPES.has(v.entry.type) &&
            by('control-plane')(v),
        )
      ) {
        bad(
          'TRACE_CONTROL_PLANE_MISSING',
          `no Control Plane record (decision or envelope.issued) between the Gate record at entry ${gate.entry.index} and the execution`,
        );
      }
      const decision = r.entry.payload['decision_id'];
      // A background ask ran only as a queued job: its longer time limit never serves a call run
      // while its caller waits (docs/jobs.md "Time limits").
      const attempt = before.findLast((v) => v.entry.type === 'gateway.accepted' && by('gate')(v));
      if (
        attempt?.entry.payload['background'] === true &&
        !before.some(
          (v) =>
            v.entry.index > attempt.entry.index &&
            v.entry.type === 'gateway.queued' &&
            by('gate')(v) &&
            v.entry.payload['decision_id'] === decision,
        )
      )
        bad(
          'TRACE_QUEUE_MISSING',
          `the Gate accepted the call at entry ${attempt.entry.index} as a background call, and it ran without being queued`,
          false,
        );
      // The result the Gate let out is the one the Execution Layer produced and receipted.
      for (const done of trace) {
        if (done.entry.type !== 'gateway.completed' || done.entry.index < r.entry.index) continue;
        if (done.entry.payload['decision_id'] !== decision) continue;
        const named = done.entry.payload['result_sha256'];
        // A completion naming no well-formed result digest is attributable-outcome's finding.
        if (typeof named === 'string' && HEX64.test(named) && named !== r.entry.payload['result_sha256'])
          out.push(
            entryFinding(
              done,
              'TRACE_RESULT_MISMATCH',
              `trace ${done.entry.trace_id}: gateway.completed names another result than the receipt at entry ${r.entry.index}`,
            ),
          );
      }
      if (
        !trace.some(
          (v) => v.entry.index > r.entry.index && COMPLETION_TYPES.has(v.entry.type) && by('gate')(v),
        )
      )
        bad(
          'TRACE_COMPLETION_MISSING',
          'no Gate completion record (gateway.completed, gateway.failed or request.abandoned) after the execution',
        );
    }
    return out;
  },
};

/** Findings for one `gateway.queued`: its role, and the issued envelope of its decision before it. */
function queuedFindings(q: View, trace: readonly View[]): Finding[] {
  const out: Finding[] = [];
  if (!by('gate')(q))
    out.push(
      entryFinding(
        q,
        'TRACE_ROLE',
        `trace ${q.entry.trace_id}: gateway.queued was recorded by ${q.entry.actor.role}, not the Gate`,
      ),
    );
  const decision = q.entry.payload['decision_id'];
  const issued = trace.some(
    (v) =>
      v.entry.index < q.entry.index &&
      v.entry.type === 'envelope.issued' &&
      by('control-plane')(v) &&
      v.entry.payload['decision_id'] === decision,
  );
  if (!issued)
    out.push({
      ...entryFinding(
        q,
        'TRACE_CONTROL_PLANE_MISSING',
        `trace ${q.entry.trace_id}: no envelope.issued of decision ${typeof decision === 'string' ? decision : '(none)'} before the job was queued`,
      ),
      partial: true as const,
    });
  return out;
}
