/**
 * Cedar off the event loop (`src/policy/cedar-thread.ts`, docs/policy.md "Where Cedar runs"):
 * a bundle compiled with a Cedar thread decides every call exactly as one evaluated in-thread
 * (SPEC §2 step 3, OE-INV-014, GEI Determinism), and every failure of the thread is a deny
 * with its code, never an allow (FC-INV-4): a thread that dies refuses the calls waiting on it
 * (`ERR_POLICY_UNAVAILABLE`: nothing was wrong with them) and the next call starts a new one; a
 * thread that hangs is past the pipeline's policy deadline (`ERR_POLICY_UNAVAILABLE`) and is
 * replaced once it has held a call past its stall bound, by its watchdog if no call comes; a
 * message nobody asked for, or a garbled answer, is `ERR_POLICY_ERROR`; a thread that cannot
 * start or was closed refuses (`ERR_POLICY_UNAVAILABLE`), and one that cannot start is tried
 * again once per back-off, not at every call.
 *
 * The thread runs the built worker (`dist/`, `npm run build` as `npm test` does first). The
 * faults wrap that real worker in a test entry (`fixtures/cedar-worker-faults.mjs`): it crashes,
 * hangs or garbles only the calls whose principal asks for it.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { BroadcastChannel } from 'node:worker_threads';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { createBundleCompiler, evaluateCall } from '../../src/control-plane/index.js';
import type { CallToEvaluate, PolicyRuntime } from '../../src/control-plane/index.js';
import { buildBundleFromDir, createCedarThread } from '../../src/policy/index.js';
import type { CedarThread } from '../../src/policy/index.js';
import { REPO_ROOT } from '../support/paths.js';

const BUILT_WORKER = join(REPO_ROOT, 'dist/src/policy/cedar-worker.js');
const FAULTY_WORKER = pathToFileURL(join(REPO_ROOT, 'test/policy/fixtures/cedar-worker-faults.mjs'));
const START_FAULTY_WORKER = pathToFileURL(
  join(REPO_ROOT, 'test/policy/fixtures/cedar-worker-start-faults.mjs'),
);
const POLICY_MS = 2000;
/**
 * The stall bound of the hanging threads: it bounds a new thread's start too (its ready ping), so
 * it stays well above a start on a loaded machine (300 ms was not).
 */
const STALL_MS = 1500;

let bytes: Buffer;
let hash: string;
let inline: PolicyRuntime;
const threads: CedarThread[] = [];

/** The demo bundle, its evaluations on `thread`. */
function onThread(thread: CedarThread): PolicyRuntime {
  threads.push(thread);
  return createBundleCompiler({}, { cedarThread: thread })(bytes, hash);
}

beforeAll(async () => {
  expect(existsSync(BUILT_WORKER), 'run npm run build first').toBe(true);
  const built = await buildBundleFromDir(join(REPO_ROOT, 'examples/demo-policy'));
  if ('outcome' in built) throw new Error(built.reason);
  bytes = Buffer.from(built.text);
  hash = built.hash;
  inline = createBundleCompiler({})(bytes, hash);
});

afterAll(async () => {
  await Promise.all(threads.map((t) => t.close()));
});

const transfer = (amount: number | string): CallToEvaluate['params'] => ({
  from_account: 'acct_a',
  to_account: 'acct_b',
  amount,
  currency: 'USD',
});

function call(
  tool: string,
  params: CallToEvaluate['params'],
  over: Partial<CallToEvaluate> = {},
): CallToEvaluate {
  return { identity: 'agent-1', tenant: 'acme', roles: [], tool, params, tainted: false, ...over };
}

/** Every outcome the demo bundle can give, and the refusals before and inside Cedar. */
const CASES: readonly [string, CallToEvaluate][] = [
  ['allow', call('echo', { message: 'hi' })],
  ['allow within a limit', call('transfer_funds', transfer(500))],
  ['escalate above a threshold', call('transfer_funds', transfer(60_00))],
  ['escalate, tainted', call('transfer_funds', transfer(10), { tainted: true })],
  ['deny by a forbid', call('transfer_funds', transfer(60_000))],
  ['deny, another tenant', call('echo', { message: 'hi' }, { tenant: 'globex' })],
  ['deny, no permit for the role', call('delete_records', { table: 'orders', ids: ['o1'] })],
  [
    'escalate for an operator',
    call('delete_records', { table: 'orders', ids: ['o1'] }, { roles: ['operator'] }),
  ],
  ['unknown tool', call('format_disk', {})],
  ['parameters against the schema', call('echo', { message: 7 })],
  ['a number Cedar cannot hold', call('transfer_funds', transfer(1e300))],
];

