/**
 * A compromised keyless Gate, for tests (docs/mcp.md "Through keyless Gates"; FC-INV-3,
 * FC-INV-6): with the Gate's own certificate it speaks to the Control Plane process's internal
 * routes itself, minting an MCP call of its choosing, storing its evidence and `gateway.accepted`,
 * and asking the decision with a client's bearer token and the message that token is bound to.
 */
import { expect } from 'vitest';
import { signClientToken } from '../../src/client/index.js';
import { DEMO_CLIENT, readClientFile } from '../../src/embedded/index.js';
import { gateRequest } from '../../src/embedded/executor-node.js';
import { mintCall } from '../../src/gate/principal.js';
import { parseJson } from '../../src/kernel/index.js';
import type { JsonObject } from '../../src/kernel/index.js';
import { importSigningKeyJwk } from '../../src/kernel/signing/index.js';
import { createMtlsAgent } from '../../src/transport/index.js';
import type { E2e } from './harness.js';

/** What the forging Gate can do. */
export interface ForgingGate {
  /** An MCP request message as the relay posts it, and a demo-client token bound to its bytes. */
  message(method: string, params: JsonObject): { bytes: Buffer; token: string };
  /**
   * Mints `tool`/`params` for the demo client, records it as a Gate does, and asks the decision
   * with `token` and `bytes` (the message it is bound to). The decision's JSON answer.
   */
  decideAs(
    tool: string,
    params: JsonObject,
    token: string,
    bytes: Buffer,
    background?: { readonly accepted: boolean; readonly asked: boolean },
  ): Promise<JsonObject>;
  /** POSTs `body` to one of the Control Plane process's internal routes, as the Gate. */
  ask(path: string, body: JsonObject): Promise<{ status: number; value: JsonObject }>;
  close(): void;
}

/** The forging Gate of the keyless topology `e2e`, whose MCP resource is `resource`. */
export async function forgingGate(e2e: E2e, resource: string): Promise<ForgingGate> {
  const gate = e2e.gate!;
  const agent = await createMtlsAgent({
    files: gate.config.tls,
    expect: ['control-plane'],
    clientOnly: true,
  });
  const file = readClientFile(e2e.dir, DEMO_CLIENT.identity);
  const key = importSigningKeyJwk(file.key);
  const ask = async (path: string, body: JsonObject): Promise<{ status: number; value: JsonObject }> => {
    const a = await gateRequest(
      { url: gate.config.control_plane_url, agent, timeoutMs: 10_000 },
      'POST',
      path,
      body,
      1024 * 1024,
    );
    return { status: a.status, value: parseJson(a.body) as JsonObject };
  };
  return {
    message(method, params) {
      const bytes = Buffer.from(JSON.stringify({ jsonrpc: '2.0', id: 7, method, params }));
      return { bytes, token: signClientToken(key, file.identity, resource, e2e.clock.now(), 60, bytes) };
    },
    async decideAs(tool, params, token, bytes, background) {
      const principal = {
        identity: file.identity,
        tenant: file.tenant,
        roles: [] as string[],
        auth_method: 'client_key' as const,
        issuer: file.identity,
      };
      const m = mintCall(principal, { tool, params, session: null }, e2e.clock.now());
      const stored = await ask('/v1/internal/gate/evidence', {
        media_type: 'application/json',
        body: Buffer.from(m.evidence).toString('base64'),
      });
      expect(stored.status).toBe(200);
      const accepted = await ask('/v1/internal/gate/event', {
        type: 'gateway.accepted',
        trace_id: m.trace_id,
        request_id: m.request_id,
        tenant: file.tenant,
        identity: file.identity,
        payload: {
          request_sha256: m.rawSha,
          tool,
          session: null,
          client: file.identity,
          auth_method: 'client_key',
          issuer: file.identity,
          ...(background?.accepted === true ? { background: true } : {}),
        },
      });
      expect(accepted.status).toBe(200);
      const decided = await ask('/v1/internal/cp/decide', {
        request_id: m.request_id,
        trace_id: m.trace_id,
        identity: file.identity,
        tenant: file.tenant,
        roles: [],
        tool,
        params,
        timestamp: m.timestampMs,
        session: null,
        request_sha256: m.rawSha,
        wait_ms: 0,
        credential: token,
        message: bytes.toString('base64'),
        ...(background?.asked === true ? { background: true } : {}),
      });
      expect(decided.status).toBe(200);
      return decided.value;
    },
    ask,
    close: () => agent.close(),
  };
}
