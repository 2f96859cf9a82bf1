/**
 * Strict validation of every tool's adapter spec when a bundle is loaded (build, activation, and
 * every load from the store): policy that cannot run never activates. A closed JSON Schema per
 * adapter type (ajv, `additionalProperties: false` at every level) catches unknown types,
 * misspelled keys, wrong types and out-of-range limits; the semantic checks a schema cannot
 * express follow (argv placeholders naming parameters, grantable paths, builtin names).
 * The Execution Layer still re-parses every spec at run time (defence in depth).
 * See docs/adapters.md and docs/policy.md. (SPEC §6 "Policy as code", OE-INV-005/006/012/024)
 */
import { X509Certificate } from 'node:crypto';
import { tmpdir } from 'node:os';
import { posix } from 'node:path';
import type { ErrorObject, ValidateFunction } from 'ajv';
import { Ajv2020 } from 'ajv/dist/2020.js';
import {
  canonicalize,
  CLIENT_REQUEST_KINDS,
  isLoopbackAddress,
  mcpEntryKindOf,
  mcpPinnedKindOf,
  MAX_COMPLETION_VALUE_LENGTH,
  MAX_OUTPUT_BYTES,
  uriTemplatePattern,
  uriTemplateVariables,
  uriTemplatePrefix,
  parseEgressDestination,
  PINNED_FIELDS_OF,
  pinMcpDefinition,
} from '../kernel/index.js';
import { compileOutputSchema } from './json-schema.js';
import type { JsonObject, JsonValue } from '../kernel/index.js';
import type { AdapterConfig, ToolSpec } from './types.js';

/** Longest tool run an envelope may grant: inside the Gate's 30 s wait for the Execution Layer. */
export const MAX_TOOL_TIMEOUT_MS = 25_000;

/**
 * Longest run a background call's envelope may grant (`limits.background_timeout_ms`, docs/jobs.md):
 * no caller waits on it, so it is bounded by the policy only.
 */
export const MAX_BACKGROUND_TIMEOUT_MS = 3_600_000;

/** Adapter types a tool's `adapter` may name. */
export const ADAPTER_TYPES = ['builtin', 'command', 'mcp', 'http'] as const;
/** Adapter types a tool's `preview.dry_run` may name (computed by the Control Plane). */
export const DRY_RUN_TYPES = ['describe'] as const;

/** Options of {@link checkAdapterSpecs}. */
export interface AdapterCheckOptions {
  /**
   * Names of the in-process functions the Execution Layer offers. When given, a `builtin` spec
   * must name one (its `function`, else the tool name); when absent, names are not checked.
   */
  readonly builtins?: readonly string[];
}

const PLACEHOLDER = /\{([A-Za-z_][A-Za-z0-9_]{0,63})\}/g;
const RESERVED_ENV = new Set(['PATH', 'HOME', 'LANG', 'TMPDIR']);
const NO_NUL = '^[^\\u0000]*$';

const LIMITS = {
  type: 'object',
  additionalProperties: false,
  properties: {
    timeout_ms: { type: 'integer', minimum: 1, maximum: MAX_TOOL_TIMEOUT_MS },
    background_timeout_ms: { type: 'integer', minimum: 1, maximum: MAX_BACKGROUND_TIMEOUT_MS },
    max_output_bytes: { type: 'integer', minimum: 1, maximum: MAX_OUTPUT_BYTES },
    memory_bytes: { type: 'integer', minimum: 1, maximum: Number.MAX_SAFE_INTEGER },
    network: { type: 'boolean' },
    egress: {
      type: 'array',
      maxItems: 64,
      items: { type: 'string', minLength: 1, maxLength: 512, pattern: NO_NUL },
    },
    fs_read: { $ref: '#/$defs/paths' },
    fs_write: { $ref: '#/$defs/paths' },
  },
} as const;

const DEFS = {
  paths: {
    type: 'array',
    maxItems: 64,
    items: { type: 'string', minLength: 2, maxLength: 512, pattern: NO_NUL },
  },
  limits: LIMITS,
} as const;

const SECRET_REF = { type: 'string', pattern: '^[A-Z][A-Z0-9_]{0,63}$' } as const;
const PEM_CA = { type: 'string', minLength: 1, maxLength: 65536 } as const;
const PRINTABLE = { type: 'string', minLength: 1, maxLength: 1024, pattern: '^[\\x20-\\x7e]*$' } as const;

/** An https upstream's trust: a pinned CA (PEM, not a secret), a client certificate by reference. */
const TLS = {
  type: 'object',
  additionalProperties: false,
  properties: { ca: PEM_CA, client_cert_ref: SECRET_REF, client_key_ref: SECRET_REF },
  dependentRequired: { client_cert_ref: ['client_key_ref'], client_key_ref: ['client_cert_ref'] },
} as const;

/** OAuth client credentials for an upstream's bearer (RFC 6749 §4.4, RFC 8707). */
const OAUTH = {
  type: 'object',
  additionalProperties: false,
  required: ['token_url', 'client_id', 'client_secret_ref'],
  properties: {
    token_url: { type: 'string', minLength: 8, maxLength: 2048, pattern: NO_NUL },
    client_id: PRINTABLE,
    client_secret_ref: SECRET_REF,
    scope: PRINTABLE,
    audience: PRINTABLE,
    resource: PRINTABLE,
    ca: PEM_CA,
  },
} as const;

