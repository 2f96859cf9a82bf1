/**
 * `pin-mcp --url` options for an https upstream's trust and an OAuth bearer, argv → spec:
 * `--ca FILE` (the PEM CA the upstream's certificate must chain to, written into the tool files:
 * a CA is not a secret), `--client-cert-ref NAME --client-key-ref NAME` (mutual TLS, by secret
 * reference), and `--oauth-token-url URL --oauth-client-id ID --oauth-client-secret-ref NAME
 * [--oauth-scope S] [--oauth-audience A] [--oauth-resource R] [--oauth-ca FILE]` (client
 * credentials). docs/mcp.md "HTTP upstreams".
 */
import { readFileSync } from 'node:fs';
import { parseCaPem, parseUpstreamOAuth, parseUpstreamTls } from '../execution/lean.js';
import type { UpstreamOAuthSpec, UpstreamTlsSpec } from '../execution/index.js';

/** The CLI's option declarations for these flags (merged into `parseArgs`). */
export const PIN_TRUST_OPTIONS = {
  ca: { type: 'string' },
  'client-cert-ref': { type: 'string' },
  'client-key-ref': { type: 'string' },
  'oauth-token-url': { type: 'string' },
  'oauth-client-id': { type: 'string' },
  'oauth-client-secret-ref': { type: 'string' },
  'oauth-scope': { type: 'string' },
  'oauth-audience': { type: 'string' },
  'oauth-resource': { type: 'string' },
  'oauth-ca': { type: 'string' },
} as const;

type Values = Readonly<Record<string, unknown>>;

const str = (v: Values, k: string): string | undefined => (typeof v[k] === 'string' ? v[k] : undefined);

function readCa(file: string, flag: string): string {
  const pem = readFileSync(file, 'utf8');
  if (parseCaPem(pem) === undefined) throw new Error(`${flag} must name a file of PEM certificates only`);
  return pem;
}

/** The `tls` and `oauth` of an upstream from the flags; throws on bad usage. */
export function pinTrustOf(v: Values): { tls?: UpstreamTlsSpec; oauth?: UpstreamOAuthSpec } {
  const ca = str(v, 'ca');
  const cert = str(v, 'client-cert-ref');
  const key = str(v, 'client-key-ref');
  let tls: UpstreamTlsSpec | undefined;
  if (ca !== undefined || cert !== undefined || key !== undefined) {
    const raw = {
      ...(ca === undefined ? {} : { ca: readCa(ca, '--ca') }),
      ...(cert === undefined ? {} : { client_cert_ref: cert }),
      ...(key === undefined ? {} : { client_key_ref: key }),
    };
    tls = parseUpstreamTls(raw);
    if (tls === undefined)
      throw new Error(
        '--client-cert-ref and --client-key-ref go together and name secrets ([A-Z][A-Z0-9_]*)',
      );
  }
  const tokenUrl = str(v, 'oauth-token-url');
  const flags = Object.keys(v).filter((k) => k.startsWith('oauth-') && v[k] !== undefined);
  let oauth: UpstreamOAuthSpec | undefined;
  if (flags.length > 0) {
    const oauthCa = str(v, 'oauth-ca');
    const raw: Record<string, string | undefined> = {
      token_url: tokenUrl,
      client_id: str(v, 'oauth-client-id'),
      client_secret_ref: str(v, 'oauth-client-secret-ref'),
      scope: str(v, 'oauth-scope'),
      audience: str(v, 'oauth-audience'),
      resource: str(v, 'oauth-resource'),
      ca: oauthCa === undefined ? undefined : readCa(oauthCa, '--oauth-ca'),
    };
    const parsed = parseUpstreamOAuth(
      Object.fromEntries(Object.entries(raw).filter(([, x]) => x !== undefined)),
    );
    if (parsed === undefined || parsed === null)
      throw new Error(
        '--oauth-token-url URL, --oauth-client-id ID and --oauth-client-secret-ref NAME are needed together',
      );
    oauth = parsed;
  }
  return { ...(tls === undefined ? {} : { tls }), ...(oauth === undefined ? {} : { oauth }) };
}
