/**
 * `failclosed policy build|activate|test|diff`: argv → calls, no logic. `test` is a dry run
 * through the Control Plane's own evaluation step (`evaluateCall`, the code `decide` runs), so
 * it cannot disagree with the real gate; it writes no ledger record, signs no envelope and runs
 * nothing. See docs/policy.md and docs/cli.md. (SPEC §6 "Policy as code", OE-INV-005/014)
 */
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ACTIVE_POINTER, createBundleCompiler, evaluateCall } from '../control-plane/index.js';
import type { PolicyRuntime } from '../control-plane/index.js';
import { connect, dataPaths, DEMO_CLIENT, operatorAction, readClientFile } from '../embedded/index.js';
import type { ConnectOptions, HttpAnswer } from '../embedded/index.js';
import { createDefaultBuiltins } from '../execution/index.js';
import { pinMcp, pinMcpHttp } from './pin-mcp.js';
import { pinTrustOf } from './pin-mcp-trust.js';
import { CLIENT_REQUEST_KINDS, isDeny, parseJson } from '../kernel/index.js';
import type { ClientRequestKind, JsonObject, JsonValue } from '../kernel/index.js';
import {
  buildBundleFromDir,
  createToolCatalog,
  diffBundles,
  formatBundleDiff,
  hashBundle,
  MAX_BUNDLE_BYTES,
  parseBundleDocument,
} from '../policy/index.js';
import { POLICY_USAGE } from './policy-usage.js';

export { POLICY_OPTIONS, POLICY_USAGE } from './policy-usage.js';

/** Output of the policy commands. */
export interface PolicyCliIo {
  readonly out: (text: string) => void;
  readonly err: (text: string) => void;
  /** Where `pin-mcp --header` reads `FC_SECRET_<NAME>` values. */
  readonly env?: Readonly<Record<string, string | undefined>>;
}

/** Option values the policy commands read. */
export type PolicyCliOptions = Readonly<Record<string, string | boolean | readonly string[] | undefined>>;

/** Exit codes of `policy test`: the decision. */
export const DRY_RUN_EXIT = Object.freeze({ allow: 0, deny: 1, escalate: 3 });

/** How long the dry run lets evaluation take (the gate's own deadline is shorter). */
const DRY_RUN_POLICY_MS = 5_000;
const HASH_RE = /^[0-9a-f]{64}$/;

class Usage extends Error {}

/** The builtin functions this deployment's Execution Layer offers: build checks against them. */
const builtinNames = (): readonly string[] => Object.keys(createDefaultBuiltins());

function str(v: PolicyCliOptions, name: string): string | undefined {
  const x = v[name];
  return typeof x === 'string' ? x : undefined;
}

function list(v: PolicyCliOptions, name: string): readonly string[] {
  const x = v[name];
  return Array.isArray(x) ? (x as readonly string[]) : typeof x === 'string' ? [x] : [];
}

function print(io: PolicyCliIo, value: unknown): void {
  io.out(`${JSON.stringify(value, null, 2)}\n`);
}

/** A bundle's bytes: a file, a hash in the data directory's store, or (no ref) the active one. */
function readBundle(dir: string, ref: string | undefined): { bytes: Uint8Array; hash: string } {
  const store = dataPaths(dir).bundles;
  let hash = ref;
  if (hash === undefined) {
    const pointer = join(store, ACTIVE_POINTER);
    if (!existsSync(pointer)) throw new Error('no active policy bundle in this data directory');
    hash = readFileSync(pointer, 'utf8').trim();
  }
  if (HASH_RE.test(hash) && !existsSync(hash)) {
    const path = join(store, `${hash}.json`);
    if (!existsSync(path)) throw new Error(`no stored bundle ${hash}`);
    return { bytes: readFileSync(path), hash };
  }
  const bytes = readFileSync(hash);
  // Operator-supplied file: strict JSON with the bundle size limit, then hashed canonically.
  return { bytes, hash: hashBundle(parseJson(bytes, { maxBytes: MAX_BUNDLE_BYTES })) };
}

async function build(io: PolicyCliIo, src: string, out: string): Promise<number> {
  const built = await buildBundleFromDir(src, { builtins: builtinNames() });
  if (isDeny(built)) {
    io.err(`${built.code}: ${built.reason}\n`);
    return 1;
  }
  writeFileSync(out, built.text);
  print(io, { hash: built.hash, out });
  return 0;
}

