/**
 * The fence a graceful stop raises when its grace period runs out (SPEC §5, FC-INV-5): from then
 * on no role writes to the ledger and the Execution Layer runs nothing, so the
 * `request.abandoned` records written next are the last word on the calls still in flight (no
 * outcome or receipt can follow them). Only the recovery pass writes past the fence.
 */
import { FailclosedError, deny } from '../kernel/index.js';
import type { LedgerPort } from './ports.js';
import type { Executor } from '../execution/index.js';

/** A one-way switch. */
export interface Fence {
  readonly raised: boolean;
  raise(): void;
}

/** Creates a lowered fence. */
export function createFence(): Fence {
  let raised = false;
  return {
    get raised() {
      return raised;
    },
    raise: () => void (raised = true),
  };
}

const stopped = (): FailclosedError => new FailclosedError('ERR_SHUTTING_DOWN', 'the deployment is stopping');

/** The roles' ledger port, refusing every write once the fence is raised (callers deny). */
export function fencedLedgerPort(port: LedgerPort, fence: Fence): LedgerPort {
  return {
    append: (input, writes, options) =>
      fence.raised ? Promise.reject(stopped()) : port.append(input, writes, options),
    ...(port.appendThen === undefined
      ? {}
      : {
          appendThen: (input, next, writes, options) =>
            fence.raised || port.appendThen === undefined
              ? Promise.reject(stopped())
              : port.appendThen(input, next, writes, options),
        }),
    putEvidence: (body, mediaType, writes) =>
      fence.raised ? Promise.reject(stopped()) : port.putEvidence(body, mediaType, writes),
    readEnvelopeContext: (query) => port.readEnvelopeContext(query),
  };
}

/** The executor, denying `ERR_SHUTTING_DOWN` before any check once the fence is raised. */
export function fencedExecutor(executor: Executor, fence: Fence): Executor {
  return {
    execute: (call, writes, relay, signal) =>
      fence.raised
        ? Promise.resolve(deny('ERR_SHUTTING_DOWN', 'the deployment is stopping'))
        : executor.execute(call, writes, relay, signal),
    // Voiding only ever takes authority away: it stays open past the fence.
    void: (input) => executor.void(input),
  };
}
