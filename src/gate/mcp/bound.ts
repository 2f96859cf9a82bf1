/**
 * What an MCP request message asks for, as a Control Plane reads it back from the message a
 * client-key token is bound to (docs/mcp.md "Through keyless Gates"; FC-INV-3, FC-INV-6): the
 * relay (`failclosed mcp`) puts the SHA-256 of each message it posts in that message's token
 * (`body_sha256`), so the message, and with it the call, is the client's, not the Gate's.
 *
 * Read as the ingress reads it (`tools.ts`, `entries.ts`, `meta.ts`), and stricter where the SDK
 * would refuse or reshape what a hand-written reading could take: a request with a JSON-RPC id;
 * `arguments` absent or an object (prompt arguments strings); no `__proto__` member anywhere in
 * the params (the SDK's validation drops one, the strict parser keeps it); and never the
 * continuation of a call waiting for input (`requestState`, `inputResponses`), which the ingress
 * resumes without a new decision. Anything else is undefined: no call.
 */
import { canonicalize, parseJson } from '../../kernel/index.js';
import type { JsonObject, JsonValue } from '../../kernel/index.js';
import { MAX_REQUEST_BYTES, MAX_REQUEST_DEPTH } from '../request.js';
import { retryOf, sessionOf } from './meta.js';

/** The call a bound message asks for. */
export type BoundCall = {
  readonly session: string | null;
  readonly retry: string | null;
} & (
  | {
      readonly method: 'tools/call';
      readonly tool: string;
      /** The arguments in canonical form (RFC 8785). */
      readonly params: string;
    }
  | {
      readonly method: 'prompts/get';
      /** The prompt's bundle name. */
      readonly target: string;
      /** Its arguments in canonical form. */
      readonly params: string;
    }
  | {
      readonly method: 'resources/read';
      readonly uri: string;
    }
  | {
      readonly method: 'completion/complete';
      /** What it completes: a prompt by its bundle name, or a template by its URI template. */
      readonly ref:
        | { readonly type: 'ref/prompt'; readonly name: string }
        | { readonly type: 'ref/resource'; readonly uri: string };
      /** The completion call's parameters (`{argument, value, context?}`) in canonical form. */
      readonly params: string;
    }
);

const isObject = (v: JsonValue | undefined): v is JsonObject =>
  typeof v === 'object' && v !== null && !Array.isArray(v);

/** Whether `v` holds a `__proto__` member at any depth. */
function holdsProto(v: JsonValue): boolean {
  if (Array.isArray(v)) return v.some(holdsProto);
  if (!isObject(v)) return false;
  return Object.keys(v).some((k) => k === '__proto__' || holdsProto(v[k] as JsonValue));
}

/** A map of strings (prompt and context arguments), or undefined. */
function strings(v: JsonValue | undefined): JsonObject | undefined {
  return isObject(v) && Object.values(v).every((x) => typeof x === 'string') ? v : undefined;
}

/** The call the message `bytes` asks for; undefined when they are not one governed MCP request. */
export function boundCallOf(bytes: Uint8Array): BoundCall | undefined {
  let v: JsonValue;
  try {
    v = parseJson(bytes, { maxBytes: MAX_REQUEST_BYTES, maxDepth: MAX_REQUEST_DEPTH });
  } catch {
    return undefined;
  }
  if (!isObject(v) || v['jsonrpc'] !== '2.0' || !isObject(v['params'])) return undefined;
  const id = v['id'];
  if (typeof id !== 'string' && typeof id !== 'number') return undefined;
  const params = v['params'];
  if (holdsProto(params) || 'requestState' in params || 'inputResponses' in params) return undefined;
  const session = sessionOf(params['_meta']);
  const retry = retryOf(params['_meta']);
  if (session === undefined || retry === undefined) return undefined;
  switch (v['method']) {
    case 'tools/call': {
      const name = params['name'];
      const args = params['arguments'];
      if (typeof name !== 'string' || (args !== undefined && !isObject(args))) return undefined;
      return { method: 'tools/call', tool: name, params: canonicalize(args ?? {}), session, retry };
    }
    case 'prompts/get': {
      const name = params['name'];
      const args = params['arguments'] === undefined ? {} : strings(params['arguments']);
      if (typeof name !== 'string' || args === undefined) return undefined;
      return { method: 'prompts/get', target: name, params: canonicalize(args), session, retry };
    }
    case 'resources/read': {
      const uri = params['uri'];
      return typeof uri === 'string' ? { method: 'resources/read', uri, session, retry } : undefined;
    }
    case 'completion/complete': {
      const ref = params['ref'];
      const argument = params['argument'];
      const context = params['context'];
      if (!isObject(ref) || !isObject(argument)) return undefined;
      const { name, value } = argument;
      if (typeof name !== 'string' || typeof value !== 'string') return undefined;
      let contextArgs: JsonObject | undefined;
      if (context !== undefined) {
        if (!isObject(context)) return undefined;
        if (context['arguments'] !== undefined) {
          contextArgs = strings(context['arguments']);
          if (contextArgs === undefined) return undefined;
        }
      }
      const target =
        ref['type'] === 'ref/prompt' && typeof ref['name'] === 'string'
          ? ({ type: 'ref/prompt', name: ref['name'] } as const)
          : ref['type'] === 'ref/resource' && typeof ref['uri'] === 'string'
            ? ({ type: 'ref/resource', uri: ref['uri'] } as const)
            : undefined;
      if (target === undefined) return undefined;
      return {
        method: 'completion/complete',
        ref: target,
        params: canonicalize({
          argument: name,
          value,
          ...(contextArgs === undefined ? {} : { context: contextArgs }),
        }),
        session,
        retry,
      };
    }
    default:
      return undefined;
  }
}
