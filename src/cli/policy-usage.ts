/**
 * The usage lines and option declarations of `failclosed policy` (`policy.ts`), apart from the
 * commands so that the CLI's argument parsing loads no policy engine.
 */
import { PIN_TRUST_OPTIONS } from './pin-mcp-trust.js';

/** Usage lines of the policy commands (part of the CLI usage). */
export const POLICY_USAGE = `  policy build DIR --out FILE                 build a bundle; every adapter spec is checked
  policy activate FILE                        check, store and activate a bundle (ledgered)
  policy test TOOL --params JSON [--client NAME] [--tenant T] [--role R]... [--session S]
              [--tainted] [--bundle FILE|HASH] dry run: decision, rules, obligations; records and runs nothing
                                              (exit 0 allow, 3 escalate, 1 deny)
  policy diff A B [--json]                    what changed between two bundles (files or stored hashes)
  policy pin-mcp DIR --server NAME [--read PATH]... [--write PATH]... [--egress HOST:PORT]... [--only TOOL]...
              -- COMMAND ARGS...              list an upstream MCP server's tools in the sandbox and
                                              write them, definitions pinned by SHA-256, into DIR
  policy pin-mcp DIR --server NAME --url URL [--header 'Name: value']... [--only TOOL]...
              [--allow-loopback]              the same for a Streamable HTTP upstream; a header value
                                              may hold {secret:NAME} (resolved from FC_SECRET_NAME)
              [--ca FILE] [--client-cert-ref NAME --client-key-ref NAME]
                                              https: trust only that CA; mutual TLS by secret reference
              [--oauth-token-url URL --oauth-client-id ID --oauth-client-secret-ref NAME
               [--oauth-scope S] [--oauth-audience A] [--oauth-resource R] [--oauth-ca FILE]]
                                              the upstream's bearer by OAuth client credentials
              both also take [--prompt NAME]... [--resource URI]... [--resource-template TEMPLATE]...:
              pin those prompts, resources and resource templates ({name} variables only) too,
              and [--names server|upstream]: tools and prompts named SERVER.TOOL (default) or as upstream,
              and [--client-requests sampling,elicitation]: what the tools may ask of the MCP client,
              and [--completions]: each prompt and template pinned also gets its NAME.complete entry
`;

/** The CLI's option declarations for these commands (merged into `parseArgs`). */
export const POLICY_OPTIONS = {
  role: { type: 'string', multiple: true },
  bundle: { type: 'string' },
  tainted: { type: 'boolean' },
  json: { type: 'boolean' },
  server: { type: 'string' },
  read: { type: 'string', multiple: true },
  write: { type: 'string', multiple: true },
  egress: { type: 'string', multiple: true },
  only: { type: 'string', multiple: true },
  prompt: { type: 'string', multiple: true },
  resource: { type: 'string', multiple: true },
  'resource-template': { type: 'string', multiple: true },
  url: { type: 'string' },
  header: { type: 'string', multiple: true },
  'allow-loopback': { type: 'boolean' },
  ...PIN_TRUST_OPTIONS,
  names: { type: 'string' },
  'client-requests': { type: 'string' },
  completions: { type: 'boolean' },
} as const;
