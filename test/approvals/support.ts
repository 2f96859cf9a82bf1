/**
 * Shared fixtures for approval tests: a real embedded deployment in a temp directory (real
 * SQLite ledger and state, real HTTP on loopback) with an injected, adjustable clock, approvers
 * registered through the operator endpoint, and the CLI bound to that deployment.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createApproverClient, createClient } from '../../src/client/index.js';
import type { ApproverClient, FailclosedClient } from '../../src/client/index.js';
import { runCli } from '../../src/cli/run.js';
import { approverKeyPath, readApproverKey } from '../../src/cli/approver-keys.js';
import {
  announceServer,
  DEMO_CLIENT,
  initDataDir,
  readClientFile,
  readOperatorToken,
  startEmbedded,
  withdrawServer,
} from '../../src/embedded/index.js';
import type { CoreDecorators, EmbeddedInstance, ToolRunObserver } from '../../src/embedded/index.js';
import type { JsonValue } from '../../src/kernel/index.js';
import { generateSigningKey } from '../../src/kernel/signing/index.js';
import type { SigningKey } from '../../src/kernel/signing/index.js';

/** A deployment under test. */
export interface Rig {
  readonly dir: string;
  readonly instance: EmbeddedInstance;
  /** Moves the injected clock (ms offset from real time). */
  advance(ms: number): void;
  readonly now: () => number;
  agent(name?: string): FailclosedClient;
  /** The approvers' own config home (`XDG_CONFIG_HOME` of the rig's CLI): outside the data directory. */
  readonly home: string;
  /** Registers an approver through the operator endpoint (every tenant unless `tenants`); returns its key. */
  addApprover(
    name: string,
    roles: readonly string[],
    tenants?: readonly string[] | '*',
  ): Promise<{ status: number; body: JsonValue; key: SigningKey }>;
  /**
   * The CLI way: `approvers keygen NAME` in the approver's home, then `approvers add NAME --role
   * ROLES --tenant T... --public-key FILE` (default tenant: the demo client's). Exit code of add.
   */
  enrol(name: string, roles: string, tenants?: readonly string[]): Promise<number>;
  approver(name: string, key: SigningKey): ApproverClient;
  /** Runs the CLI against this deployment. */
  cli(...argv: string[]): Promise<{ code: number; out: string; err: string }>;
  operator(action: string, body: JsonValue): Promise<{ status: number; body: JsonValue }>;
  close(): Promise<void>;
}

/**
 * Starts a deployment over a fresh data directory; `approvalsJson` is written as `approvals.json`
 * and `prepare` runs on the initialised directory, both before start.
 */
export async function startRig(
  approvalsJson?: JsonValue,
  prepare?: (dir: string) => void | Promise<void>,
  options: {
    readonly port?: number;
    readonly scheduleTickMs?: number;
    /** Fault-injecting decorators around the real ports (`test/support/faults.ts`). */
    readonly decorate?: CoreDecorators;
    /** Told of every tool run. */
    readonly onToolRun?: ToolRunObserver;
  } = {},
): Promise<Rig> {
  const dir = mkdtempSync(join(tmpdir(), 'fc-approvals-'));
  let offset = 0;
  const now = (): number => Date.now() + offset;
  await initDataDir(dir, { clock: now });
  if (approvalsJson !== undefined) writeFileSync(join(dir, 'approvals.json'), JSON.stringify(approvalsJson));
  await prepare?.(dir);
  const instance = await startEmbedded(dir, {
    port: options.port ?? 0,
    executionPort: 0,
    clock: now,
    ...(options.scheduleTickMs === undefined ? {} : { scheduleTickMs: options.scheduleTickMs }),
    ...(options.decorate === undefined ? {} : { decorate: options.decorate }),
    ...(options.onToolRun === undefined ? {} : { onToolRun: options.onToolRun }),
  });
  announceServer(dir, instance.url);
  const token = readOperatorToken(dir);
  const home = mkdtempSync(join(tmpdir(), 'fc-approver-home-'));
  const cli = async (...argv: string[]) => {
    let out = '';
    let err = '';
    const code = await runCli([...argv, '--data', dir], {
      out: (t) => (out += t),
      err: (t) => (err += t),
      env: { XDG_CONFIG_HOME: home },
    });
    return { code, out, err };
  };
  const operator = async (action: string, body: JsonValue) => {
    const a = await instance.core.gate.admin(action, body, `Bearer ${token}`);
    return { status: a.status, body: a.body };
  };
  return {
    dir,
    instance,
    advance: (ms) => void (offset += ms),
    now,
    agent(name = DEMO_CLIENT.identity) {
      const f = readClientFile(dir, name);
      return createClient({ url: instance.url, identity: f.identity, tenant: f.tenant, key: f.key, now });
    },
    home,
    async addApprover(name, roles, tenants = '*') {
      const key = generateSigningKey();
      const a = await operator('approvers-add', {
        name,
        roles: [...roles],
        tenants: tenants === '*' ? '*' : [...tenants],
        public_jwk: { ...key.publicJwk },
      });
      return { ...a, key };
    },
    async enrol(name, roles, tenants = [DEMO_CLIENT.tenant]) {
      const made = await cli('approvers', 'keygen', name);
      if (made.code !== 0) return made.code;
      const pub = join(home, `${name}.pub.json`);
      writeFileSync(pub, made.out);
      const args = tenants.flatMap((t) => ['--tenant', t]);
      return (await cli('approvers', 'add', name, '--role', roles, ...args, '--public-key', pub)).code;
    },
    approver: (name, key) =>
      createApproverClient({ url: instance.url, name, key, authorization: `Bearer ${token}`, now }),
    cli,
    operator,
    async close() {
      withdrawServer(dir);
      await instance.close();
      rmSync(dir, { recursive: true, force: true });
      rmSync(home, { recursive: true, force: true });
    },
  };
}

/** The approver key written by `failclosed approvers keygen` into the approver's own home. */
export function cliApproverKey(rig: Rig, name: string): Readonly<Record<string, unknown>> {
  return readApproverKey(approverKeyPath({ XDG_CONFIG_HOME: rig.home }, name), name);
}
