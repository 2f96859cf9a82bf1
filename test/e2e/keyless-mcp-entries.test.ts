/**
 * Pinned MCP prompts, resources and completions through a keyless Gate (docs/mcp.md "Through
 * keyless Gates", "Prompts and resources"; FC-INV-3, FC-INV-6): listed from the Control Plane
 * process's active bundle, and, with a client-key token bound to its message, decided only as
 * the message asks. The bundle pins the recording upstream of test/support/mcp-http-upstream.ts
 * (`failclosed policy pin-mcp --url`); a compromised Gate (`keyless-forge.ts`) mints another
 * prompt's arguments, another resource, another completion value, or a prompt's entry as a tool,
 * and each is denied `ERR_REQUEST_SIGNATURE` with no envelope issued.
 */
import { cpSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Client, StreamableHTTPClientTransport } from '@modelcontextprotocol/client';
import { signClientToken } from '../../src/client/index.js';
import { runCli } from '../../src/cli/run.js';
import { DEMO_CLIENT, readClientFile } from '../../src/embedded/index.js';
import { importSigningKeyJwk } from '../../src/kernel/signing/index.js';
import { REPO_ROOT } from '../support/paths.js';
import { pinHostileArgs, startHostileUpstream } from '../support/mcp-http-upstream.js';
import type { HostileUpstream } from '../support/mcp-http-upstream.js';
import { startE2e } from './harness.js';
import type { E2e } from './harness.js';
import { forgingGate } from './keyless-forge.js';
import type { ForgingGate } from './keyless-forge.js';

const RESOURCE = 'https://mcp.gates.test/mcp';
const GREET = 'hostile.prompts.greet';
const NOTES = 'hostile.resources.notes';
const SECRET = 'hostile.resources.secret';

let work: string;
let hostile: HostileUpstream;
let e2e: E2e;
let forge: ForgingGate;

beforeAll(async () => {
  work = mkdtempSync(join(tmpdir(), 'fc-keyless-entries-'));
  const src = join(work, 'policy');
  hostile = await startHostileUpstream();
  cpSync(join(REPO_ROOT, 'examples', 'demo-policy'), src, { recursive: true });
  const out: string[] = [];
  const code = await runCli(pinHostileArgs(src, hostile.url), {
    out: (t) => out.push(t),
    err: (t) => out.push(t),
    env: {},
  });
  expect(code, out.join('')).toBe(0);
  writeFileSync(
    join(src, 'policies', 'keyless-entries.cedar'),
    `@reason("the pinned prompts and resources")\npermit (principal, action in [Action::"${GREET}", Action::"${GREET}.complete", Action::"${NOTES}", Action::"${SECRET}"], resource);\n`,
  );
  const mcp = { resource: RESOURCE };
  e2e = await startE2e({ topology: 'keyless', policyDir: src, gate: { mcp }, config: { mcp } });
  forge = await forgingGate(e2e, RESOURCE);
}, 180_000);

afterAll(async () => {
  forge?.close();
  await e2e?.close();
  await hostile?.close();
  rmSync(work, { recursive: true, force: true });
});

describe('pinned prompts and resources through a keyless Gate', () => {
  it('prompts/list and resources/list come from the Control Plane process', async () => {
    const key = importSigningKeyJwk(readClientFile(e2e.dir, DEMO_CLIENT.identity).key);
    const c = new Client({ name: 'fc-keyless-entries', version: '1.0.0' });
    await c.connect(
      new StreamableHTTPClientTransport(new URL('/mcp', e2e.url), {
        fetch: (input, init) => {
          const headers = new Headers(init?.headers);
          headers.set(
            'authorization',
            `Bearer ${signClientToken(key, DEMO_CLIENT.identity, RESOURCE, e2e.clock.now())}`,
          );
          return fetch(input, { ...init, headers });
        },
      }),
    );
    expect((await c.listPrompts()).prompts.map((p) => p.name)).toContain(GREET);
    expect((await c.listResources()).resources.map((r) => r.uri)).toEqual(
      expect.arrayContaining(['hostile://notes/1', 'hostile://secret/1']),
    );
    await c.close();
  });

  const denied = { outcome: 'deny', code: 'ERR_REQUEST_SIGNATURE' };

  it('prompts/get: as the message asks, decided; other arguments, denied', async () => {
    const asked = forge.message('prompts/get', { name: GREET, arguments: { who: 'bob' } });
    expect(await forge.decideAs(GREET, { who: 'bob' }, asked.token, asked.bytes)).toMatchObject({
      outcome: 'allow',
    });
    const other = forge.message('prompts/get', { name: GREET, arguments: { who: 'bob' } });
    expect(await forge.decideAs(GREET, { who: 'dave' }, other.token, other.bytes)).toMatchObject(denied);
  });

  it('resources/read: as the message asks, decided; another resource, denied', async () => {
    const asked = forge.message('resources/read', { uri: 'hostile://notes/1' });
    expect(await forge.decideAs(NOTES, { uri: 'hostile://notes/1' }, asked.token, asked.bytes)).toMatchObject(
      {
        outcome: 'allow',
      },
    );
    const other = forge.message('resources/read', { uri: 'hostile://notes/1' });
    expect(
      await forge.decideAs(SECRET, { uri: 'hostile://secret/1' }, other.token, other.bytes),
    ).toMatchObject(denied);
    // The URI the message names, under another resource's entry.
    const swapped = forge.message('resources/read', { uri: 'hostile://notes/1' });
    expect(
      await forge.decideAs(SECRET, { uri: 'hostile://notes/1' }, swapped.token, swapped.bytes),
    ).toMatchObject(denied);
  });

  it('completion/complete: as the message asks, decided; another value, denied', async () => {
    const complete = (value: string) =>
      forge.message('completion/complete', {
        ref: { type: 'ref/prompt', name: GREET },
        argument: { name: 'who', value },
      });
    const asked = complete('b');
    expect(
      await forge.decideAs(`${GREET}.complete`, { argument: 'who', value: 'b' }, asked.token, asked.bytes),
    ).toMatchObject({ outcome: 'allow' });
    const other = complete('b');
    expect(
      await forge.decideAs(
        `${GREET}.complete`,
        { argument: 'who', value: 'mallory' },
        other.token,
        other.bytes,
      ),
    ).toMatchObject(denied);
  });

  it('a tools/call message naming a prompt entry is no call of that entry', async () => {
    const m = forge.message('tools/call', { name: GREET, arguments: { who: 'bob' } });
    expect(await forge.decideAs(GREET, { who: 'bob' }, m.token, m.bytes)).toMatchObject(denied);
  });
});
