/** One signed request at a fixed time, shared by the request-format tests. */
import { buildSignedRequest } from '../../src/client/index.js';
import { generateSigningKey } from '../../src/kernel/signing/index.js';

export const key = generateSigningKey();
export const T = Date.parse('2025-06-01T12:00:00.000Z');
export const req = buildSignedRequest({
  key,
  identity: 'a',
  tenant: 't',
  action: 'echo',
  parameters: { n: 1 },
  timestampMs: T,
});
/** The JSON bytes of any value. */
export const bytes = (v: unknown): Buffer => Buffer.from(JSON.stringify(v));
