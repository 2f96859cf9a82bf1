/**
 * Which storage backend a deployment uses (SPEC §1 deployment shapes): `sqlite` (the embedded
 * default: files under the data directory) or a PostgreSQL URL. Read from `FAILCLOSED_BACKEND`,
 * else `backend` in `failclosed.json`, else `sqlite`. The URL may carry `?schema=NAME` (the
 * schema of failclosed's tables, default `public`); passwords are better left to `PGPASSWORD`
 * or a `.pgpass` file, which the driver reads, than written into the configuration.
 */

/**
 * The URL parameters a backend URL may carry. Others are refused: the driver lets connection
 * string parameters override the pool's own settings (`options` could move the `search_path`
 * away from the schema the writer lock is keyed on; timeouts and keepalives bound how long a
 * dead writer blocks a takeover and how long a statement may hang).
 */
const URL_PARAMETERS: ReadonlySet<string> = new Set([
  'schema',
  'sslmode',
  'sslrootcert',
  'sslcert',
  'sslkey',
  'application_name',
]);

/** A parsed backend choice. */
export type BackendSpec =
  | { readonly kind: 'sqlite' }
  | { readonly kind: 'postgres'; readonly url: string; readonly schema: string | undefined };

/** Parses a backend choice; `TypeError` for anything but `sqlite` or a `postgres://`/`postgresql://` URL. */
export function parseBackendSpec(text: string): BackendSpec {
  if (text === 'sqlite') return { kind: 'sqlite' };
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw new TypeError('backend must be "sqlite" or a postgres:// URL');
  }
  if (url.protocol !== 'postgres:' && url.protocol !== 'postgresql:')
    throw new TypeError('backend must be "sqlite" or a postgres:// URL');
  for (const key of url.searchParams.keys())
    if (!URL_PARAMETERS.has(key))
      throw new TypeError(
        `backend URL parameter ${key} is not accepted (allowed: ${[...URL_PARAMETERS].join(', ')})`,
      );
  const schema = url.searchParams.get('schema') ?? undefined;
  url.searchParams.delete('schema');
  return { kind: 'postgres', url: url.toString(), schema };
}

/** The backend of a deployment: `override`, else `env.FAILCLOSED_BACKEND`, else `configured`, else SQLite. */
export function resolveBackendSpec(
  override: string | undefined,
  env: Readonly<Record<string, string | undefined>>,
  configured: string | undefined,
): BackendSpec {
  return parseBackendSpec(override ?? env['FAILCLOSED_BACKEND'] ?? configured ?? 'sqlite');
}

/** The URL without its password, for messages. */
export function redactedBackend(spec: BackendSpec): string {
  if (spec.kind === 'sqlite') return 'sqlite';
  const url = new URL(spec.url);
  if (url.password !== '') url.password = '***';
  return `${url.toString()}${spec.schema === undefined ? '' : ` (schema ${spec.schema})`}`;
}
