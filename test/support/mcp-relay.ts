/**
 * What the relay tests share (test/e2e/mcp-relay.test.ts in-process, mcp-relay-remote.test.ts
 * through a separate Execution Layer): the fixture upstream's pin, an MCP client transport with
 * the demo client's key tokens, and the ledger records of a call the client cancelled.
 */
import { realpathSync } from 'node:fs';
import { join } from 'node:path';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/client';
import { signClientToken } from '../../src/client/index.js';
import { readClientFile } from '../../src/embedded/index.js';
import { importSigningKeyJwk } from '../../src/kernel/signing/index.js';
import { REPO_ROOT } from './paths.js';

export const NODE_MODULES = realpathSync(join(REPO_ROOT, 'node_modules'));
export const RELAY_FIXTURE = realpathSync(join(REPO_ROOT, 'test', 'fixtures', 'mcp-relay-upstream'));

/** `policy pin-mcp` arguments pinning the relay fixture as `server` (its state in `state`), `extra` added. */
export function relayFixturePin(src: string, state: string, server: string, ...extra: string[]): string[] {
  return [
    'policy',
    'pin-mcp',
    src,
    '--server',
    server,
    ...extra,
    '--read',
    NODE_MODULES,
    '--read',
    RELAY_FIXTURE,
    '--write',
    state,
    '--',
    '/usr/bin/node',
    join(RELAY_FIXTURE, 'server.mjs'),
    state,
  ];
}

/** A Streamable HTTP transport to `${url}/mcp` signing a fresh token per request, as `failclosed mcp` does. */
export function demoAgentTransport(dir: string, url: string): () => StreamableHTTPClientTransport {
  const agent = readClientFile(dir, 'demo-agent');
  const key = importSigningKeyJwk(agent.key);
  const resource = `${url}/mcp`;
  return () =>
    new StreamableHTTPClientTransport(new URL(resource), {
      fetch: (u, init) => {
        const headers = new Headers(init?.headers);
        headers.set('authorization', `Bearer ${signClientToken(key, agent.identity, resource, Date.now())}`);
        return fetch(u, { ...init, headers });
      },
    });
}

/** A ledger entry as the relay tests read it. */
export type RelayEntry = { type: string; request_id: string; payload: Record<string, unknown> };

/**
 * The last receipt of `tool` and the Gate's `gateway.failed` of the same request, once both are
 * recorded (the outcome of a cancelled call is written once the upstream is gone); polled up to
 * 20 s, then whatever there is.
 */
export async function cancelledRecords(
  entries: () => Promise<RelayEntry[]>,
  tool: string,
): Promise<{ receipt: RelayEntry | undefined; failed: RelayEntry | undefined }> {
  let receipt: RelayEntry | undefined;
  let failed: RelayEntry | undefined;
  for (let i = 0; i < 200 && failed === undefined; i++) {
    const all = await entries();
    receipt = all.filter((e) => e.type === 'execution.receipt' && e.payload['tool'] === tool).at(-1);
    failed = all.find((e) => e.type === 'gateway.failed' && e.request_id === receipt?.request_id);
    if (failed === undefined) await new Promise((r) => setTimeout(r, 100));
  }
  return { receipt, failed };
}