async function activate(
  io: PolicyCliIo,
  dir: string,
  file: string,
  connectAs: () => ConnectOptions,
): Promise<number> {
  const bundle = readFileSync(file, 'utf8');
  const conn = await connect(dir, connectAs());
  let a: HttpAnswer;
  try {
    a = await operatorAction(conn, 'policy-activate', { bundle });
  } finally {
    await conn.close();
  }
  if (a.status >= 200 && a.status < 300) {
    print(io, a.body);
    return 0;
  }
  io.err(`${JSON.stringify(a.body)}\n`);
  return 1;
}

function paramsOf(text: string | undefined): JsonObject {
  if (text === undefined) throw new Usage('--params JSON is required');
  let params: JsonValue;
  try {
    params = parseJson(text);
  } catch {
    throw new Usage('--params is not valid JSON');
  }
  if (typeof params !== 'object' || params === null || Array.isArray(params))
    throw new Usage('--params must be a JSON object');
  return params as JsonObject;
}

async function dryRun(io: PolicyCliIo, dir: string, tool: string, v: PolicyCliOptions): Promise<number> {
  const params = paramsOf(str(v, 'params'));
  const client = str(v, 'client') ?? DEMO_CLIENT.identity;
  let tenant = str(v, 'tenant');
  if (tenant === undefined) {
    // The client's own tenant, from its key file, when it was registered here.
    try {
      tenant = readClientFile(dir, client).tenant;
    } catch {
      throw new Usage('--tenant is required for a client without a key file in the data directory');
    }
  }
  const role = v['role'];
  const roles = Array.isArray(role) ? [...(role as readonly string[])] : [];
  const { bytes, hash } = readBundle(dir, str(v, 'bundle'));
  const runtime: PolicyRuntime = createBundleCompiler({ builtins: builtinNames() })(bytes, hash);
  const tainted = v['tainted'] === true;
  const evaluation = await evaluateCall(
    runtime,
    { identity: client, tenant, roles, tool, params, tainted },
    DRY_RUN_POLICY_MS,
  );
  const base = {
    dry_run: true,
    policy_bundle: runtime.hash,
    tool,
    tenant,
    principal: { id: client, tenant, roles: [...new Set(roles)].sort() },
    session: str(v, 'session') ?? null,
    tainted,
  };
  const facts = evaluation.facts;
  const policy = {
    rules_fired: facts === undefined ? [] : [...facts.rules_fired],
    risk: facts?.risk ?? null,
    obligations: facts === undefined ? null : facts.obligations,
  };
  if (evaluation.outcome === 'deny') {
    const d = evaluation.denial;
    const schema_errors =
      d.code === 'ERR_PARAMS_INVALID' ? createToolCatalog(runtime.bundle).explainParams(tool, params) : [];
    print(io, { ...base, decision: 'deny', code: d.code, reason: d.reason, ...policy, schema_errors });
    return DRY_RUN_EXIT.deny;
  }
  const { decision, constraints } = evaluation;
  print(io, {
    ...base,
    decision: decision.outcome,
    code: decision.outcome === 'escalate' ? 'ERR_APPROVAL_REQUIRED' : null,
    rationale: decision.rationale,
    ...policy,
    constraints,
    schema_errors: [],
  });
  return DRY_RUN_EXIT[decision.outcome];
}

function diff(io: PolicyCliIo, dir: string, a: string, b: string, asJson: boolean): number {
  try {
    return diffOrThrow(io, dir, a, b, asJson);
  } catch (err) {
    // Like diff(1): trouble is 2, so "1" always means the bundles differ.
    io.err(`failclosed: ${err instanceof Error ? err.message : 'failed'}\n`);
    return 2;
  }
}

function diffOrThrow(io: PolicyCliIo, dir: string, a: string, b: string, asJson: boolean): number {
  const load = (ref: string) => {
    const { bytes, hash } = readBundle(dir, ref);
    const doc = parseBundleDocument(bytes, hash);
    if (isDeny(doc)) throw new Error(`${ref}: ${doc.code}: ${doc.reason}`);
    return doc;
  };
  const from = load(a);
  const to = load(b);
  const d = diffBundles(from.document, from.hash, to.document, to.hash);
  if (asJson) print(io, d);
  else io.out(formatBundleDiff(d));
  return d.identical ? 0 : 1;
}

