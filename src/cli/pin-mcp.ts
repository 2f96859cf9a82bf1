/**
 * `failclosed policy pin-mcp DIR --server NAME [--read PATH]... [--write PATH]...
 * [--egress HOST:PORT]... [--only TOOL]... -- COMMAND ARGS...`: launches an upstream stdio MCP
 * server in the same sandbox the Execution Layer uses (only the granted paths; no network unless
 * `--egress` lists destinations, reached only through the egress proxy), lists its
 * tools and writes, into the bundle source directory DIR, one tool file per tool
 * (`tools/NAME.TOOL.json`, its definition pinned by SHA-256) and their Cedar actions
 * (`schema/mcp-NAME.cedarschema`), replacing what an earlier pin of that server wrote. Nothing
 * is activated: the operator reviews the files, writes policies for the new actions, and builds
 * and activates the bundle as usual. docs/adapters.md "MCP tools". (OE-INV-005/023)
 *
 * `failclosed policy pin-mcp DIR --server NAME --url URL [--header 'Name: value']... [--only
 * TOOL]... [--allow-loopback]` does the same for a Streamable HTTP upstream, reached under the
 * Execution Layer's own destination rules (public address only; `--allow-loopback` admits a
 * literal loopback address, for tests and development). A header value is a literal, or ends in
 * `{secret:NAME}`: the value the Execution Layer would send is sent (`FC_SECRET_NAME`, or NAME in
 * the data directory's `secrets.json`, which wins), and the tool files keep the reference.
 * An https upstream is listed under the trust the tools will have (`--ca`, `--client-cert-ref`,
 * `--client-key-ref`; `--oauth-*` for a bearer by client credentials, pin-mcp-trust.ts).
 *
 * Both also take `--prompt NAME`... and `--resource URI`...: those prompts and resources are
 * pinned too, each an entry with its own Cedar action (`NAME.prompts.PROMPT`,
 * `NAME.resources.SLUG`); none unless named. docs/mcp.md "Prompts and resources".
 *
 * With `--completions`, every prompt and resource template pinned in that run also gets its
 * completion entry, `ENTRY.complete` with its own Cedar action (MCP `completion/complete`).
 * docs/mcp.md "Completion".
 *
 * With `--names upstream` tools and prompts keep the upstream server's own names (`TOOL`,
 * `PROMPT`) instead: refused, and nothing written, when one of them is not a dotless bundle tool
 * name or would take the name of another entry of the bundle source. docs/mcp.md "Naming".
 */
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { isAbsolute, join } from 'node:path';
import {
  createEnvSecretResolver,
  listMcpCatalog,
  listMcpHttpCatalog,
  parseHttpUrlTemplate,
} from '../execution/index.js';
import type { McpHeaderValue, McpListing, UpstreamOAuthSpec, UpstreamTlsSpec } from '../execution/index.js';
import { isDeny, MAX_OUTPUT_BYTES } from '../kernel/index.js';
import type { ClientRequestKind, Deny } from '../kernel/index.js';
import {
  MAX_TOOL_TIMEOUT_MS,
  pinMcpCompletions,
  pinMcpPrompts,
  pinMcpResources,
  pinMcpResourceTemplates,
  pinMcpTools,
  SERVER_NAME_RE,
} from '../policy/index.js';
import type { McpNaming, McpServerDeclaration } from '../policy/index.js';

/** Output of the command. */
/**
 * Text from an upstream server as a JSON string with every control character escaped (C1
 * included, which JSON leaves raw): it never reaches the operator's terminal as escape codes.
 */