describe('a bundle evaluated on the Cedar thread', () => {
  it('decides every call exactly as in-thread', async () => {
    const thread = createCedarThread({ url: pathToFileURL(BUILT_WORKER) });
    const threaded = onThread(thread);
    // Compiling pre-parsed the bundle on the thread already: ready once that is done.
    await expect(thread.ready()).resolves.toBeUndefined();
    for (const [name, c] of CASES) {
      const want = await evaluateCall(inline, c, POLICY_MS);
      const got = await evaluateCall(threaded, c, POLICY_MS);
      expect(got, name).toEqual(want);
    }
    // Concurrent calls each get their own answer.
    const all = await Promise.all(CASES.map(([, c]) => evaluateCall(threaded, c, POLICY_MS)));
    const want = await Promise.all(CASES.map(([, c]) => evaluateCall(inline, c, POLICY_MS)));
    expect(all).toEqual(want);
    expect(new Set(want.map((w) => w.outcome))).toEqual(new Set(['allow', 'escalate', 'deny']));
  });
});

describe('a Cedar thread that fails (FC-INV-4: every failure a deny)', () => {
  it('dies: the calls waiting on it are refused ERR_POLICY_UNAVAILABLE, the next call starts a new thread', async () => {
    const threaded = onThread(createCedarThread({ url: FAULTY_WORKER }));
    expect((await evaluateCall(threaded, call('echo', { message: 'warm' }), POLICY_MS)).outcome).toBe(
      'allow',
    );
    const waiting = await Promise.all([
      evaluateCall(threaded, call('echo', { message: 'a' }), POLICY_MS),
      evaluateCall(threaded, call('echo', { message: 'b' }, { identity: 'crash' }), POLICY_MS),
      evaluateCall(threaded, call('echo', { message: 'c' }), POLICY_MS),
    ]);
    // The first was answered before the crash; the crash and the call queued behind it are denied.
    expect(waiting[0]?.outcome).toBe('allow');
    for (const w of waiting.slice(1)) {
      expect(w.outcome).toBe('deny');
      expect(w.outcome === 'deny' && w.denial.code).toBe('ERR_POLICY_UNAVAILABLE');
    }
    // A new thread, the bundle pre-parsed again.
    expect((await evaluateCall(threaded, call('echo', { message: 'after' }), POLICY_MS)).outcome).toBe(
      'allow',
    );
    const denied = await evaluateCall(threaded, call('transfer_funds', transfer(60_000)), POLICY_MS);
    expect(denied.outcome === 'deny' && denied.denial.code).toBe('ERR_POLICY_DENY');
  });

  it('hangs: the call is past its deadline (ERR_POLICY_UNAVAILABLE); past the stall bound a new thread answers', async () => {
    const threaded = onThread(createCedarThread({ url: FAULTY_WORKER, stallMs: STALL_MS }));
    const hung = await evaluateCall(threaded, call('echo', { message: 'x' }, { identity: 'hang' }), 200);
    expect(hung.outcome === 'deny' && hung.denial.code).toBe('ERR_POLICY_UNAVAILABLE');
    // Within the stall bound the thread is still the hung one: calls are refused at their deadline.
    const queued = await evaluateCall(threaded, call('echo', { message: 'y' }), 50);
    expect(queued.outcome === 'deny' && queued.denial.code).toBe('ERR_POLICY_UNAVAILABLE');
    await new Promise((r) => setTimeout(r, STALL_MS));
    expect((await evaluateCall(threaded, call('echo', { message: 'z' }), POLICY_MS)).outcome).toBe('allow');
  });

  it('behind a slow call, the calls whose deadline passed meanwhile are answered without being evaluated', async () => {
    const kinds: string[] = [];
    const channel = new BroadcastChannel('failclosed-test-cedar-answers');
    channel.onmessage = (m) => void kinds.push(String((m as { data: unknown }).data));
    try {
      const threaded = onThread(createCedarThread({ url: FAULTY_WORKER }));
      expect((await evaluateCall(threaded, call('echo', { message: 'up' }), POLICY_MS)).outcome).toBe(
        'allow',
      );
      await vi.waitFor(() => expect(kinds).toEqual(['evaluated']), { timeout: 10_000 });
      // The slow one holds the thread for 400 ms; five more are sent meanwhile, each denied at its
      // 50 ms deadline: the thread reaches them dead.
      const slow = evaluateCall(threaded, call('echo', { message: 'x' }, { identity: 'slow' }), POLICY_MS);
      const dead = await Promise.all(
        [1, 2, 3, 4, 5].map((i) => evaluateCall(threaded, call('echo', { message: `dead ${i}` }), 50)),
      );
      for (const d of dead) expect(d.outcome === 'deny' && d.denial.code).toBe('ERR_POLICY_UNAVAILABLE');
      expect((await slow).outcome).toBe('allow');
      await vi.waitFor(() => expect(kinds).toHaveLength(7), { timeout: 10_000 });
      expect(kinds).toEqual([
        'evaluated',
        'evaluated',
        'expired',
        'expired',
        'expired',
        'expired',
        'expired',
      ]);
      // The thread stays up, and a live call is evaluated as ever.
      expect((await evaluateCall(threaded, call('echo', { message: 'after' }), POLICY_MS)).outcome).toBe(
        'allow',
      );
    } finally {
      channel.close();
    }
  });

  it('hangs with nothing more to do: its watchdog ends it, and a new thread answers', async () => {
    const thread = createCedarThread({ url: FAULTY_WORKER, stallMs: STALL_MS });
    const threaded = onThread(thread);
    const hung = await evaluateCall(threaded, call('echo', { message: 'x' }, { identity: 'hang' }), 200);
    expect(hung.outcome === 'deny' && hung.denial.code).toBe('ERR_POLICY_UNAVAILABLE');
    await new Promise((r) => setTimeout(r, STALL_MS + 100));
    // Asked after the bound: a hung thread would hold this too; a new one answers it.
    await expect(thread.ready()).resolves.toBeUndefined();
    expect((await evaluateCall(threaded, call('echo', { message: 'y' }), POLICY_MS)).outcome).toBe('allow');
  });

  it('sends a message nobody asked for: the call waiting is refused ERR_POLICY_ERROR at once', async () => {
    const threaded = onThread(createCedarThread({ url: FAULTY_WORKER }));
    // The policy deadline is long: the refusal comes from the stray message, not from waiting.
    const d = await evaluateCall(threaded, call('echo', { message: 'x' }, { identity: 'stray' }), 60_000);
    expect(d.outcome === 'deny' && d.denial.code).toBe('ERR_POLICY_ERROR');
    expect((await evaluateCall(threaded, call('echo', { message: 'y' }), POLICY_MS)).outcome).toBe('allow');
  });

  it('answers garbage: ERR_POLICY_ERROR, never the garbled decision', async () => {
    const threaded = onThread(createCedarThread({ url: FAULTY_WORKER }));
    const notADecision = 'policy evaluation answered something that is not a decision';
    const notASuccess = 'the request does not match the Cedar schema';
    for (const [identity, reason] of [
      ['garble-allow-no-diagnostics', notADecision],
      ['garble-not-an-object', notASuccess],
      ['garble-unknown-type', notASuccess],
      ['garble-errors-not-a-list', notADecision],
      ['garble-errors-a-length', notADecision],
      ['garble-decision-yes', notADecision],
    ] as const) {
      const d = await evaluateCall(threaded, call('echo', { message: 'x' }, { identity }), POLICY_MS);
      expect(d.outcome, identity).toBe('deny');
      // Refused for its answer's shape, by a thread that is still up (not for a thread that died).
      expect(d.outcome === 'deny' && d.denial, identity).toMatchObject({ code: 'ERR_POLICY_ERROR', reason });
    }
    expect((await evaluateCall(threaded, call('echo', { message: 'y' }), POLICY_MS)).outcome).toBe('allow');
  });

  it('cannot start (no worker entry): ERR_POLICY_UNAVAILABLE, and it is not ready', async () => {
    const thread = createCedarThread({
      url: pathToFileURL(join(REPO_ROOT, 'test/policy/fixtures/no-such-worker.mjs')),
    });
    const threaded = onThread(thread);
    const d = await evaluateCall(threaded, call('echo', { message: 'x' }), POLICY_MS);
    expect(d.outcome === 'deny' && d.denial.code).toBe('ERR_POLICY_UNAVAILABLE');
    // Within the back-off: refused without a new start, the start's own error as its cause.
    await expect(thread.ready()).rejects.toMatchObject({ cause: { code: 'MODULE_NOT_FOUND' } });
  });

  it('refused before it begins (a URL Node will not load a worker from): ERR_POLICY_UNAVAILABLE, within the back-off', async () => {
    let clock = 0;
    const thread = createCedarThread({ url: new URL('http://127.0.0.1/cedar-worker.js'), now: () => clock });
    const threaded = onThread(thread);
    const d = await evaluateCall(threaded, call('echo', { message: 'x' }), POLICY_MS);
    expect(d.outcome === 'deny' && d.denial).toMatchObject({
      code: 'ERR_POLICY_UNAVAILABLE',
      reason: 'the Cedar thread is not available',
    });
    // Counted as a start that failed: the next one waits out the back-off (its message says so).
    await expect(thread.ready()).rejects.toThrow(/next start is due in 100 ms/);
    clock += 100;
    await expect(thread.ready()).rejects.toMatchObject({ cause: { code: 'ERR_INVALID_URL_SCHEME' } });
  });

  it('cannot start: one start per back-off, not one per call; a thread that starts resets it', async () => {
    let clock = 0;
    let starts = 0;
    const channel = new BroadcastChannel('failclosed-test-cedar-starts');
    channel.onmessage = () => void (starts += 1);
    /** The starts the threads announced so far (their announcements are asynchronous). */
    const started = async (n: number): Promise<void> => {
      await vi.waitFor(() => expect(starts).toBe(n));
      await new Promise((r) => setTimeout(r, 20));
      expect(starts).toBe(n);
    };
    const refused = async (): Promise<void> => {
      const d = await evaluateCall(threaded, call('echo', { message: 'x' }), POLICY_MS);
      expect(d.outcome === 'deny' && d.denial.code).toBe('ERR_POLICY_UNAVAILABLE');
    };
    process.env['FC_TEST_CEDAR_CANNOT_START'] = '1';
    const thread = createCedarThread({
      url: START_FAULTY_WORKER,
      now: () => clock,
      startBackoffMs: 100,
      maxStartBackoffMs: 400,
    });
    const threaded = onThread(thread);
    try {
      // Compiling the bundle started the first thread (its pre-parse), which could not start.
      await expect(thread.ready()).rejects.toThrow('this Cedar thread cannot start');
      await started(1);
      // Ten calls within the back-off: each refused, none starts a thread.
      for (let i = 0; i < 10; i += 1) await refused();
      await expect(thread.ready()).rejects.toThrow('the Cedar thread did not start (1 in a row)');
      await started(1);
      // Each back-off ended lets one start through; each start that fails doubles it, to its cap.
      for (const [at, n] of [
        [99, 1],
        [100, 2],
        [299, 2],
        [300, 3],
        [699, 3],
        [700, 4],
        [1099, 4],
        [1100, 5],
      ] as const) {
        clock = at;
        await refused();
        await started(n);
      }
      await expect(thread.ready()).rejects.toThrow('the Cedar thread did not start (5 in a row)');
      // It can start again: the next start after the back-off answers, and the count is reset.
      delete process.env['FC_TEST_CEDAR_CANNOT_START'];
      clock = 1500;
      expect((await evaluateCall(threaded, call('echo', { message: 'y' }), POLICY_MS)).outcome).toBe('allow');
      await started(6);
      await expect(thread.ready()).resolves.toBeUndefined();
    } finally {
      delete process.env['FC_TEST_CEDAR_CANNOT_START'];
      channel.close();
    }
  });

  it('refuses bounds that would end the back-off or the watchdog', () => {
    for (const bad of [0, -1, Number.NaN, Number.POSITIVE_INFINITY]) {
      expect(() => createCedarThread({ startBackoffMs: bad })).toThrow(RangeError);
      expect(() => createCedarThread({ maxStartBackoffMs: bad })).toThrow(RangeError);
      expect(() => createCedarThread({ stallMs: bad })).toThrow(RangeError);
    }
  });

  it('is closed: every later call is refused ERR_POLICY_UNAVAILABLE', async () => {
    const thread = createCedarThread({ url: pathToFileURL(BUILT_WORKER) });
    const threaded = onThread(thread);
    expect((await evaluateCall(threaded, call('echo', { message: 'x' }), POLICY_MS)).outcome).toBe('allow');
    await thread.close();
    const d = await evaluateCall(threaded, call('echo', { message: 'x' }), POLICY_MS);
    expect(d.outcome === 'deny' && d.denial.code).toBe('ERR_POLICY_UNAVAILABLE');
  });
});
