/**
 * An upstream's requests to a 2026-07-28 client (docs/mcp.md "Sampling and elicitation"). That
 * revision has no request from server to client: a `tools/call` that needs the client's input
 * answers `input_required` with the requests and a `requestState`, and the client retries the
 * same `tools/call` with its answers (`inputResponses`) and that state (multi-round-trip
 * requests). Here the governed call keeps running in this process between rounds, held under
 * the state: a retry carrying it is not a new governed call but the next round of the held one,
 * its answers handed to the upstream's waiting requests, and its answer the next requests or the
 * call's result. A state is random, used once (each round gets a new one), and good only for the
 * principal and the exact `tools/call` it was given for; anything else finds no held call.
 */
import { randomUUID } from 'node:crypto';
import type { CallToolResult } from '@modelcontextprotocol/server';
import type { JsonObject } from '../../kernel/index.js';
import { AskNotSent } from '../../execution/index.js';
import type { RelayedAsk, RelayedNotice } from '../../execution/index.js';

/** What one round answers: the requests the client must answer, or the call's result. */
export type Round =
  | {
      readonly kind: 'input';
      readonly state: string;
      readonly requests: Readonly<Record<string, RelayedAsk>>;
    }
  | { readonly kind: 'done'; readonly result: CallToolResult };

/** The relay side a held call gives its governed call. */
export interface HeldRelay {
  /** Asks the client in the next round; resolves with its answer, rejects when unanswered. */
  ask(ask: RelayedAsk, signal: AbortSignal): Promise<unknown>;
  /** Passes a notice to the round open now; between rounds there is no stream: false, dropped. */
  notify(notice: RelayedNotice): boolean;
  /** Aborted when a round's exchange is closed by the client: the call is cancelled. */
  readonly cancelled: AbortSignal;
}

/**
 * One round's exchange: its abort (the client closing it cancels the call) and where the
 * notices of the call go while it is open. `shared` is the held call's, the same every round
 * (the last progress sent, which must only rise).
 */
export type RoundIo = (shared: { progress: number }) => {
  readonly signal: AbortSignal;
  readonly notify: (notice: RelayedNotice) => void;
};

/** The held calls of one endpoint. */
export interface InputRounds {
  /**
   * Starts `run` (the governed call, given its relay) held for `owner` and `request` (a digest
   * of the exact `tools/call`), and answers its first round.
   */
  start(
    owner: string,
    request: string,
    run: (relay: HeldRelay) => Promise<CallToolResult>,
    io: RoundIo,
  ): Promise<Round>;
  /**
   * The next round of the call held under `state`, after handing it `responses`; undefined when
   * no call is held under it for this owner and request (nothing is started then).
   */
  resume(
    owner: string,
    request: string,
    state: string,
    responses: Readonly<Record<string, unknown>> | undefined,
    io: RoundIo,
  ): Promise<Round> | undefined;
}

/**
 * How long a finished call's outcome is kept under its last state (ms): a client retrying that
 * round late, or again, gets the outcome and its request id, never a refusal it might take for
 * "not run" (and run the call again as a new one).
 */
const RESULT_KEPT_MS = 10 * 60_000;

/** Most states kept at once; past it the oldest finished calls' outcomes go first. */
const MAX_KEPT = 4096;

type Pending = {
  readonly ask: RelayedAsk;
  readonly resolve: (v: unknown) => void;
  readonly reject: (e: Error) => void;
};