function shown(text: string): string {
  return JSON.stringify(text).replace(
    /[\u007f-\u009f]/g,
    (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`,
  );
}

export interface PinMcpIo {
  readonly out: (text: string) => void;
  readonly err: (text: string) => void;
}

/** What the command is told. */
export interface PinMcpInput {
  readonly dir: string;
  readonly server: string;
  readonly command: readonly string[];
  readonly read: readonly string[];
  readonly write: readonly string[];
  /** `host:port` destinations the server may reach (network only through the egress proxy). */
  readonly egress: readonly string[];
  readonly only?: readonly string[];
  /** Upstream prompt names to pin too (`--prompt`); none by default. */
  readonly prompts?: readonly string[];
  /** Upstream resource URIs to pin too (`--resource`); none by default. */
  readonly resources?: readonly string[];
  /** Upstream resource templates to pin too (`--resource-template`); none by default. */
  readonly templates?: readonly string[];
  /** How tools and prompts are named in the bundle (`--names`); `server` by default. */
  readonly naming?: McpNaming;
  /** What the tools may ask of the caller's client (`--client-requests`); none by default. */
  readonly clientRequests?: readonly ClientRequestKind[];
  /** Pin the completion entry of every prompt and template pinned too (`--completions`). */
  readonly completions?: boolean;
}

/** Address space granted to a pinned server: a Node.js server needs about 1 GiB. */
export const PIN_MEMORY_BYTES = 2 * 1024 * 1024 * 1024;

function checkDir(dir: string): void {
  if (!existsSync(join(dir, 'schema.cedarschema')))
    throw new Error(`${dir} is not a bundle source directory (no schema.cedarschema)`);
  if (existsSync(join(dir, 'tools.json')))
    throw new Error('pin-mcp writes tools/ files; this directory uses tools.json');
}

/** Runs the command; exit 0 when at least one tool was pinned, 1 otherwise. Throws on bad usage. */
export async function pinMcp(io: PinMcpIo, input: PinMcpInput): Promise<number> {
  if (!SERVER_NAME_RE.test(input.server)) throw new Error(`--server must match ${SERVER_NAME_RE.source}`);
  const [program] = input.command;
  if (program === undefined || !isAbsolute(program))
    throw new Error('the server command must start with an absolute program path (after --)');
  checkDir(input.dir);
  const listed = await listMcpCatalog(
    input.command,
    {
      timeout_ms: MAX_TOOL_TIMEOUT_MS,
      max_output_bytes: MAX_OUTPUT_BYTES,
      memory_bytes: PIN_MEMORY_BYTES,
      network: input.egress.length > 0,
      egress: [...input.egress],
      fs_read: [...input.read],
      fs_write: [...input.write],
      max_cost_cents: null,
    },
    wanted(input),
  );
  return write(
    io,
    input,
    {
      name: input.server,
      command: input.command,
      fs_read: input.read,
      fs_write: input.write,
      network: input.egress.length > 0,
      egress: input.egress,
      memory_bytes: PIN_MEMORY_BYTES,
      ...(input.clientRequests === undefined ? {} : { client_requests: input.clientRequests }),
    },
    listed,
  );
}

/** What `pin-mcp --url` is told. */
export interface PinMcpHttpInput {
  readonly dir: string;
  readonly server: string;
  readonly url: string;
  /** `Name: value` lines; a value may end in `{secret:NAME}`. */
  readonly headers: readonly string[];
  readonly allowLoopback: boolean;
  /** Where `FC_SECRET_<NAME>` values are read. */
  readonly env: Readonly<Record<string, string | undefined>>;
  /** The data directory's `secrets.json`, when there is one (it wins over the environment, as in the Execution Layer). */
  readonly secretsFile?: string;
  readonly only?: readonly string[];
  readonly prompts?: readonly string[];
  readonly resources?: readonly string[];
  /** The https upstream's trust (`--ca`, `--client-cert-ref`, `--client-key-ref`). */
  readonly tls?: UpstreamTlsSpec;
  /** OAuth client credentials for the upstream's bearer (`--oauth-*`). */
  readonly oauth?: UpstreamOAuthSpec;
  readonly templates?: readonly string[];
  readonly naming?: McpNaming;
  readonly clientRequests?: readonly ClientRequestKind[];
  readonly completions?: boolean;
}

/** `Name: value` → the bundle's header value: a literal, or a `{secret:NAME}` reference with its prefix. */
function parseHeader(line: string): [string, McpHeaderValue] {
  const colon = line.indexOf(':');
  if (colon <= 0) throw new Error(`--header must be 'Name: value' (got ${shown(line.slice(0, 80))})`);
  const name = line.slice(0, colon).trim();
  const value = line.slice(colon + 1).trim();
  const ref = /^(.*)\{secret:([A-Z][A-Z0-9_]{0,63})\}$/.exec(value);
  if (ref === null) {
    if (value.includes('{secret:')) throw new Error('a {secret:NAME} reference must end the header value');
    return [name, value];
  }
  const prefix = ref[1] ?? '';
  return [name, prefix === '' ? { secret: ref[2] ?? '' } : { secret: ref[2] ?? '', prefix }];
}

/** `pin-mcp --url`: lists a Streamable HTTP upstream's tools and writes them like {@link pinMcp}. */
export async function pinMcpHttp(io: PinMcpIo, input: PinMcpHttpInput): Promise<number> {
  if (!SERVER_NAME_RE.test(input.server)) throw new Error(`--server must match ${SERVER_NAME_RE.source}`);
  const parsed = parseHttpUrlTemplate(input.url);
  if (parsed === undefined || /[{}]/.test(parsed.rest))
    throw new Error('--url must be http(s)://HOST[:PORT]/path with a literal host and port');
  checkDir(input.dir);
  const headers = Object.fromEntries(input.headers.map(parseHeader));
  const tokenAt = input.oauth === undefined ? undefined : parseHttpUrlTemplate(input.oauth.token_url);
  if (input.oauth !== undefined && tokenAt === undefined)
    throw new Error('--oauth-token-url must be http(s)://HOST[:PORT]/path with a literal host and port');
  // The token endpoint is an egress destination of its own.
  const egress = [
    ...new Set([parsed.destination.key, ...(tokenAt === undefined ? [] : [tokenAt.destination.key])]),
  ];
  const trust = {
    ...(input.tls === undefined ? {} : { tls: input.tls }),
    ...(input.oauth === undefined ? {} : { oauth: input.oauth }),
  };
  const listed = await listMcpHttpCatalog(
    { url: input.url, headers, ...trust },
    {
      timeout_ms: MAX_TOOL_TIMEOUT_MS,
      max_output_bytes: MAX_OUTPUT_BYTES,
      memory_bytes: PIN_MEMORY_BYTES,
      network: true,
      egress,
      fs_read: [],
      fs_write: [],
      max_cost_cents: null,
    },
    wanted(input),
    createEnvSecretResolver({
      env: input.env,
      ...(input.secretsFile === undefined ? {} : { file: input.secretsFile }),
    }),
    { allowLoopback: input.allowLoopback },
  );
  return write(
    io,
    input,
    {
      name: input.server,
      url: input.url,
      headers,
      ...trust,
      fs_read: [],
      fs_write: [],
      network: true,
      egress,
      memory_bytes: PIN_MEMORY_BYTES,
      ...(input.clientRequests === undefined ? {} : { client_requests: input.clientRequests }),
    },
    listed,
  );
}

/** The `adapter.server` of an MCP tool file, when it is one (upstream-named entries carry no prefix). */
function pinnedBy(file: string): string | undefined {
  try {
    const spec = JSON.parse(readFileSync(file, 'utf8')) as { adapter?: { type?: unknown; server?: unknown } };
    return spec.adapter?.type === 'mcp' && typeof spec.adapter.server === 'string'
      ? spec.adapter.server
      : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Why the entries cannot be written under their names, if they cannot: two of them share a name
 * (an upstream tool and prompt of the same name), or a file of the bundle source that is not this
 * server's already holds one (a hand-written tool, or another server's entry).
 */
function collision(
  tools: string,
  server: string,
  pinned: readonly { readonly name: string; readonly upstream: string }[],
): string | undefined {
  const seen = new Set<string>();
  for (const p of pinned) {
    if (seen.has(p.name)) return `two entries would be named ${shown(p.name)}`;
    seen.add(p.name);
    const file = join(tools, `${p.name}.json`);
    if (existsSync(file) && !p.name.startsWith(`${server}.`) && pinnedBy(file) !== server)
      return `${shown(p.name)} is already an entry of the bundle source (tools/${p.name}.json) that is not this server's`;
  }
  return undefined;
}

/** Which listings the command needs besides the tools. */
function wanted(input: {
  readonly prompts?: readonly string[];
  readonly resources?: readonly string[];
  readonly templates?: readonly string[];
}) {
  return {
    prompts: (input.prompts ?? []).length > 0,
    resources: (input.resources ?? []).length > 0,
    templates: (input.templates ?? []).length > 0,
  };
}

/** Pins what the upstream listed and writes the tool files and Cedar actions into `input.dir`. */
function write(
  io: PinMcpIo,
  input: {
    readonly dir: string;
    readonly server: string;
    readonly only?: readonly string[];
    readonly prompts?: readonly string[];
    readonly resources?: readonly string[];
    readonly templates?: readonly string[];
    readonly naming?: McpNaming;
    readonly completions?: boolean;
  },
  server: McpServerDeclaration,
  listed: McpListing | Deny,
): number {
  if (isDeny(listed)) {
    io.err(`${listed.code}: ${listed.reason}\n`);
    return 1;
  }
  // Only what is named: --only for tools (all when absent), --prompt and --resource (none when absent).
  const naming = input.naming ?? 'server';
  const prompts = pinMcpPrompts(server, listed.prompts, input.prompts ?? [], naming);
  const templates = pinMcpResourceTemplates(server, listed.templates, input.templates ?? []);
  const parts = [
    pinMcpTools(server, listed.tools, input.only, naming),
    prompts,
    pinMcpResources(server, listed.resources, input.resources ?? []),
    templates,
    ...(input.completions === true
      ? [pinMcpCompletions(server, [...prompts.pinned, ...templates.pinned])]
      : []),
  ];
  const pinned = parts.flatMap((p) => p.pinned);
  const skipped = parts.flatMap((p) => p.skipped);
  for (const s of skipped) io.err(`skipped ${shown(s.upstream)}: ${shown(s.reason)}\n`);
  if (pinned.length === 0) {
    io.err('nothing pinned\n');
    return 1;
  }
  const tools = join(input.dir, 'tools');
  const schema = join(input.dir, 'schema');
  const clash = collision(tools, input.server, pinned);
  if (clash !== undefined) {
    io.err(`nothing pinned: ${clash}\n`);
    return 1;
  }
  mkdirSync(tools, { recursive: true });
  mkdirSync(schema, { recursive: true });
  // A re-pin replaces the server's earlier files: a tool it no longer lists is gone from the bundle.
  for (const f of existsSync(tools) ? readdirSync(tools) : [])
    if (
      f.endsWith('.json') &&
      (f.startsWith(`${input.server}.`) || pinnedBy(join(tools, f)) === input.server)
    )
      rmSync(join(tools, f));
  for (const p of pinned)
    writeFileSync(join(tools, `${p.name}.json`), `${JSON.stringify(p.spec, null, 2)}\n`);
  writeFileSync(
    join(schema, `mcp-${input.server}.cedarschema`),
    `// Actions of the upstream MCP server "${input.server}", written by failclosed policy pin-mcp.\n\n${pinned.map((p) => p.cedar).join('\n')}`,
  );
  io.out(
    `${JSON.stringify(
      {
        server: input.server,
        pinned: pinned.map((p) => ({ tool: p.name, upstream: p.upstream, definition_sha256: p.sha256 })),
        skipped,
        next: 'review the files, write policies for these actions, then policy build and policy activate',
      },
      null,
      2,
    )}\n`,
  );
  return 0;
}
