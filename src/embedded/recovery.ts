/**
 * Crash and stop recovery (SPEC §5 "a stop or a crash never breaks the record", FC-INV-5): every
 * request the Gate accepted and left without an outcome gets an explicit, truthful
 * `request.abandoned` record. Run on start before the Gate serves, and at the end of a graceful
 * stop for the calls still running when the grace period ran out.
 *
 * Truthful means: an envelope issued for the request is voided in the Execution Layer's nonce
 * store first, in one atomic step that also says whether it had already been consumed.
 * `envelope_consumed: true` says the tool may have run (and its receipt may be missing);
 * `false` says it never ran and now never can. When the nonce store cannot confirm, recovery
 * throws and the deployment does not start (fail closed).
 */
import { FailclosedError, type JsonObject } from '../kernel/index.js';
import type { EntryInput, EntryRef, Ledger, LedgerEntry, OpenRequest } from '../ledger/index.js';
import type { NonceConsumption, NonceStore, VoidVerdict } from '../execution/index.js';

/** What recovery needs: the open-request index, one request's entries, an append, and voiding. */
export interface RecoveryDeps {
  readonly openRequests: () => Promise<readonly OpenRequest[]>;
  readonly entriesOf: (requestId: string) => Promise<readonly LedgerEntry[]>;
  /**
   * Appends `input` only while the attempt accepted at `ifOpen` is still open (`AppendOptions`);
   * rejects with `ERR_LEDGER_REQUEST_CLOSED` when it has an outcome by then.
   */
  readonly append: (input: EntryInput, ifOpen: number) => Promise<EntryRef>;
  /**
   * Voids an issued envelope's nonce unless it was consumed (see `NonceStore.void`). Kept behind
   * this one function so the nonce store's own voided state can replace it.
   */
  readonly voidEnvelope: (nonce: NonceConsumption) => Promise<VoidVerdict>;
  /**
   * False when the Execution Layer's nonce store is not the one voided here (a separate
   * Execution Layer at `executor_url`): a void here cannot tell that the envelope was not
   * consumed there, so an issued envelope without a receipt is recorded as possibly run.
   */
  readonly voidIsAuthoritative?: boolean;
  /**
   * The clock (ms) and the Execution Layer's envelope tolerance (s). A request whose envelope a
   * broker holds (`gateway.queued` on a `nats:` queue) is left open while a worker could still
   * take it (until `exp` + tolerance): its worker's answer closes it. Without a clock it is left
   * open.
   */
  readonly now?: () => number;
  readonly toleranceSec?: number;
  /**
   * For an open request with no envelope issued yet: true while a Control Plane process may still
   * issue one for it. A keyless Gate's request is decided by a Control Plane process that the
   * Gate's lease does not fence, so a Gate that stalled past its lease and resumes may still ask
   * for a decision after a sweep read its request; abandoning it as "never ran" could then be
   * false. The pass leaves such a request open (a later pass reads it again). Undefined: nothing
   * can be issued for an open request but by its owner.
   */
  readonly mayStillIssue?: (
    open: OpenRequest,
    accepted: LedgerEntry,
    decision: LedgerEntry | undefined,
  ) => Promise<boolean>;
}

/** What a recovery pass recorded. */
export interface RecoveryReport {
  /** Requests recorded as abandoned. */
  readonly abandoned: number;
  /** Of those, requests whose envelope had been consumed: the tool may have run. */
  readonly mayHaveRun: number;
}

const str = (v: unknown): string | undefined => (typeof v === 'string' && v.length > 0 ? v : undefined);

/**
 * How long after its envelope could last run (`exp` + tolerance) a brokered job no worker answered
 * is taken for lost by a live Gate's pass (ms).
 */
export const LOST_JOB_GRACE_MS = 5_000;

/**
 * The `request.abandoned` payload for one open request, voiding its envelope first. `lost`: a
 * live Gate's pass over jobs a broker holds (or lost): only a brokered job whose envelope could
 * last run more than {@link LOST_JOB_GRACE_MS} ago, and only when the nonce store here is the
 * Execution Layer's and says its envelope was never consumed: the job never ran and never can.
 * Anything else is left open (its worker's answer, or a restart's recovery, closes it).
 */
