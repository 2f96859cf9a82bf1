/**
 * What an MCP request message asks for, as a Control Plane reads it back from the message a
 * client-key token is bound to (docs/mcp.md "Through keyless Gates"; FC-INV-3, FC-INV-6): the
 * relay (`failclosed mcp`) puts the SHA-256 of each message it posts in that message's token
 * (`body_sha256`), so the message, and with it the call, is the client's, not the Gate's.
 * Parsed exactly as the ingress parses it (`tools.ts`, `entries.ts`, `meta.ts`); anything else
 * is undefined.
 */
import { canonicalize, parseJson } from '../../kernel/index.js';
import type { JsonObject, JsonValue } from '../../kernel/index.js';
import { MAX_REQUEST_BYTES, MAX_REQUEST_DEPTH } from '../request.js';
import { retryOf, sessionOf } from './meta.js';

/** The call a bound message asks for. */
export type BoundCall =
  | {
      readonly method: 'tools/call';
      readonly tool: string;
      /** The arguments in canonical form (RFC 8785). */
      readonly params: string;
      readonly session: string | null;
      readonly retry: string | null;
    }
  | {
      readonly method: 'prompts/get' | 'resources/read' | 'completion/complete';
      /** `prompts/get`: the prompt's name; `resources/read`: the URI; `completion/complete`: none. */
      readonly target: string | undefined;
      /** `prompts/get`: its arguments in canonical form; otherwise none. */
      readonly params: string | undefined;
      readonly session: string | null;
      readonly retry: string | null;
    };

const isObject = (v: JsonValue | undefined): v is JsonObject =>
  typeof v === 'object' && v !== null && !Array.isArray(v);

/** The call the message `bytes` asks for; undefined when they are not one governed MCP request. */
export function boundCallOf(bytes: Uint8Array): BoundCall | undefined {
  let v: JsonValue;
  try {
    v = parseJson(bytes, { maxBytes: MAX_REQUEST_BYTES, maxDepth: MAX_REQUEST_DEPTH });
  } catch {
    return undefined;
  }
  if (!isObject(v) || v['jsonrpc'] !== '2.0' || !isObject(v['params'])) return undefined;
  const params = v['params'];
  const session = sessionOf(params['_meta']);
  const retry = retryOf(params['_meta']);
  if (session === undefined || retry === undefined) return undefined;
  switch (v['method']) {
    case 'tools/call': {
      const name = params['name'];
      const args = params['arguments'] ?? {};
      if (typeof name !== 'string' || !isObject(args)) return undefined;
      return { method: 'tools/call', tool: name, params: canonicalize(args), session, retry };
    }
    case 'prompts/get': {
      const name = params['name'];
      const args = params['arguments'] ?? {};
      return typeof name === 'string' && isObject(args)
        ? { method: 'prompts/get', target: name, params: canonicalize(args), session, retry }
        : undefined;
    }
    case 'resources/read': {
      const uri = params['uri'];
      return typeof uri === 'string'
        ? { method: 'resources/read', target: uri, params: undefined, session, retry }
        : undefined;
    }
    case 'completion/complete':
      return { method: 'completion/complete', target: undefined, params: undefined, session, retry };
    default:
      return undefined;
  }
}