const SCHEMAS: Readonly<Record<string, object>> = {
  builtin: {
    type: 'object',
    additionalProperties: false,
    required: ['type'],
    properties: {
      type: { const: 'builtin' },
      function: { type: 'string', pattern: '^[A-Za-z_][A-Za-z0-9_.-]{0,63}$' },
      limits: { $ref: '#/$defs/limits' },
    },
    $defs: DEFS,
  },
  command: {
    type: 'object',
    additionalProperties: false,
    required: ['type', 'argv'],
    properties: {
      type: { const: 'command' },
      argv: {
        type: 'array',
        minItems: 1,
        maxItems: 256,
        items: { type: 'string', maxLength: 65536, pattern: NO_NUL },
      },
      allow_leading_dash: {
        type: 'array',
        uniqueItems: true,
        items: { type: 'string', pattern: '^[A-Za-z_][A-Za-z0-9_]{0,63}$' },
      },
      env_secrets: {
        type: 'object',
        maxProperties: 32,
        propertyNames: { pattern: '^[A-Z_][A-Z0-9_]{0,63}$' },
        additionalProperties: { type: 'string', pattern: '^[A-Z][A-Z0-9_]{0,63}$' },
      },
      limits: { $ref: '#/$defs/limits' },
    },
    $defs: DEFS,
  },
  http: {
    type: 'object',
    additionalProperties: false,
    required: ['type', 'method', 'url'],
    properties: {
      type: { const: 'http' },
      method: { enum: ['GET', 'POST', 'PUT', 'PATCH', 'DELETE'] },
      url: { type: 'string', minLength: 8, maxLength: 2048, pattern: NO_NUL },
      headers: {
        type: 'object',
        maxProperties: 32,
        propertyNames: { pattern: "^[A-Za-z0-9!#$%&'*+.^_`|~-]{1,64}$" },
        additionalProperties: { type: 'string', maxLength: 8192, pattern: '^[^\\u0000\\r\\n]*$' },
      },
      body: {},
      tls: TLS,
      limits: { $ref: '#/$defs/limits' },
    },
    $defs: DEFS,
  },
  mcp: {
    type: 'object',
    additionalProperties: false,
    required: ['type', 'server', 'definition', 'definition_sha256'],
    properties: {
      type: { const: 'mcp' },
      server: { type: 'string', pattern: '^[a-z][a-z0-9_-]{0,31}$' },
      command: {
        type: 'array',
        minItems: 1,
        maxItems: 256,
        items: { type: 'string', maxLength: 65536, pattern: NO_NUL },
      },
      url: { type: 'string', minLength: 8, maxLength: 2048, pattern: NO_NUL },
      headers: {
        type: 'object',
        maxProperties: 32,
        propertyNames: { pattern: "^[A-Za-z0-9!#$%&'*+.^_`|~-]{1,64}$" },
        additionalProperties: {
          anyOf: [
            { type: 'string', maxLength: 8192, pattern: '^[^\\u0000\\r\\n]*$' },
            {
              type: 'object',
              additionalProperties: false,
              required: ['secret'],
              properties: {
                secret: { type: 'string', pattern: '^[A-Z][A-Z0-9_]{0,63}$' },
                prefix: { type: 'string', maxLength: 256, pattern: '^[^\\u0000\\r\\n]*$' },
              },
            },
          ],
        },
      },
      tls: TLS,
      oauth: OAUTH,
      tool: { type: 'string', minLength: 1, maxLength: 128 },
      prompt: { type: 'string', minLength: 1, maxLength: 128 },
      resource: { type: 'string', minLength: 1, maxLength: 2048, pattern: NO_NUL },
      resource_template: { type: 'string', minLength: 1, maxLength: 2048, pattern: NO_NUL },
      // Beside prompt or resource_template: the entry completes its arguments or variables.
      completion: { const: true },
      // The fields each kind pins (kernel PINNED_FIELDS_OF): checked by kind in checkMcp.
      definition: {
        type: 'object',
        additionalProperties: false,
        required: ['name'],
        properties: {
          name: { type: 'string', minLength: 1, maxLength: 128 },
          uriTemplate: { type: 'string' },
          title: { type: 'string' },
          description: { type: 'string' },
          inputSchema: { type: 'object' },
          outputSchema: { type: 'object' },
          annotations: { type: 'object' },
          arguments: { type: 'array', maxItems: 64, items: { type: 'object' } },
          uri: { type: 'string' },
          mimeType: { type: 'string' },
        },
      },
      definition_sha256: { type: 'string', pattern: '^[0-9a-f]{64}$' },
      client_requests: {
        type: 'array',
        uniqueItems: true,
        maxItems: CLIENT_REQUEST_KINDS.length,
        items: { enum: [...CLIENT_REQUEST_KINDS] },
      },
      limits: { $ref: '#/$defs/limits' },
    },
    $defs: DEFS,
  },
  describe: {
    type: 'object',
    additionalProperties: false,
    required: ['type'],
    properties: {
      type: { const: 'describe' },
      objects: { type: 'string', minLength: 1 },
      cost_usd: { type: 'string', minLength: 1 },
      cost_cents: { type: 'string', minLength: 1 },
    },
  },
};