/** Creates the registry of held calls. */
export function createInputRounds(): InputRounds {
  const held = new Map<string, Held>();

  class Held {
    /** Asks not yet sent to the client. */
    private queued = new Map<string, Pending>();
    /** Asks sent in the last round, waiting for the client's answers. */
    private sent = new Map<string, Pending>();
    private wake: (() => void) | undefined;
    private result: { readonly value: CallToolResult } | { readonly error: unknown } | undefined;
    private notify: ((n: RelayedNotice) => void) | undefined;
    private readonly shared = { progress: Number.NEGATIVE_INFINITY };
    private state: string | undefined;
    private readonly cancel = new AbortController();

    constructor(
      readonly owner: string,
      readonly request: string,
    ) {}

    relay(): HeldRelay {
      return {
        cancelled: this.cancel.signal,
        notify: (n) => {
          if (this.notify === undefined) return false;
          this.notify(n);
          return true;
        },
        ask: (ask, signal) =>
          new Promise<unknown>((resolve, reject) => {
            const key = `r${randomUUID()}`;
            const entry: Pending = { ask, resolve, reject };
            if (signal.aborted) return reject(new Error('the call has ended'));
            signal.addEventListener(
              'abort',
              () => {
                // Never carried by a round: not sent. Carried: sent, and not answered in time.
                const unsent = this.queued.delete(key);
                this.sent.delete(key);
                reject(unsent ? new AskNotSent('the call has ended') : new Error('the call has ended'));
              },
              { once: true },
            );
            this.queued.set(key, entry);
            this.wake?.();
          }),
      };
    }

    finish(result: { readonly value: CallToolResult } | { readonly error: unknown }): void {
      this.result = result;
      this.wake?.();
    }

    /** Hands the client's answers to the asks of the last round; one not answered is refused. */
    answer(responses: Readonly<Record<string, unknown>> | undefined): void {
      for (const [key, p] of this.sent) {
        const r = responses?.[key];
        if (r === undefined) p.reject(new Error('the client did not answer'));
        else p.resolve(r);
      }
      this.sent.clear();
    }

    /** Waits for the call's next asks (those arriving together go in one round) or its result. */
    /** Whether the call has ended (its result is kept for the round that collects it). */
    ended(): boolean {
      return this.result !== undefined;
    }

    async next(io: RoundIo): Promise<Round> {
      const { signal, notify } = io(this.shared);
      this.notify = notify;
      const onAbort = (): void => this.cancel.abort();
      signal.addEventListener('abort', onAbort, { once: true });
      try {
        while (this.queued.size === 0 && this.result === undefined) {
          await new Promise<void>((resolve) => {
            this.wake = resolve;
          });
          this.wake = undefined;
          // Asks made at once (an upstream asking for two things in parallel) share a round.
          await new Promise((resolve) => setImmediate(resolve));
        }
      } finally {
        signal.removeEventListener('abort', onAbort);
        this.notify = undefined;
      }
      if (this.queued.size > 0) {
        const requests: Record<string, RelayedAsk> = {};
        for (const [key, p] of this.queued) {
          requests[key] = p.ask;
          this.sent.set(key, p);
        }
        this.queued.clear();
        if (this.state !== undefined) held.delete(this.state);
        const state = `failclosed-${randomUUID()}`;
        this.state = state;
        held.set(state, this);
        return { kind: 'input', state, requests };
      }
      const r = this.result as { readonly value: CallToolResult } | { readonly error: unknown };
      if ('error' in r) throw r.error;
      return { kind: 'done', result: r.value };
    }
  }

  /** Keeps `h` under `state` for the time its outcome is kept, within the bound. */
  const keep = (state: string, h: Held): void => {
    held.set(state, h);
    for (const [old, x] of held) {
      if (held.size <= MAX_KEPT) break;
      if (x.ended()) held.delete(old);
    }
  };
  const rounds: InputRounds = {
    async start(owner, request, run, io) {
      const h = new Held(owner, request);
      const ended = (result: { readonly value: CallToolResult } | { readonly error: unknown }): void => {
        h.finish(result);
        setTimeout(() => {
          for (const [state, x] of held) if (x === h) held.delete(state);
        }, RESULT_KEPT_MS).unref();
      };
      run(h.relay()).then(
        (value) => ended({ value }),
        (error: unknown) => ended({ error }),
      );
      return h.next(io);
    },
    resume(owner, request, state, responses, io) {
      const h = held.get(state);
      if (h === undefined || h.owner !== owner || h.request !== request) return undefined;
      // Ended: its outcome again, under the same state (a late or repeated last round).
      if (h.ended()) return h.next(io);
      // Taken out while the round runs: the same state cannot run two rounds at once.
      held.delete(state);
      h.answer(responses);
      return h.next(io).then((round) => {
        if (round.kind === 'done') keep(state, h);
        return round;
      });
    },
  };
  return Object.freeze(rounds);
}

/** The JSON of one relayed request as `inputRequests` carries it. */
export const inputRequestOf = (ask: RelayedAsk): JsonObject => ({ method: ask.method, params: ask.params });
