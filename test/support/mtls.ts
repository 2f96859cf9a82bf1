/**
 * What the transport tests share: the TLS files of a certificate in a development PKI, and one
 * GET through an mTLS Agent that says what happened.
 */
import type { Agent } from 'node:https';
import { request } from 'node:https';
import { pkiPaths } from '../../src/transport/index.js';
import type { TlsFiles } from '../../src/transport/index.js';

/** The CA, certificate and key of `name` under the development PKI `pki`. */
export function pkiFiles(pki: string, name: string): TlsFiles {
  return { ca: pkiPaths(pki).caCert, cert: pkiPaths(pki).cert(name), key: pkiPaths(pki).key(name) };
}

/** One GET of `${url}/who` through `agent`: the status, or the error that refused the server. */
export function getWho(url: string, agent: Agent): Promise<{ status?: number; error?: string }> {
  return new Promise((resolve) => {
    const req = request(`${url}/who`, { agent }, (res) => {
      res.resume();
      res.on('end', () => resolve({ status: res.statusCode ?? 0 }));
    });
    req.on('error', (e: Error) => resolve({ error: e.message }));
    req.end();
  });
}
