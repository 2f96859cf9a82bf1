/**
 * What a bound MCP message asks for (`boundCallOf`, docs/mcp.md "Through keyless Gates";
 * FC-INV-3): the Control Plane reads the call again from the message a client-key token was
 * signed for, exactly as the ingress reads it; anything else is no call.
 */
import { describe, expect, it } from 'vitest';
import { boundCallOf } from '../../src/gate/index.js';

const bytes = (v: unknown): Uint8Array => Buffer.from(JSON.stringify(v), 'utf8');
const rpc = (method: string, params: unknown) => bytes({ jsonrpc: '2.0', id: 1, method, params });

describe('boundCallOf', () => {
  it('reads a tools/call: tool, canonical arguments (none is {}), session and retry from _meta', () => {
    expect(
      boundCallOf(
        rpc('tools/call', {
          name: 'echo',
          arguments: { b: 1, a: 'x' },
          _meta: {
            'failclosed.dev/session': 's-1',
            'failclosed.dev/retry': 'mcp-0f8fad5b-d9cb-469f-a165-70867728950e',
          },
        }),
      ),
    ).toEqual({
      method: 'tools/call',
      tool: 'echo',
      params: '{"a":"x","b":1}',
      session: 's-1',
      retry: 'mcp-0f8fad5b-d9cb-469f-a165-70867728950e',
    });
    expect(boundCallOf(rpc('tools/call', { name: 'echo' }))).toMatchObject({
      params: '{}',
      session: null,
      retry: null,
    });
  });

  it('reads a prompts/get with its arguments, a resources/read with its URI, a completion', () => {
    expect(boundCallOf(rpc('prompts/get', { name: 'p', arguments: { x: 'y' } }))).toMatchObject({
      method: 'prompts/get',
      target: 'p',
      params: '{"x":"y"}',
    });
    expect(boundCallOf(rpc('resources/read', { uri: 'demo://a' }))).toMatchObject({
      method: 'resources/read',
      uri: 'demo://a',
    });
    expect(
      boundCallOf(
        rpc('completion/complete', {
          ref: { type: 'ref/prompt', name: 'p' },
          argument: { name: 'city', value: 'Ber' },
          context: { arguments: { country: 'DE' } },
        }),
      ),
    ).toEqual({
      method: 'completion/complete',
      ref: { type: 'ref/prompt', name: 'p' },
      params: '{"argument":"city","context":{"country":"DE"},"value":"Ber"}',
      session: null,
      retry: null,
    });
  });

  it.each([
    ['not JSON', Buffer.from('{')],
    ['a batch', bytes([{ jsonrpc: '2.0', id: 1, method: 'tools/call', params: { name: 'e' } }])],
    ['another method', rpc('tools/list', {})],
    ['no params', bytes({ jsonrpc: '2.0', id: 1, method: 'tools/call' })],
    ['a tool name that is no string', rpc('tools/call', { name: 1 })],
    ['arguments that are no object', rpc('tools/call', { name: 'e', arguments: [1] })],
    ['a malformed session', rpc('tools/call', { name: 'e', _meta: { 'failclosed.dev/session': 'a b' } })],
    ['a malformed retry', rpc('tools/call', { name: 'e', _meta: { 'failclosed.dev/retry': 'req-1' } })],
    [
      'a duplicate key',
      Buffer.from('{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"a","name":"b"}}'),
    ],
    ['a resources/read without a URI', rpc('resources/read', {})],
    [
      'a notification (no id: the SDK runs nothing)',
      bytes({ jsonrpc: '2.0', method: 'tools/call', params: { name: 'e' } }),
    ],
    ['null arguments (the SDK refuses them)', rpc('tools/call', { name: 'e', arguments: null })],
    ['prompt arguments that are no strings', rpc('prompts/get', { name: 'p', arguments: { n: 1 } })],
    [
      'a __proto__ member (the SDK drops it)',
      Buffer.from(
        '{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"e","arguments":{"__proto__":{"x":1},"b":2}}}',
      ),
    ],
    ['the continuation of a call waiting for input', rpc('tools/call', { name: 'e', requestState: 'abc' })],
    ['input responses', rpc('tools/call', { name: 'e', inputResponses: {} })],
    [
      'a completion without its argument',
      rpc('completion/complete', { ref: { type: 'ref/prompt', name: 'p' } }),
    ],
    [
      'a completion of an unknown ref',
      rpc('completion/complete', { ref: { type: 'ref/x' }, argument: { name: 'a', value: 'b' } }),
    ],
  ])('is no call: %s', (_what, b) => {
    expect(boundCallOf(b)).toBeUndefined();
  });
});
