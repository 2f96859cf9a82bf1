/**
 * The held calls of 2026-07-28 `input_required` rounds (src/gate/mcp/rounds.ts; docs/mcp.md
 * "Sampling and elicitation"): a state is good once, only for its owner and exact request; an ask
 * the client does not answer is refused to the upstream; the client closing a round cancels the
 * call; asks made together share a round.
 */
import { describe, expect, it } from 'vitest';
import { createInputRounds } from '../../src/gate/mcp/rounds.js';
import type { HeldRelay, Round, RoundIo } from '../../src/gate/mcp/rounds.js';
import type { RelayedAsk } from '../../src/execution/index.js';

const ELICIT: RelayedAsk = {
  method: 'elicitation/create',
  params: { mode: 'form', message: 'ok?', requestedSchema: { type: 'object', properties: {} } },
};
const SAMPLE: RelayedAsk = { method: 'sampling/createMessage', params: { messages: [], maxTokens: 1 } };

function io(signal = new AbortController().signal): RoundIo {
  return () => ({ signal, notify: () => undefined });
}

/** A held call that asks `asks` at once, then answers what came back. */
function asking(asks: RelayedAsk[]) {
  let relay: HeldRelay | undefined;
  const run = async (r: HeldRelay) => {
    relay = r;
    const ended = new AbortController();
    const got = await Promise.all(asks.map((a) => r.ask(a, ended.signal).catch((e: Error) => e.message)));
    return { content: [{ type: 'text' as const, text: JSON.stringify(got) }] };
  };
  return { run, relay: () => relay };
}

const inputOf = (r: Round) => {
  if (r.kind !== 'input') throw new Error('expected input');
  return r;
};

describe('input_required rounds', () => {
  it('asks made together go in one round; the answers reach the call; its result ends it', async () => {
    const rounds = createInputRounds();
    const call = asking([ELICIT, SAMPLE]);
    const first = inputOf(await rounds.start('me', 'req', call.run, io()));
    const keys = Object.keys(first.requests);
    expect(
      Object.values(first.requests)
        .map((a) => a.method)
        .sort(),
    ).toEqual(['elicitation/create', 'sampling/createMessage']);
    const answers = Object.fromEntries(keys.map((k) => [k, { answer: k }]));
    const done = await rounds.resume('me', 'req', first.state, answers, io());
    expect(done).toEqual({
      kind: 'done',
      result: { content: [{ type: 'text', text: JSON.stringify(keys.map((k) => ({ answer: k }))) }] },
    });
  });

  it('a state is only for its owner and exact request; its round runs once; an ended call answers its outcome again', async () => {
    const rounds = createInputRounds();
    let runs = 0;
    const call = asking([ELICIT]);
    const first = inputOf(await rounds.start('me', 'req', (r) => ((runs += 1), call.run(r)), io()));
    expect(rounds.resume('someone-else', 'req', first.state, {}, io())).toBeUndefined();
    expect(rounds.resume('me', 'another-request', first.state, {}, io())).toBeUndefined();
    const key = Object.keys(first.requests)[0]!;
    const done = await rounds.resume('me', 'req', first.state, { [key]: { action: 'decline' } }, io());
    // Late or repeated, the last round gets the same outcome: its answer is not taken, nothing runs.
    const again = await rounds.resume('me', 'req', first.state, { [key]: { action: 'accept' } }, io());
    expect(again).toEqual(done);
    expect(JSON.stringify(again)).toContain('decline');
    expect(runs).toBe(1);
  });

  it('two retries of one round at once: the second finds nothing held', async () => {
    const rounds = createInputRounds();
    const first = inputOf(await rounds.start('me', 'req', asking([ELICIT, SAMPLE]).run, io()));
    const one = rounds.resume('me', 'req', first.state, {}, io());
    expect(rounds.resume('me', 'req', first.state, {}, io())).toBeUndefined();
    await one;
  });

  it('an ask the client did not answer is refused to the call', async () => {
    const rounds = createInputRounds();
    const first = inputOf(await rounds.start('me', 'req', asking([ELICIT]).run, io()));
    const done = await rounds.resume('me', 'req', first.state, {}, io());
    expect(done).toEqual({
      kind: 'done',
      result: { content: [{ type: 'text', text: JSON.stringify(['the client did not answer']) }] },
    });
  });

  it("the client closing a round's exchange cancels the call", async () => {
    const rounds = createInputRounds();
    const call = asking([ELICIT]);
    const first = inputOf(await rounds.start('me', 'req', call.run, io()));
    const closed = new AbortController();
    const key = Object.keys(first.requests)[0]!;
    // The call asks again after the answer; the client goes away while it waits.
    const relay = call.relay()!;
    const second = rounds.resume('me', 'req', first.state, { [key]: {} }, io(closed.signal));
    closed.abort();
    await expect(second).resolves.toMatchObject({ kind: 'done' });
    expect(relay.cancelled.aborted).toBe(true);
  });
});
