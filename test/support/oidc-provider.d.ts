/**
 * The part of `oidc-provider` (9.x, no bundled types) the MCP tests use: an authorization server
 * run locally to issue real access tokens.
 */
declare module 'oidc-provider' {
  import type { IncomingMessage, ServerResponse } from 'node:http';

  export default class Provider {
    constructor(issuer: string, configuration: Record<string, unknown>);
    callback(): (req: IncomingMessage, res: ServerResponse) => void;
  }
}