let compiled: Map<string, ValidateFunction> | undefined;

function validators(): Map<string, ValidateFunction> {
  if (compiled === undefined) {
    const ajv = new Ajv2020({ strict: true, allErrors: true });
    compiled = new Map(Object.entries(SCHEMAS).map(([type, schema]) => [type, ajv.compile(schema)]));
  }
  return compiled;
}

/** `adapter.limits.timeout_ms` from a JSON pointer under `base`. */
function pathOf(base: string, pointer: string): string {
  const parts = pointer
    .split('/')
    .slice(1)
    .map((p) => p.replace(/~1/g, '/').replace(/~0/g, '~'));
  return [base, ...parts.map((p) => (/^[0-9]+$/.test(p) ? `[${p}]` : `.${p}`))]
    .join('')
    .replace(/\.\[/g, '[');
}

function describeError(base: string, e: ErrorObject): string {
  const at = pathOf(base, e.instancePath);
  if (e.keyword === 'additionalProperties')
    return `${at}: unknown key "${String((e.params as { additionalProperty: string }).additionalProperty)}"`;
  if (e.keyword === 'required')
    return `${at}: missing key "${String((e.params as { missingProperty: string }).missingProperty)}"`;
  if (e.keyword === 'propertyNames')
    return `${at}: key "${String((e.params as { propertyName: string }).propertyName)}" is not allowed`;
  if (e.keyword === 'pattern' && e.propertyName !== undefined) return `${at}: bad key`;
  return `${at}: ${e.message ?? 'is invalid'}`;
}

function isObject(v: JsonValue | undefined): v is JsonObject {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** The JSON Schema of parameter `name` of a tool, or undefined when it declares none. */
function paramSchema(tool: ToolSpec, name: string): JsonValue | undefined {
  const props = tool.parameters['properties'];
  return isObject(props) && Object.hasOwn(props, name) ? props[name] : undefined;
}

function isRequired(tool: ToolSpec, name: string): boolean {
  const req = tool.parameters['required'];
  return Array.isArray(req) && req.includes(name);
}

function isGrantablePath(p: string): boolean {
  return p.startsWith('/') && p !== '/' && posix.normalize(p) === p && !p.endsWith('/');
}

function checkLimits(at: string, spec: AdapterConfig, type: string, out: string[]): void {
  const limits = spec['limits'];
  if (!isObject(limits)) return;
  for (const key of ['fs_read', 'fs_write'] as const) {
    const paths = limits[key];
    if (!Array.isArray(paths)) continue;
    paths.forEach((p, i) => {
      if (typeof p === 'string' && !isGrantablePath(p))
        out.push(`${at}.limits.${key}[${i}]: must be an absolute normalized path other than /`);
      // The sandbox refuses these at every call: every call's egress proxy socket lives there.
      else if (
        typeof p === 'string' &&
        (type === 'command' || type === 'mcp') &&
        [...new Set(['/tmp', tmpdir()])].some(
          (d) => p === d || d.startsWith(`${p}/`) || p.startsWith(`${d}/failclosed-egress-`),
        )
      )
        out.push(
          `${at}.limits.${key}[${i}]: must not be or contain the temporary directory, nor lie in the egress runtime directory`,
        );
    });
  }
  const egress = limits['egress'];
  // The egress proxy enforces exactly host:port; anything else would be refused at every call.
  if ((type === 'command' || type === 'mcp') && Array.isArray(egress))
    egress.forEach((e, i) => {
      if (typeof e === 'string' && parseEgressDestination(e) === undefined)
        out.push(
          `${at}.limits.egress[${i}]: must be host:port (a name, an IPv4 address or [IPv6], no scheme or wildcard)`,
        );
    });
  // The sandbox never shares the host network: network goes only to listed destinations through
  // the Execution Layer's egress proxy, so network without a list would be refused at every call.
  if (
    (type === 'command' || type === 'mcp') &&
    limits['network'] === true &&
    (!Array.isArray(egress) || egress.length === 0)
  )
    out.push(`${at}.limits.egress: network needs an egress allowlist of host:port entries (OE-INV-011)`);
}

function checkCommand(at: string, tool: ToolSpec, spec: AdapterConfig, out: string[]): void {
  const raw = spec['argv'];
  if (!Array.isArray(raw)) return;
  const argv = raw as readonly JsonValue[];
  const program = argv[0];
  if (typeof program === 'string' && (!program.startsWith('/') || program.includes('{')))
    out.push(`${at}.argv[0]: must be a literal absolute path (got "${program.slice(0, 80)}")`);
  else if (typeof program === 'string' && posix.normalize(program) !== program)
    out.push(`${at}.argv[0]: must be a normalized absolute path`);
  const used = new Set<string>();
  argv.forEach((el, i) => {
    if (typeof el !== 'string') return;
    for (const m of el.matchAll(PLACEHOLDER)) {
      const name = m[1] ?? '';
      used.add(name);
      const schema = paramSchema(tool, name);
      if (schema === undefined) {
        out.push(`${at}.argv[${i}]: placeholder {${name}} names no parameter`);
        continue;
      }
      // A placeholder renders a string or a safe integer; anything else fails at every call.
      const t = isObject(schema) ? schema['type'] : undefined;
      if (t !== undefined && t !== 'string' && t !== 'integer')
        out.push(`${at}.argv[${i}]: placeholder {${name}} needs a string or integer parameter`);
      if (!isRequired(tool, name))
        out.push(`${at}.argv[${i}]: placeholder {${name}} names a parameter that is not required`);
    }
  });
  const dash = spec['allow_leading_dash'];
  if (Array.isArray(dash))
    dash.forEach((n, i) => {
      if (typeof n === 'string' && !used.has(n))
        out.push(`${at}.allow_leading_dash[${i}]: "${n}" is not a placeholder of argv`);
    });
  const env = spec['env_secrets'];
  if (isObject(env))
    for (const name of Object.keys(env))
      if (name.startsWith('LD_') || RESERVED_ENV.has(name))
        out.push(`${at}.env_secrets: "${name}" may not be set in the sandbox`);
}

const HTTP_ORIGIN = /^(https?):\/\/([^/?#{}@]+)(\/[^#\s]*)$/;

/**
 * An `http` spec: scheme, host and port literal, placeholders only in path and query (never a
 * secret there), every placeholder a required string/integer parameter, and its destination on
 * the spec's own egress allowlist with network granted (the Execution Layer checks it again
 * against the envelope's).
 */
/**
 * The `url`'s origin is literal and its destination is on the spec's own egress allowlist with
 * network granted (the Execution Layer checks it again against the envelope's). The url's match,
 * or undefined when it is not an http(s) url.
 */
function checkUrlDestination(
  at: string,
  spec: AdapterConfig,
  out: string[],
  url: JsonValue | undefined = spec['url'],
  field = 'url',
): RegExpExecArray | undefined {
  if (typeof url !== 'string') return undefined;
  const m = HTTP_ORIGIN.exec(url);
  if (m === null) {
    out.push(`${at}.${field}: must be http(s)://HOST[:PORT]/path with a literal host and port`);
    return undefined;
  }
  const authority = (m[2] ?? '').toLowerCase();
  const port = /:\d+$/.test(authority) && !authority.endsWith(']') ? '' : m[1] === 'http' ? ':80' : ':443';
  const dest = parseEgressDestination(`${authority}${port}`);
  if (dest === undefined) out.push(`${at}.${field}: the host and port are not a valid host:port`);
  const limits = isObject(spec['limits']) ? spec['limits'] : {};
  const egress = Array.isArray(limits['egress']) ? limits['egress'] : [];
  if (
    dest !== undefined &&
    (limits['network'] !== true ||
      !egress.some((e) => typeof e === 'string' && parseEgressDestination(e)?.key === dest.key))
  )
    out.push(`${at}.limits.egress: must grant network and list ${dest.key}, the ${field}'s destination`);
  return m;
}

/**
 * `tls` and `oauth` of an upstream: TLS trust only for an `https` url, a CA that is PEM
 * certificates only (each parsed), a token endpoint that is literal, on the egress allowlist,
 * and `https` (plain `http` only to a literal loopback address), and no bundle `authorization`
 * header next to the OAuth bearer.
 */
function checkUpstreamTrust(at: string, spec: AdapterConfig, out: string[]): void {
  const tls = spec['tls'];
  if (tls !== undefined && (typeof spec['url'] !== 'string' || !spec['url'].startsWith('https://')))
    out.push(`${at}.tls: only an https url takes tls`);
  if (isObject(tls) && tls['ca'] !== undefined && !isCaPem(tls['ca']))
    out.push(`${at}.tls.ca: must be PEM certificates and nothing else`);
  const oauth = spec['oauth'];
  if (!isObject(oauth)) return;
  if (oauth['ca'] !== undefined && !isCaPem(oauth['ca']))
    out.push(`${at}.oauth.ca: must be PEM certificates and nothing else`);
  const tokenUrl = oauth['token_url'];
  if (typeof tokenUrl === 'string' && /[{}]/.test(tokenUrl))
    out.push(`${at}.oauth.token_url: is literal (no placeholders)`);
  else {
    const m = checkUrlDestination(at, spec, out, tokenUrl, 'oauth.token_url');
    const host = (m?.[2] ?? '').replace(/:\d+$/, '').replace(/^\[|\]$/g, '');
    if (m !== null && m !== undefined && m[1] === 'http' && !(host.startsWith('127.') || host === '::1'))
      out.push(`${at}.oauth.token_url: must be https (plain http only to a literal loopback address)`);
  }
  const headers = spec['headers'];
  if (isObject(headers) && Object.keys(headers).some((h) => h.toLowerCase() === 'authorization'))
    out.push(`${at}.headers.authorization: the OAuth bearer is the upstream's authorization`);
}

/** Whether `v` is one or more PEM certificates, each a parseable X.509 certificate, and nothing else. */
function isCaPem(v: JsonValue): boolean {
  if (typeof v !== 'string') return false;
  const re = /-----BEGIN CERTIFICATE-----[A-Za-z0-9+/=\s]+-----END CERTIFICATE-----/g;
  const blocks = v.match(re) ?? [];
  if (blocks.length === 0 || v.replace(re, '').trim() !== '') return false;
  try {
    for (const b of blocks) new X509Certificate(b);
    return true;
  } catch {
    return false;
  }
}

function checkHttp(at: string, tool: ToolSpec, spec: AdapterConfig, out: string[]): void {
  checkUpstreamTrust(at, spec, out);
  const m = checkUrlDestination(at, spec, out);
  if (m === undefined) return;
  const needs = (where: string, text: string, secretsAllowed: boolean): void => {
    for (const p of text.matchAll(/\{(?:secret:([A-Z][A-Z0-9_]{0,63})|([A-Za-z_][A-Za-z0-9_]{0,63}))\}/g)) {
      if (p[1] !== undefined) {
        if (!secretsAllowed) out.push(`${where}: a secret may not be placed in the url`);
        continue;
      }
      const name = p[2] ?? '';
      const schema = paramSchema(tool, name);
      const t = isObject(schema) ? schema['type'] : undefined;
      if (schema === undefined) out.push(`${where}: placeholder {${name}} names no parameter`);
      else if (t !== undefined && t !== 'string' && t !== 'integer')
        out.push(`${where}: placeholder {${name}} needs a string or integer parameter`);
      else if (!isRequired(tool, name))
        out.push(`${where}: placeholder {${name}} names a parameter that is not required`);
    }
  };
  needs(`${at}.url`, m[3] ?? '', false);
  const headers = spec['headers'];
  if (isObject(headers))
    for (const [name, value] of Object.entries(headers)) {
      if (['host', 'content-length', 'transfer-encoding', 'connection'].includes(name.toLowerCase()))
        out.push(`${at}.headers.${name}: is set by failclosed`);
      if (typeof value === 'string') needs(`${at}.headers.${name}`, value, true);
    }
}

/** Headers the MCP Streamable HTTP transport (or HTTP itself) manages: a bundle may not set them. */
const MCP_RESERVED_HEADERS = [
  'host',
  'content-length',
  'transfer-encoding',
  'connection',
  'accept',
  'content-type',
  'last-event-id',
  'mcp-session-id',
  'mcp-protocol-version',
  'mcp-method',
  'mcp-name',
];

/**
 * A Streamable HTTP upstream (`url`): a literal `http(s)://HOST[:PORT]/path` whose destination
 * the spec's own egress allowlist lists with network granted, no filesystem grants (nothing runs
 * in a sandbox), no header failclosed or the MCP transport sets.
 */
function checkMcpUrl(at: string, spec: AdapterConfig, out: string[]): void {
  const url = spec['url'];
  if (typeof url === 'string' && /[{}]/.test(url))
    out.push(`${at}.url: an upstream url is literal (no placeholders)`);
  else checkUrlDestination(at, spec, out);
  const limits = isObject(spec['limits']) ? spec['limits'] : {};
  for (const key of ['fs_read', 'fs_write'] as const)
    if (Array.isArray(limits[key]) && limits[key].length > 0)
      out.push(`${at}.limits.${key}: an HTTP upstream runs in no sandbox: no filesystem grants`);
  const headers = spec['headers'];
  if (isObject(headers))
    for (const name of Object.keys(headers))
      if (MCP_RESERVED_HEADERS.includes(name.toLowerCase()))
        out.push(`${at}.headers.${name}: is set by failclosed or the MCP transport`);
  // A credential (an OAuth bearer, a secret header) crosses a network only inside verified TLS:
  // over plain http it goes to whoever answers at that address. Loopback is the one exception.
  const secretHeader = isObject(headers) && Object.values(headers).some((v) => isObject(v));
  if (typeof url === 'string' && (spec['oauth'] !== undefined || secretHeader)) {
    let plain = false;
    try {
      const u = new URL(url);
      const host = u.hostname.replace(/^\[|\]$/g, '');
      plain = u.protocol === 'http:' && !isLoopbackAddress(host);
    } catch {
      // A malformed url is reported by the destination check.
    }
    if (plain)
      out.push(
        `${at}.url: an upstream given a credential (oauth, a secret header) must be https, or a literal loopback address`,
      );
  }
}

function checkMcp(at: string, tool: ToolSpec, spec: AdapterConfig, out: string[]): void {
  if ((spec['command'] === undefined) === (spec['url'] === undefined))
    out.push(`${at}: an MCP upstream has exactly one of command (stdio) and url (Streamable HTTP)`);
  if (spec['url'] !== undefined) {
    checkMcpUrl(at, spec, out);
    checkUpstreamTrust(at, spec, out);
  } else
    for (const key of ['headers', 'tls', 'oauth'])
      if (spec[key] !== undefined) out.push(`${at}.${key}: only an HTTP upstream (url) takes ${key}`);
  const command = spec['command'];
  const program: JsonValue | undefined = Array.isArray(command)
    ? (command as readonly JsonValue[])[0]
    : undefined;
  if (typeof program === 'string' && (!program.startsWith('/') || posix.normalize(program) !== program))
    out.push(`${at}.command[0]: must be a literal normalized absolute path`);
  const kind = mcpEntryKindOf(spec);
  const pinnedKind = mcpPinnedKindOf(spec);
  if (kind === undefined)
    out.push(
      spec['completion'] === undefined
        ? `${at}: an MCP entry names exactly one of tool, prompt (its name), resource (its URI) and resource_template`
        : `${at}: a completion entry names exactly one of prompt (its name) and resource_template`,
    );
  if (spec['client_requests'] !== undefined && kind !== 'tool')
    out.push(`${at}.client_requests: only a tool's upstream may ask the client (sampling, elicitation)`);
  const definition = spec['definition'];
  if (isObject(definition) && kind !== undefined && pinnedKind !== undefined) {
    const fields: readonly string[] = PINNED_FIELDS_OF[pinnedKind];
    for (const k of Object.keys(definition))
      if (!fields.includes(k)) out.push(`${at}.definition.${k}: is not pinned for an MCP ${pinnedKind}`);
    if (kind === 'tool' && definition['name'] !== spec['tool'])
      out.push(`${at}.definition.name: must equal the upstream tool name`);
    if (kind === 'tool' && !isObject(definition['inputSchema']))
      out.push(`${at}.definition.inputSchema: a tool's definition has its input schema`);
    if (kind === 'prompt') checkMcpPrompt(at, tool, spec, definition, out);
    if (kind === 'resource') checkMcpResource(at, tool, spec, definition, out);
    if (kind === 'template') checkMcpTemplate(at, tool, spec, definition, out);
    if (kind === 'completion') checkMcpCompletion(at, tool, spec, definition, out);
    let pinned: string | undefined;
    try {
      pinned = pinMcpDefinition(definition, fields).sha256;
    } catch {
      out.push(`${at}.definition: is not strict JSON`);
    }
    if (pinned !== undefined && pinned !== spec['definition_sha256'])
      out.push(`${at}.definition_sha256: is not the SHA-256 of the canonical definition`);
    // The adapter validates every result against it: one it cannot compile would deny every call.
    if (definition['outputSchema'] !== undefined)
      try {
        compileOutputSchema(definition['outputSchema']);
      } catch (err) {
        out.push(
          `${at}.definition.outputSchema: failclosed cannot check results against it (${err instanceof Error ? err.message : 'does not compile'})`,
        );
      }
  }
  // Everything an upstream says comes from outside: its output always taints the session (OE-INV-013).
  if (tool.untrusted_output !== true) out.push(`${at}: an MCP tool must set untrusted_output: true`);
}

/** The pinned definition is the prompt the entry names. */
function checkNamesPrompt(at: string, spec: AdapterConfig, definition: JsonObject, out: string[]): void {
  if (definition['name'] !== spec['prompt'])
    out.push(`${at}.definition.name: must equal the upstream prompt name`);
}

/**
 * The pinned definition is the template the entry names; its variables, when it is one
 * failclosed can bind (RFC 6570 level 1), else undefined (and reported).
 */
function checkNamesTemplate(
  at: string,
  spec: AdapterConfig,
  definition: JsonObject,
  out: string[],
): { readonly template: string } | undefined {
  const template = spec['resource_template'];
  if (definition['uriTemplate'] !== template)
    out.push(`${at}.definition.uriTemplate: must equal the upstream URI template`);
  if (typeof template !== 'string') return undefined;
  if (uriTemplateVariables(template) === undefined) {
    out.push(`${at}.resource_template: only {name} variables (RFC 6570 level 1) can be pinned`);
    return undefined;
  }
  return { template };
}

/**
 * A pinned prompt: its definition names it, and the entry's parameters are exactly its
 * arguments, each a string (MCP prompt arguments are strings), required as the prompt says.
 */
function checkMcpPrompt(
  at: string,
  tool: ToolSpec,
  spec: AdapterConfig,
  definition: JsonObject,
  out: string[],
): void {
  checkNamesPrompt(at, spec, definition, out);
  const expected = promptParameters(definition['arguments']);
  if (expected === undefined) out.push(`${at}.definition.arguments: each argument needs a string name`);
  else if (canonicalize(expected) !== canonicalize(tool.parameters))
    out.push(`${at}: the parameters of a prompt must be its pinned arguments, each a string`);
}

/**
 * A pinned resource: its definition's URI is the entry's, and the entry's parameters are
 * exactly `{uri}` fixed to it, so the envelope binds the URI read (and Cedar sees it).
 */
function checkMcpResource(
  at: string,
  tool: ToolSpec,
  spec: AdapterConfig,
  definition: JsonObject,
  out: string[],
): void {
  if (definition['uri'] !== spec['resource'])
    out.push(`${at}.definition.uri: must equal the upstream resource URI`);
  if (typeof spec['resource'] === 'string')
    if (canonicalize(resourceParameters(spec['resource'])) !== canonicalize(tool.parameters))
      out.push(`${at}: the parameters of a resource must be exactly {uri} fixed to its URI`);
}

/**
 * A pinned resource template: its definition's template is the entry's, a level-1 template
 * failclosed can bind, and the entry's parameters are exactly `{uri}` matching it, so the
 * envelope binds the URI read (and Cedar sees it).
 */
function checkMcpTemplate(
  at: string,
  tool: ToolSpec,
  spec: AdapterConfig,
  definition: JsonObject,
  out: string[],
): void {
  const named = checkNamesTemplate(at, spec, definition, out);
  if (named === undefined) return;
  const expected = templateParameters(named.template);
  // Never undefined here (the same test as the variables'); were it, the entry would not load.
  if (expected === undefined || canonicalize(expected) !== canonicalize(tool.parameters))
    out.push(`${at}: the parameters of a resource template must be exactly {uri} matching it`);
}

/**
 * A completion entry: its definition is the pinned prompt's or template's (named as the entry
 * names it), and its parameters are exactly {@link completionParameters} of the prompt's
 * argument names or the template's variable names.
 */
function checkMcpCompletion(
  at: string,
  tool: ToolSpec,
  spec: AdapterConfig,
  definition: JsonObject,
  out: string[],
): void {
  let names: readonly string[] | undefined;
  if (typeof spec['prompt'] === 'string') {
    checkNamesPrompt(at, spec, definition, out);
    names = promptArgumentNames(definition['arguments']);
    if (names === undefined) out.push(`${at}.definition.arguments: each argument needs a string name`);
  } else if (typeof spec['resource_template'] === 'string') {
    const named = checkNamesTemplate(at, spec, definition, out);
    names = named === undefined ? undefined : uriTemplateVariables(named.template);
  }
  if (names === undefined) return;
  const expected = completionParameters(names);
  if (expected === undefined) out.push(`${at}: a completion entry needs something to complete`);
  else if (canonicalize(expected) !== canonicalize(tool.parameters))
    out.push(
      `${at}: the parameters of a completion must be exactly {argument, value, context} over the pinned names`,
    );
}

/** The argument names of a prompt's pinned `arguments`; undefined when malformed. */
function promptArgumentNames(args: JsonValue | undefined): readonly string[] | undefined {
  const schema = promptParameters(args);
  const props = schema?.['properties'];
  return isObject(props) ? Object.keys(props) : undefined;
}

/**
 * The parameters schema of a completion entry over these argument or variable names:
 * `argument` one of them, `value` the partial value (a string), `context` the values of the
 * others already given (strings); undefined when there are none.
 */
export function completionParameters(names: readonly string[]): JsonObject | undefined {
  if (names.length === 0) return undefined;
  const value = { type: 'string', maxLength: MAX_COMPLETION_VALUE_LENGTH };
  return {
    type: 'object',
    additionalProperties: false,
    required: ['argument', 'value'],
    properties: {
      argument: { type: 'string', enum: [...names] },
      value,
      context: {
        type: 'object',
        additionalProperties: false,
        properties: Object.fromEntries(names.map((n) => [n, value])),
      },
    },
  };
}

/** The argument names of the prompt or the variable names of the template a completion entry completes. */
export function completionNamesOf(definition: JsonObject, template?: string): readonly string[] | undefined {
  return template === undefined
    ? promptArgumentNames(definition['arguments'])
    : uriTemplateVariables(template);
}

/**
 * The parameters schema of a pinned resource template: `{uri}`, matching the template
 * (kernel `uriTemplatePattern`); undefined for a template failclosed does not pin.
 */
export function templateParameters(template: string): JsonObject | undefined {
  const pattern = uriTemplatePattern(template);
  if (pattern === undefined) return undefined;
  return {
    type: 'object',
    properties: { uri: { type: 'string', maxLength: 2048, pattern } },
    required: ['uri'],
    additionalProperties: false,
  };
}

/** The parameters schema of a prompt with these pinned `arguments`; undefined when malformed. */
export function promptParameters(args: JsonValue | undefined): JsonObject | undefined {
  const list = args === undefined ? [] : args;
  if (!Array.isArray(list)) return undefined;
  const properties: Record<string, JsonValue> = {};
  const required: string[] = [];
  for (const a of list as readonly JsonValue[]) {
    if (!isObject(a) || typeof a['name'] !== 'string' || a['name'].length === 0) return undefined;
    // Own members only (an argument named `toString` is a name like any other); `__proto__` would
    // set the object's prototype instead of naming a property, and no call may carry one.
    if (a['name'] === '__proto__' || Object.hasOwn(properties, a['name'])) return undefined;
    const description = a['description'];
    properties[a['name']] = {
      type: 'string',
      ...(typeof description === 'string' ? { description: description.slice(0, 2000) } : {}),
    };
    if (a['required'] === true) required.push(a['name']);
  }
  return { type: 'object', properties, required, additionalProperties: false };
}

/** The parameters schema of a pinned resource: `{uri}`, fixed to its URI. */
export function resourceParameters(uri: string): JsonObject {
  return {
    type: 'object',
    properties: { uri: { type: 'string', const: uri } },
    required: ['uri'],
    additionalProperties: false,
  };
}

/** The declaration of one upstream server that every tool it serves must repeat identically. */
function serverDeclaration(spec: AdapterConfig): string {
  const limits = isObject(spec['limits']) ? spec['limits'] : {};
  return canonicalize({
    command: spec['command'] ?? null,
    url: spec['url'] ?? null,
    headers: spec['headers'] ?? {},
    tls: spec['tls'] ?? null,
    oauth: spec['oauth'] ?? null,
    fs_read: limits['fs_read'] ?? [],
    fs_write: limits['fs_write'] ?? [],
    network: limits['network'] ?? false,
    egress: limits['egress'] ?? [],
  });
}

function checkDescribe(at: string, tool: ToolSpec, spec: AdapterConfig, out: string[]): void {
  for (const key of ['objects', 'cost_usd', 'cost_cents']) {
    const name = spec[key];
    if (typeof name === 'string' && paramSchema(tool, name) === undefined)
      out.push(`${at}.${key}: "${name}" names no parameter`);
  }
}

function checkOne(
  at: string,
  tool: ToolSpec,
  spec: AdapterConfig,
  allowed: readonly string[],
  options: AdapterCheckOptions,
  out: string[],
): void {
  const type = spec.type;
  if (!allowed.includes(type)) {
    out.push(`${at}.type: unknown adapter type "${type}" (known: ${allowed.join(', ')})`);
    return;
  }
  const validate = validators().get(type);
  if (validate === undefined || validate(spec) !== true) {
    for (const e of validate?.errors ?? []) out.push(describeError(at, e));
    return;
  }
  if (type === 'command') checkCommand(at, tool, spec, out);
  if (type === 'describe') checkDescribe(at, tool, spec, out);
  if (type === 'mcp') checkMcp(at, tool, spec, out);
  if (type === 'http') checkHttp(at, tool, spec, out);
  if (type === 'builtin' && options.builtins !== undefined) {
    const fn = spec['function'];
    const name = typeof fn === 'string' ? fn : tool.name;
    if (!options.builtins.includes(name))
      out.push(`${at}${typeof fn === 'string' ? '.function' : ''}: no builtin function "${name}"`);
  }
  checkLimits(at, spec, type, out);
}

/**
 * Every problem with the adapter specs of `tools` (their `adapter` and `preview.dry_run`), each
 * naming the tool and the path, e.g. `tool "x": adapter.limits: unknown key "timeout"`; empty
 * when all can run. The bundle loader denies with `ERR_POLICY_BUNDLE_INVALID` on any.
 * (OE-INV-005/006/012/024)
 */
export function checkAdapterSpecs(
  tools: readonly ToolSpec[],
  options: AdapterCheckOptions = {},
): readonly string[] {
  const problems: string[] = [];
  for (const tool of tools) {
    const out: string[] = [];
    checkOne('adapter', tool, tool.adapter, ADAPTER_TYPES, options, out);
    const dry = tool.preview?.dry_run;
    if (dry !== undefined) checkOne('preview.dry_run', tool, dry, DRY_RUN_TYPES, {}, out);
    problems.push(...out.map((p) => `tool "${tool.name}": ${p}`));
  }
  // One upstream server, one declaration: the tools it serves name the same command, paths and
  // network, so no tool can widen what its server may touch.
  const servers = new Map<string, { tool: string; declaration: string }>();
  // An MCP client reads a resource by URI: one URI, one entry (the Gate never has to choose).
  const uris = new Map<string, string>();
  const templates = new Map<string, string>();
  for (const tool of tools) {
    const uri = tool.adapter['resource'];
    const template = tool.adapter['resource_template'];
    // A completion entry reads nothing: it names the template it completes, pinned by its own entry.
    if (tool.adapter.type !== 'mcp' || tool.adapter['completion'] !== undefined) continue;
    if (typeof uri === 'string') {
      const first = uris.get(uri);
      if (first === undefined) uris.set(uri, tool.name);
      else problems.push(`tool "${tool.name}": adapter.resource: the URI is pinned by tool "${first}" too`);
    }
    if (typeof template === 'string') {
      const first = templates.get(template);
      if (first === undefined) templates.set(template, tool.name);
      else
        problems.push(
          `tool "${tool.name}": adapter.resource_template: the template is pinned by tool "${first}" too`,
        );
    }
  }
  // A URI reached through two entries would be read under whichever policy the caller names: a
  // template must not expand to a pinned resource's URI, nor share a URI with another template
  // (two templates whose literal starts could meet are refused: failclosed does not intersect them).
  for (const [template, name] of templates) {
    const source = uriTemplatePattern(template);
    if (source === undefined) continue;
    const pattern = new RegExp(source, 'u');
    for (const [uri, other] of uris)
      if (pattern.test(uri))
        problems.push(
          `tool "${name}": adapter.resource_template: it expands to ${uri}, pinned by tool "${other}"`,
        );
    const prefix = uriTemplatePrefix(template);
    for (const [t2, other] of templates)
      if (template < t2) {
        const p2 = uriTemplatePrefix(t2);
        if (prefix.startsWith(p2) || p2.startsWith(prefix))
          problems.push(
            `tool "${name}": adapter.resource_template: it may expand to the URIs of tool "${other}"'s template (their literal starts meet)`,
          );
      }
  }
  for (const tool of tools) {
    const spec = tool.adapter;
    const server = spec['server'];
    if (spec.type !== 'mcp' || typeof server !== 'string') continue;
    const declaration = serverDeclaration(spec);
    const first = servers.get(server);
    if (first === undefined) servers.set(server, { tool: tool.name, declaration });
    else if (first.declaration !== declaration)
      problems.push(
        `tool "${tool.name}": adapter: MCP server "${server}" is declared differently by tool "${first.tool}" (command, url, headers, tls, oauth, fs_read, fs_write, network, egress)`,
      );
  }
  return problems;
}