/** `--client-requests sampling,elicitation`: each kind at most once. */
function clientRequestsOf(v: string | undefined): { clientRequests?: readonly ClientRequestKind[] } {
  if (v === undefined) return {};
  const kinds = v.split(',').map((k) => k.trim());
  if (
    new Set(kinds).size !== kinds.length ||
    !kinds.every((k) => (CLIENT_REQUEST_KINDS as readonly string[]).includes(k))
  )
    throw new Usage(`--client-requests must be a comma-separated list of ${CLIENT_REQUEST_KINDS.join(', ')}`);
  return { clientRequests: kinds as ClientRequestKind[] };
}

async function run(
  io: PolicyCliIo,
  dir: string,
  pos: readonly string[],
  v: PolicyCliOptions,
  connectAs: () => ConnectOptions,
): Promise<number> {
  const [, sub, arg1, arg2] = pos;
  const out = str(v, 'out');
  if (sub === 'build' && arg1 !== undefined && out !== undefined) return build(io, arg1, out);
  if (sub === 'activate' && arg1 !== undefined) return activate(io, dir, arg1, connectAs);
  if (sub === 'test' && arg1 !== undefined) return dryRun(io, dir, arg1, v);
  if (sub === 'diff' && arg1 !== undefined && arg2 !== undefined)
    return diff(io, dir, arg1, arg2, v['json'] === true);
  const server = str(v, 'server');
  const url = str(v, 'url');
  const names = str(v, 'names');
  if (sub === 'pin-mcp' && names !== undefined && names !== 'server' && names !== 'upstream')
    throw new Usage('--names must be server or upstream');
  const naming = {
    ...(names === 'upstream' ? { naming: 'upstream' as const } : {}),
    ...clientRequestsOf(str(v, 'client-requests')),
    ...(v['completions'] === true ? { completions: true } : {}),
  };
  if (
    sub === 'pin-mcp' &&
    arg1 !== undefined &&
    server !== undefined &&
    url !== undefined &&
    pos.length === 3
  )
    return pinMcpHttp(io, {
      dir: arg1,
      server,
      url,
      headers: list(v, 'header'),
      allowLoopback: v['allow-loopback'] === true,
      env: io.env ?? {},
      // The same sources the Execution Layer reads: FC_SECRET_<NAME> and <data>/secrets.json.
      ...(existsSync(join(dir, 'secrets.json')) ? { secretsFile: join(dir, 'secrets.json') } : {}),
      ...(v['only'] === undefined ? {} : { only: list(v, 'only') }),
      prompts: list(v, 'prompt'),
      resources: list(v, 'resource'),
      ...pinTrustOf(v),
      templates: list(v, 'resource-template'),
      ...naming,
    });
  if (sub === 'pin-mcp' && arg1 !== undefined && server !== undefined && url === undefined && pos.length > 3)
    return pinMcp(io, {
      dir: arg1,
      server,
      command: pos.slice(3),
      read: list(v, 'read'),
      write: list(v, 'write'),
      egress: list(v, 'egress'),
      ...(v['only'] === undefined ? {} : { only: list(v, 'only') }),
      prompts: list(v, 'prompt'),
      resources: list(v, 'resource'),
      templates: list(v, 'resource-template'),
      ...naming,
    });
  throw new Usage(
    'policy build DIR --out FILE | activate FILE | test TOOL --params JSON | diff A B | pin-mcp DIR --server NAME (-- COMMAND ARGS... | --url URL)',
  );
}

/**
 * Runs one `policy` command. Exit codes: build/activate 0 ok, 1 refused; test 0 allow, 3
 * escalate, 1 deny or failed; diff 0 identical, 1 different, 2 failed; 2 usage.
 */
export async function runPolicyCommand(
  io: PolicyCliIo,
  dir: string,
  positionals: readonly string[],
  values: PolicyCliOptions,
  /** The operator the command connects as (`--operator`), read only once a gate is needed. */
  connectAs?: () => ConnectOptions,
): Promise<number> {
  try {
    return await run(io, dir, positionals, values, connectAs ?? (() => ({})));
  } catch (err) {
    if (err instanceof Usage) {
      io.err(`failclosed: ${err.message}\n\n${POLICY_USAGE}`);
      return 2;
    }
    io.err(`failclosed: ${err instanceof Error ? err.message : 'failed'}\n`);
    return 1;
  }
}