async function abandonOne(
  deps: RecoveryDeps,
  open: OpenRequest,
  when: 'restart' | 'stop' | 'lost',
): Promise<{ input: EntryInput; consumed: boolean } | undefined> {
  const entries = (await deps.entriesOf(open.request_id)).filter(
    (e) => e.trace_id === open.trace_id && e.index >= open.accepted_index,
  );
  const accepted = entries.find((e) => e.index === open.accepted_index && e.type === 'gateway.accepted');
  if (accepted === undefined)
    throw new Error(`open request ${open.request_id} has no gateway.accepted entry`);
  const decision = entries.find((e) => e.type === 'decision');
  const issued = entries.filter((e) => e.type === 'envelope.issued');
  const receipt = entries.find((e) => e.type === 'execution.receipt');
  const queue = entries.find((e) => e.type === 'gateway.queued')?.payload['queue'];
  const brokered = typeof queue === 'string' && queue.startsWith('nats:');
  if (when === 'lost' && (!brokered || receipt !== undefined || issued.length === 0)) return undefined;
  if (when === 'lost' && deps.voidIsAuthoritative === false) return undefined;
  if (brokered && receipt === undefined) {
    // A broker holds the job: a worker may still take it until its envelope expires.
    const exps = issued.map((e) => e.payload['exp']).filter((x): x is number => typeof x === 'number');
    const lastRunnableMs =
      (Math.max(0, ...exps) + (deps.toleranceSec ?? 0)) * 1000 + (when === 'lost' ? LOST_JOB_GRACE_MS : 0);
    if (deps.now === undefined || deps.now() <= lastRunnableMs) return undefined;
  }
  if (
    issued.length === 0 &&
    receipt === undefined &&
    deps.mayStillIssue !== undefined &&
    (await deps.mayStillIssue(open, accepted, decision))
  )
    return undefined;
  let consumed = receipt !== undefined;
  let jti: string | undefined;
  for (const e of issued) {
    jti = str(e.payload['jti']);
    const exp = e.payload['exp'];
    const decisionId = str(e.payload['decision_id']);
    if (jti === undefined || typeof exp !== 'number' || decisionId === undefined)
      throw new Error(`envelope.issued entry ${e.index} names no jti, exp or decision`);
    // Void before recording: from here on the envelope can never run.
    const verdict = await deps.voidEnvelope({ jti, tenant: e.tenant, exp, decision_id: decisionId });
    if (verdict === 'consumed') consumed = true;
  }
  // A lost job's envelope that was consumed: a worker took it, and its answer closes the job.
  if (when === 'lost' && consumed) return undefined;
  // Voided here, but consumed perhaps where the Execution Layer keeps its nonces.
  const unsure = !consumed && issued.length > 0 && deps.voidIsAuthoritative === false;
  if (unsure) consumed = true;
  const decisionId =
    str(issued[issued.length - 1]?.payload['decision_id']) ?? str(decision?.payload['decision_id']);
  const stage =
    receipt !== undefined
      ? 'executed'
      : issued.length > 0
        ? 'envelope-issued'
        : decision
          ? 'decided'
          : 'accepted';
  const who =
    when === 'restart'
      ? 'the process stopped before the call had an outcome'
      : when === 'stop'
        ? 'the grace period of the stop ran out before the call had an outcome'
        : 'no worker answered the job before its envelope expired (its queue lost it, or no worker took it)';
  // A receipt says itself whether the tool ran: a failed one may be of a call ended before its
  // tool started (its `reason` says so), which "the tool ran" would misstate.
  const ran =
    receipt !== undefined
      ? receipt.payload['status'] === 'succeeded'
        ? 'the tool ran (receipt recorded: succeeded)'
        : 'its receipt records a failed execution, and its reason whether the tool started'
      : unsure
        ? 'its envelope may have been consumed where the Execution Layer keeps its nonces: the tool may have run'
        : consumed
          ? 'its envelope was consumed: the tool may have run'
          : issued.length > 0
            ? 'its envelope was voided unconsumed: the tool did not run and never can'
            : 'no envelope was issued: the tool did not run';
  const payload: JsonObject = {
    code: 'ERR_ABANDONED',
    status: stage,
    outcome: 'abandoned',
    ...(decisionId === undefined ? {} : { decision_id: decisionId }),
    ...(jti === undefined ? {} : { jti }),
    envelope_consumed: consumed,
    ...(str(accepted.payload['tool']) === undefined ? {} : { tool: accepted.payload['tool'] }),
    ...(str(accepted.payload['client']) === undefined ? {} : { client: accepted.payload['client'] }),
    reason: `${who}; ${ran}`,
  };
  return {
    consumed,
    input: {
      type: 'request.abandoned',
      trace_id: open.trace_id,
      request_id: open.request_id,
      tenant: accepted.tenant,
      actor: { id: accepted.actor.id, role: 'gate' },
      payload,
    },
  };
}

/**
 * Records `request.abandoned` for every open request, oldest first. Rejects when the ledger or
 * the nonce store cannot confirm a step: the caller must not serve then.
 */
export async function recordAbandonedRequests(
  deps: RecoveryDeps,
  when: 'restart' | 'stop' | 'lost',
): Promise<RecoveryReport> {
  let abandoned = 0;
  let mayHaveRun = 0;
  for (const open of await deps.openRequests()) {
    const r = await abandonOne(deps, open, when);
    // Left open: a broker's worker may still run it, and its answer is its outcome; or a Control
    // Plane process may still issue its envelope (read again on the next pass).
    if (r === undefined) continue;
    try {
      // Conditional: the request's own Gate may record its outcome while this pass voids and
      // reads (a keyless Gate retrying an outcome, a job's answer): then that outcome stands.
      await deps.append(r.input, open.accepted_index);
    } catch (err) {
      if (err instanceof FailclosedError && err.code === 'ERR_LEDGER_REQUEST_CLOSED') continue;
      throw err;
    }
    abandoned += 1;
    if (r.consumed) mayHaveRun += 1;
  }
  return { abandoned, mayHaveRun };
}

/**
 * Recovery over the ledger itself (past the fence) and the Execution Layer's nonce store. Throws
 * when either cannot serve recovery: the deployment then does not start.
 */
export function recoveryDeps(
  ledger: Ledger,
  nonces: NonceStore,
  options: Pick<RecoveryDeps, 'voidIsAuthoritative' | 'now' | 'toleranceSec'> = {},
): RecoveryDeps {
  const openRequests = ledger.store.openRequests?.bind(ledger.store);
  const voidNonce = nonces.void.bind(nonces);
  if (openRequests === undefined) throw new Error('crash recovery needs a ledger store with open requests');
  return {
    openRequests,
    entriesOf: (id) => ledger.store.readByRequest(id),
    append: (input, ifOpen) => ledger.append(input, undefined, { ifOpen }),
    voidEnvelope: voidNonce,
    ...options,
  };
}
