/**
 * A deployment with Cedar on its own thread (docs/policy.md "Where Cedar runs"): the open waits
 * for the thread to be up with the active bundle pre-parsed, and refuses to start without it
 * (FC-INV-4: a policy engine that cannot answer serves no call, not even as a deny it cannot
 * record); `/readyz` asks the thread itself (STYLE "Readiness asks the real dependency").
 *
 * The thread runs the built worker (`dist/`, `npm run build` as `npm test` does first); the one
 * that cannot start is a thread whose worker entry does not exist.
 */
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { initDataDir, openCore } from '../../src/embedded/index.js';
import type { Core } from '../../src/embedded/index.js';
import { createCedarThread } from '../../src/policy/index.js';
import { REPO_ROOT } from '../support/paths.js';

const BUILT_WORKER = pathToFileURL(join(REPO_ROOT, 'dist/src/policy/cedar-worker.js'));
const NO_WORKER = pathToFileURL(join(REPO_ROOT, 'test/policy/fixtures/no-such-worker.mjs'));

let root: string;
let dir: string;

beforeAll(async () => {
  expect(existsSync(BUILT_WORKER), 'run npm run build first').toBe(true);
  root = mkdtempSync(join(tmpdir(), 'fc-cedar-open-'));
  dir = join(root, 'data');
  await initDataDir(dir);
});

afterAll(() => {
  rmSync(root, { recursive: true, force: true });
});

async function policyReady(core: Core): Promise<boolean | undefined> {
  const a = await core.gate.ready();
  return (a.body as { checks: Record<string, boolean> }).checks['policy'];
}

describe('the open and /readyz with Cedar on its own thread', () => {
  it('a thread that cannot start: the open is refused, and leaves nothing open behind it', async () => {
    const thread = createCedarThread({ url: NO_WORKER });
    await expect(openCore(dir, { cedarThread: thread })).rejects.toThrow(
      'the Cedar thread did not start (failed)',
    );
    // The refused open released the data directory (its writer lock, its connection): the same
    // directory opens at once, and its thread was closed with it.
    const core = await openCore(dir);
    try {
      expect(await policyReady(core)).toBe(true);
    } finally {
      await core.close();
    }
    await expect(thread.ready()).rejects.toThrow('the Cedar thread is closed');
  });

  it('a thread that is up: ready, and /readyz asks it (a closed thread is not ready)', async () => {
    const thread = createCedarThread({ url: BUILT_WORKER });
    const core = await openCore(dir, { cedarThread: thread });
    try {
      expect(await policyReady(core)).toBe(true);
      const answered = await core.gate.ready();
      expect(answered.status).toBe(200);
      // The thread gone (no restart after a close): the policy check fails, /readyz is 503.
      await thread.close();
      expect(await policyReady(core)).toBe(false);
      expect((await core.gate.ready()).status).toBe(503);
    } finally {
      await core.close();
    }
  });
});
