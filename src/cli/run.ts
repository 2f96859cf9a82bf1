/**
 * The `failclosed` command line: argv → calls, no logic (STYLE.md). Exit codes: 0 ok, 1 denied
 * or failed, 2 usage. Operator commands go through the Gate's operator endpoints of the running
 * server, or of an in-process instance when none runs (see `src/embedded/connect.ts`).
 * See docs/cli.md.
 *
 * Importing this module loads no store, policy engine, logger or MCP SDK: a command that talks to
 * a running server (`call`, `requests show`, approvals, operators) loads what it uses, and the
 * composition is imported where a command starts it (`up`, `serve`, `init`, an in-process
 * instance). Measured: `failclosed call` against a running gate took about 1.1 s of CPU, nearly
 * all of it loading modules it never used.
 */
import {
  closeSync,
  constants as fsConstants,
  existsSync,
  fchmodSync,
  fsyncSync,
  mkdirSync,
  openSync,
  readFileSync,
  rmSync,
  writeFileSync,
  writeSync,
} from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { commandIndex } from './command-word.js';
import { createClient, readJob } from '../client/index.js';
import {
  announceServer,
  connect,
  getJson,
  operatorAction,
  operatorDownload,
  withdrawServer,
  dataPaths,
  readClientFile,
  readConfig,
  readSigningKey,
  writeClientFile,
  DEMO_CLIENT,
  parseBackendSpec,
  redactedBackend,
  resolveBackendSpec,
  readLedgerBinding,
} from '../embedded/lean.js';
import type { Connection, EmbeddedInstance, GateNode, HttpAnswer, LedgerNode } from '../embedded/index.js';
import { WriterLockBusy } from '../storage/lean.js';
import { parseJson, vkeyFor } from '../kernel/index.js';
import type { JsonObject, JsonValue } from '../kernel/index.js';
import { exportSigningKeyJwk, generateSigningKey } from '../kernel/signing/index.js';
import { runVerifyCli } from '../verify/index.js';
import { REPLAY_USAGE, runReplayCommand } from './replay.js';
import { CERTS_USAGE, CertsUsageError, runCertsCli } from './certs.js';
import { INVENTORY_USAGE, InventoryUsageError, runInventoryCli } from './inventory.js';
import { APPROVAL_OPTIONS, APPROVAL_USAGE, isApprovalCommand, runApprovalCommand } from './approvals.js';
import { POLICY_OPTIONS, POLICY_USAGE } from './policy-usage.js';
import { WEBHOOK_OPTIONS, WEBHOOK_USAGE, WebhookUsageError, runWebhookCommand } from './webhooks.js';
import { OPERATOR_USAGE, OperatorUsageError, operatorConnection, runOperatorsCommand } from './operators.js';
import type { ConnectOptions } from '../embedded/index.js';

/** Where the CLI writes. */
export interface CliIo {
  readonly out: (text: string) => void;
  readonly err: (text: string) => void;
  readonly env: Readonly<Record<string, string | undefined>>;
  /** Aborting it stops `up` (the process wires SIGINT/SIGTERM to it). */
  readonly signal?: AbortSignal;
  /** Subscribes `up` to reload requests (the process wires SIGHUP); returns the unsubscribe. */
  readonly onReload?: (listener: () => void) => () => void;
}

/** Exit codes. */
/** Exit codes; `unknown`: a call was sent and its answer lost (it may have run, docs/cli.md). */
export const EXIT = Object.freeze({ ok: 0, failed: 1, usage: 2, unknown: 4 });

export const USAGE = `usage: failclosed <command> [options]

  init [DIR] [--backend sqlite|postgres://…]  create a data directory (default ./.failclosed or $FAILCLOSED_HOME);
                                              --backend (or $FAILCLOSED_BACKEND) picks the storage
  up [--port N] [--grace SEC] [--standby] [--backend sqlite|postgres://…]
                                              run all four roles on 127.0.0.1 (initialises on first run,
                                              recording --backend; later it must name the one in use);
                                              SIGTERM/SIGINT drain calls for up to SEC (default 30) seconds;
                                              --standby (SQLite) waits while another gate holds the data
                                              directory's writer lock; on PostgreSQL every gate serves
  serve control-plane [--port N] [--grace SEC]
                                              the Control Plane process alone over --data (keyless Gates, a
                                              separate Execution Layer, the checkpoint key in the ledger
                                              process): takes no call itself (docs/deployment.md)
  serve executor --config FILE                the Execution Layer as its own process (public keys only): mutual
                                              TLS to the Gate process's internal listener (docs/deployment.md)
  serve gate --config FILE                    a Gate as its own process (no key at all): signed calls, decided by
                                              the Control Plane process over mutual TLS (docs/deployment.md)
  serve ledger --config FILE                  the ledger process (the checkpoint key only): verifies the shared
                                              ledger's chain and signs its checkpoints (docs/deployment.md)
  call TOOL --params JSON [--session S] [--client NAME] [--wait SEC] [--request-id ID] [--gate URL]
                                              --gate: send it to that Gate (\`serve gate\`) instead of --data's
  call TOOL --params JSON --background [...]  a background call: queued once decided, prints its job id
                                              and token (docs/jobs.md)
  jobs show ID --token TOKEN [--wait SEC]     a background call's state and result (exit 0 executed);
                                              FAILCLOSED_JOB_TOKEN instead of --token keeps it out of ps
  mcp [--client NAME] [--gate URL]            MCP over stdio as client NAME (default demo-agent),
                                              relayed to the Gate's /mcp endpoint (docs/mcp.md);
                                              --gate: that Gate's (\`serve gate\` with mcp) instead of --data's
  requests show ID                            the evidence view of one request
  clients add NAME --tenant T [--owner HUMAN] [--role R]...
                                              register a client; writes its private key (0600);
                                              Cedar sees the roles as principal.roles
  clients rotate NAME [--public-key FILE] [--reason TEXT]
                                              new client key (ledgered; the old one stops at once);
                                              without --public-key a new pair goes to clients/NAME.json
  clients revoke NAME [--reason TEXT]         its calls are refused (ERR_CLIENT_REVOKED; ledgered)
  clients list
${APPROVAL_USAGE.trimEnd()}
  ledger export --out FILE [--trace ID] [--from N --to M]
  ledger move-key --out FILE                  moves the checkpoint key out of the data directory, for the ledger
                                              process (serve ledger); prints the vkey to pin in "checkpoints"
  schedules list                              the schedules an operator may see: call, timing, next run, last run
  schedules pause|resume|remove ID [--reason TEXT]
                                              stop, restart (from the next slot) or end a schedule (ledgered);
                                              create one with: call schedule.create --params '{"tool":…,"params":…,"cron":…}'
  verify FILE --trust TRUST_FILE [...]        verify an audit bundle offline against pinned trust roots
${REPLAY_USAGE.trimEnd()}
${POLICY_USAGE.trimEnd()}
${WEBHOOK_USAGE.trimEnd()}
  admin kill-switch on|off
  admin lockdown TENANT on|off
  admin quarantine SESSION|client:NAME on|off
  admin reset-breaker --session S | --client NAME | --tenant T [--reason TEXT]
  admin rotate-issuer-key                     new envelope signing key (ledgered; old key stays published)
  admin revoke-issuer-key KID                 revoke a retired issuer key (its envelopes are refused)
${OPERATOR_USAGE.trimEnd()}
${CERTS_USAGE.trimEnd()}
${INVENTORY_USAGE.trimEnd()}
  jwks                                        the issuer JWKS (retired and revoked keys included)
  trust-roots [--out FILE]                    the trust file to pin: ledger vkey, issuer and approver keys
  demo [--data DIR]                           the guided SPEC §7 walkthrough against a real gate
  demo --gate URL [--data DIR]                the same through a deployed topology: calls through that Gate,
                                              operators on the Control Plane process serving --data

  global option: --data DIR
`;

class UsageError extends Error {}

const OPTIONS = {
  data: { type: 'string' },
  port: { type: 'string' },
  grace: { type: 'string' },
  params: { type: 'string' },
  session: { type: 'string' },
  client: { type: 'string' },
  tenant: { type: 'string', multiple: true },
  out: { type: 'string' },
  trace: { type: 'string' },
  from: { type: 'string' },
  to: { type: 'string' },
  help: { type: 'boolean', short: 'h' },
  owner: { type: 'string' },
  wait: { type: 'string' },
  'request-id': { type: 'string' },
  background: { type: 'boolean' },
  gate: { type: 'string' },
  token: { type: 'string' },
  backend: { type: 'string' },
  standby: { type: 'boolean' },
  operator: { type: 'string' },
  config: { type: 'string' },
  ...APPROVAL_OPTIONS,
  ...POLICY_OPTIONS,
  ...WEBHOOK_OPTIONS,
} as const;

function intOption(value: string | undefined, name: string): number | undefined {
  if (value === undefined) return undefined;
  if (!/^\d{1,9}$/.test(value)) throw new UsageError(`--${name} must be a non-negative integer`);
  return Number(value);
}

function onOff(value: string | undefined): boolean {
  if (value === 'on') return true;
  if (value === 'off') return false;
  throw new UsageError('expected on or off');
}

function print(io: CliIo, value: JsonValue): void {
  io.out(`${JSON.stringify(value, null, 2)}\n`);
}

/** Prints an answer; exit 0 for 2xx, 1 otherwise. */
function report(io: CliIo, a: HttpAnswer): number {
  if (a.status >= 200 && a.status < 300) {
    print(io, a.body);
    return EXIT.ok;
  }
  io.err(`${JSON.stringify(a.body)}\n`);
  return EXIT.failed;
}

async function withConnection(
  dir: string,
  fn: (c: Connection) => Promise<number>,
  options: ConnectOptions = {},
): Promise<number> {
  const conn = await connect(dir, options);
  try {
    return await fn(conn);
  } finally {
    await conn.close();
  }
}

async function up(
  io: CliIo,
  dir: string,
  port: number | undefined,
  graceSec = 30,
  standby = false,
  role?: 'control-plane',
  backend?: string,
): Promise<number> {
  if (role === 'control-plane') {
    // Never a fresh data directory: a Control Plane process serves the deployment's own keys.
    if (!existsSync(dataPaths(dir).config))
      throw new UsageError(
        `no data directory at ${dir}: make it with \`failclosed init --backend postgres://…\` (docs/deployment.md)`,
      );
  } else {
    // `--backend` on the first run is recorded, as `init --backend` does. Otherwise it must name
    // the backend the run would use anyway (FAILCLOSED_BACKEND, else the recorded one): the same
    // keys over another store would be a second ledger, its checkpoints signed under the same
    // origin and key as the first one's (a fork).
    const exists = existsSync(dataPaths(dir).config);
    const recorded = exists ? readConfig(dir).backend : undefined;
    if (backend !== undefined) {
      const given = parseBackendSpec(backend);
      if (given.kind === 'postgres' && new URL(given.url).password !== '')
        throw new UsageError(
          '--backend carries a password, which a running server would show in its command line: give it through PGPASSWORD or ~/.pgpass',
        );
      const env = process.env['FAILCLOSED_BACKEND'];
      const current =
        env !== undefined || exists ? resolveBackendSpec(undefined, process.env, recorded) : undefined;
      if (current !== undefined && JSON.stringify(given) !== JSON.stringify(current))
        throw new UsageError(
          `--backend ${redactedBackend(given)} is not the backend ${dir} runs on (${redactedBackend(current)}${env === undefined ? '' : ', from FAILCLOSED_BACKEND'}): the same keys over another store would be a second ledger under the same checkpoint key; make a data directory for it (failclosed init --backend …)`,
        );
    }
    // Refused before anything is made: on PostgreSQL every gate serves at once.
    if (standby) {
      const spec = resolveBackendSpec(backend, process.env, recorded);
      if (spec.kind === 'postgres')
        throw new TypeError('every gate on PostgreSQL serves at once: a standby applies to SQLite only');
    }
    const { initDataDir } = await import('../embedded/index.js');
    const init = await initDataDir(dir, backend === undefined ? {} : { backend });
    if (init.created) io.out(`initialised ${init.dir}\n`);
  }
  // Stops serving when the writer lease is lost: a standby elsewhere takes over.
  const lost = new AbortController();
  let instance: EmbeddedInstance;
  const { startEmbedded } = await import('../embedded/index.js');
  try {
    if (standby) io.out('standby: waiting for the data directory’s writer lock\n');
    instance = await startEmbedded(dir, {
      ...(port === undefined ? {} : { port }),
      standby,
      ...(io.signal === undefined ? {} : { signal: io.signal }),
      onWriterLost: () => lost.abort(),
      // JSON lines on standard output (docs/deployment.md "Observability").
      defaultLogLevel: 'info',
      // A serving process: Cedar off the event loop (docs/policy.md "Where Cedar runs").
      cedarThread: true,
      ...(role === undefined ? {} : { role }),
      // Over FAILCLOSED_BACKEND: the flag says where this run's state lives.
      ...(backend === undefined ? {} : { backend }),
    });
  } catch (err) {
    if (err instanceof WriterLockBusy) {
      io.err(
        'another gate holds the ledger writer lock of this storage; run with --standby to wait for it\n',
      );
      return EXIT.failed;
    }
    if (io.signal?.aborted === true) return EXIT.ok;
    throw err;
  }
  const r = instance.core.recovered;
  if (r.abandoned > 0)
    io.out(
      `recovered: ${r.abandoned} request(s) recorded as abandoned, ${r.mayHaveRun} of them may have run\n`,
    );
  announceServer(dir, instance.url);
  io.out(
    role === 'control-plane'
      ? `failclosed control plane listening on ${instance.url} (operators, approvers and the console; no calls: clients call a Gate) (storage: ${instance.core.storage})\n`
      : `failclosed gate listening on ${instance.url} (storage: ${instance.core.storage})\n`,
  );
  if (instance.core.config.tls?.executor !== undefined)
    io.out(`execution layer listening on ${instance.executionUrl} (mutual TLS, gate role only)\n`);
  else if (instance.core.config.executor_url !== undefined)
    io.out(`execution layer: a separate process at ${instance.executionUrl}\n`);
  if (instance.internalUrl !== undefined)
    io.out(
      `internal listener on ${instance.internalUrl} (mutual TLS, ${instance.core.config.internal_gates === true ? 'executor and gate roles' : 'executor role only'})\n`,
    );
  // SIGHUP: re-read the mutual-TLS certificates, keys, CA and revocations (rotation, revocation).
  const unsubscribe = io.onReload?.(() => {
    instance.reloadTls().then(
      () => io.out('reloaded TLS material\n'),
      (err: unknown) =>
        io.err(
          `TLS reload failed, refusing every peer until a reload succeeds: ${err instanceof Error ? err.message : 'failed'}\n`,
        ),
    );
  });
  await new Promise<void>((done) => {
    // The lease may have been lost while the listeners were starting.
    if (lost.signal.aborted) done();
    else lost.signal.addEventListener('abort', () => done(), { once: true });
    if (io.signal === undefined) return;
    if (io.signal.aborted) done();
    else io.signal.addEventListener('abort', () => done(), { once: true });
  });
  unsubscribe?.();
  withdrawServer(dir);
  if (lost.signal.aborted) {
    io.err(
      'lost this gate’s lease on its storage (the writer lock; on PostgreSQL, its instance lease): stopped serving (nothing more is written or run here)\n',
    );
    await instance.close();
    return EXIT.failed;
  }
  io.out(`stopping: draining calls in flight (up to ${graceSec} s)\n`);
  const stop = await instance.stop({ graceMs: graceSec * 1000 });
  if (!stop.drained)
    io.out(
      `grace period over: ${stop.abandoned} call(s) recorded as abandoned, ${stop.mayHaveRun} of them may have run\n`,
    );
  io.out('stopped\n');
  return EXIT.ok;
}

async function call(
  io: CliIo,
  dir: string,
  tool: string,
  v: {
    params?: string;
    session?: string;
    client?: string;
    wait?: string;
    'request-id'?: string;
    background?: boolean;
    gate?: string;
  },
): Promise<number> {
  if (v.params === undefined) throw new UsageError('--params JSON is required');
  if (v.gate !== undefined) gateUrlOf(v.gate);
  let params: JsonValue;
  try {
    params = parseJson(v.params);
  } catch {
    throw new UsageError('--params is not valid JSON');
  }
  if (typeof params !== 'object' || params === null || Array.isArray(params))
    throw new UsageError('--params must be a JSON object');
  const file = readClientFile(dir, v.client ?? DEMO_CLIENT.identity);
  // `--gate URL`: a Gate of its own (`failclosed serve gate`), with the client key of `--data`.
  const connect: typeof withConnection =
    v.gate === undefined
      ? withConnection
      : (_dir, fn) => fn({ url: v.gate!, token: '', inProcess: false, close: () => Promise.resolve() });
  return connect(dir, async (conn) => {
    const client = createClient({
      url: conn.url,
      identity: file.identity,
      tenant: file.tenant,
      key: file.key,
    });
    const wait = intOption(v.wait, 'wait');
    if (v.background === true) {
      if (wait !== undefined) throw new UsageError('--wait and --background cannot be combined');
      // A background call (docs/jobs.md): queued once decided; `jobs show ID --token T` reads it.
      const q = await client.submit(tool, params as JsonObject, {
        ...(v.session === undefined ? {} : { session: v.session }),
        ...(v['request-id'] === undefined ? {} : { requestId: v['request-id'] }),
      });
      print(io, q as unknown as JsonValue);
      if (q.outcome === 'unknown') return answerLostExit(io, q.request_id);
      if (q.outcome !== 'queued') return failedExit(io, conn.url, q);
      if (!conn.inProcess) return EXIT.ok;
      // No gate was running: this command's own instance holds the job, and would record it
      // abandoned if it stopped now. It stays until the job has its outcome, and exits with it.
      io.err('no gate is running: this command runs the job before it stops\n');
      let s = await readJob(conn.url, q.job.id, q.job.token);
      while (s.outcome === 'queued' || s.outcome === 'unknown') {
        await new Promise((r) => setTimeout(r, 100));
        s = await readJob(conn.url, q.job.id, q.job.token);
      }
      print(io, s);
      return s.outcome === 'executed' ? EXIT.ok : EXIT.failed;
    }
    const r = await client.call(tool, params as JsonObject, {
      ...(v.session === undefined ? {} : { session: v.session }),
      ...(v['request-id'] === undefined ? {} : { requestId: v['request-id'] }),
      ...(wait === undefined ? {} : { waitSec: wait }),
    });
    print(io, r);
    if (r.outcome === 'unknown') return answerLostExit(io, r.request_id);
    return r.outcome === 'executed' ? EXIT.ok : failedExit(io, conn.url, r);
  });
}

/**
 * The exit of a call denied or pending; the client's own deny for a `404` that is no Gate's answer
 * (a listener that serves no call: a Control Plane process, `serve control-plane`) says where calls
 * go instead. A Gate's own `404` deny (`ERR_APPROVAL_UNKNOWN`) is not that.
 */
function failedExit(io: CliIo, url: string, r: { outcome: string; code?: string; status?: number }): number {
  if (r.outcome === 'deny' && r.status === 404 && r.code === 'ERR_INTERNAL')
    io.err(`${url} takes no calls (a Control Plane process?): send the call to a Gate with --gate URL\n`);
  return EXIT.failed;
}

/** A call whose answer was lost: it may have run; says where to look, exits {@link EXIT.unknown}. */
function answerLostExit(io: CliIo, requestId: string): number {
  io.err(
    `the answer to ${requestId} was lost or unreadable: the call may have run; \`failclosed requests show ${requestId}\` tells\n`,
  );
  return EXIT.unknown;
}

/**
 * `jobs show ID --token T [--wait SEC]`: a background call's state; with `--wait`, read again
 * until it has an outcome or SEC seconds passed. Exit 0 executed, 1 otherwise (still queued
 * included).
 */
async function showJob(io: CliIo, dir: string, id: string, token: string, waitSec: number): Promise<number> {
  return withConnection(dir, async (conn) => {
    // Reading a job needs no key: the token is the reader's credential.
    const until = Date.now() + waitSec * 1000;
    let s = await readJob(conn.url, id, token);
    while (s.outcome === 'queued' && Date.now() < until) {
      await new Promise((r) => setTimeout(r, 250));
      s = await readJob(conn.url, id, token);
    }
    print(io, s);
    return s.outcome === 'executed' ? EXIT.ok : EXIT.failed;
  });
}

async function addClient(
  io: CliIo,
  dir: string,
  name: string,
  tenant: string | undefined,
  owner: string | undefined,
  roles: readonly string[],
): Promise<number> {
  if (tenant === undefined) throw new UsageError('--tenant is required');
  const key = generateSigningKey();
  return withConnection(dir, async (conn) => {
    const a = await operatorAction(conn, 'clients-add', {
      name,
      tenant,
      public_jwk: { ...key.publicJwk },
      ...(owner === undefined ? {} : { owner }),
      roles: [...roles],
    });
    if (a.status !== 201) return report(io, a);
    const path = writeClientFile(dir, name, {
      identity: name,
      tenant,
      key: exportSigningKeyJwk(key) as unknown as JsonObject,
    });
    print(io, { ...(a.body as JsonObject), key_file: path });
    return EXIT.ok;
  });
}

/** The value of an option that may be given once only. */
function one(values: readonly string[] | undefined, name: string): string | undefined {
  if (values === undefined) return undefined;
  if (values.length !== 1) throw new UsageError(`--${name} takes one value here`);
  return values[0];
}

/**
 * Rotates a client's key (OE-INV-025 key rotation for clients): the new public key is ledgered
 * and replaces the old one at once. Without `--public-key`, a new pair is made here for the
 * embedded default and its private key replaces `clients/NAME.json` only after the gate
 * confirmed; with it, a stale `clients/NAME.json` (the old private key) is removed.
 */
async function rotateClient(
  io: CliIo,
  dir: string,
  name: string,
  publicKeyFile: string | undefined,
  reason: string | undefined,
): Promise<number> {
  const made = publicKeyFile === undefined ? generateSigningKey() : undefined;
  let publicJwk: JsonValue;
  if (made !== undefined) publicJwk = { ...made.publicJwk };
  else {
    const v = parseJson(readFileSync(publicKeyFile ?? '', 'utf8'), { maxBytes: 8192 });
    const o = typeof v === 'object' && v !== null && !Array.isArray(v) ? (v as JsonObject) : {};
    publicJwk = o['public_jwk'] ?? v;
  }
  return withConnection(dir, async (conn) => {
    const a = await operatorAction(conn, 'clients-rotate', {
      name,
      public_jwk: publicJwk,
      ...(reason === undefined ? {} : { reason }),
    });
    if (a.status !== 200) return report(io, a);
    const body = a.body as JsonObject;
    const file = join(dataPaths(dir).clients, `${name}.json`);
    if (made !== undefined) {
      const tenant = body['tenant'];
      if (typeof tenant !== 'string') throw new Error('the rotation answer names no tenant');
      const path = writeClientFile(dir, name, {
        identity: name,
        tenant,
        key: exportSigningKeyJwk(made) as unknown as JsonObject,
      });
      print(io, { ...body, key_file: path });
    } else {
      if (existsSync(file)) rmSync(file);
      print(io, body);
    }
    return EXIT.ok;
  });
}

/**
 * `ledger move-key --out FILE`: the checkpoint key leaves the data directory for the ledger
 * process (`serve ledger`, its `key`). Under the data directory's lock: FILE is created anew
 * (exclusively, mode 0600, never through a symbolic link), written, flushed to disk with its
 * directory and read back; only then is the data directory's copy removed and that removal
 * flushed. A failure before the removal leaves the key where it was. Prints the origin, the vkey
 * the data directory's `checkpoints` pins, and the first entry's hash of the ledger the key signs
 * (`ledger-binding.json`, when the directory has one) for the ledger process's
 * `first_entry_hash`. Refused while a server holds the data directory.
 */
async function moveLedgerKey(io: CliIo, dir: string, out: string): Promise<number> {
  const p = dataPaths(dir);
  const config = readConfig(dir);
  const { lockDataDir } = await import('../embedded/index.js');
  const unlock = lockDataDir(p.root);
  try {
    if (!existsSync(p.ledgerKey)) {
      io.err(`${p.ledgerKey} does not exist: the key has been moved already\n`);
      return EXIT.failed;
    }
    const bytes = readFileSync(p.ledgerKey);
    const key = readSigningKey(p.ledgerKey);
    // The ledger the key signs, for the ledger process's `first_entry_hash` (ledger-binding.ts).
    const binding = readLedgerBinding(p.root);
    mkdirSync(dirname(out), { recursive: true, mode: 0o700 });
    let fd: number;
    try {
      fd = openSync(
        out,
        fsConstants.O_WRONLY | fsConstants.O_CREAT | fsConstants.O_EXCL | fsConstants.O_NOFOLLOW,
        0o600,
      );
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'EEXIST') {
        io.err(`${out} exists: refusing to overwrite a key\n`);
        return EXIT.failed;
      }
      throw err;
    }
    try {
      fchmodSync(fd, 0o600);
      writeSync(fd, bytes);
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    syncDirectory(dirname(out));
    if (!readFileSync(out).equals(bytes)) {
      io.err(`${out} does not read back as written: the key stays in ${p.ledgerKey}\n`);
      return EXIT.failed;
    }
    rmSync(p.ledgerKey);
    syncDirectory(dirname(p.ledgerKey));
    print(io, {
      origin: config.origin,
      vkey: vkeyFor(config.origin, key.publicKey),
      ...(binding === undefined ? {} : { first_entry_hash: binding.first_entry_hash }),
      key_file: out,
    });
    return EXIT.ok;
  } finally {
    unlock();
  }
}

/** Flushes a directory's entries (a file created or removed in it) to disk. */
function syncDirectory(path: string): void {
  const fd = openSync(path, fsConstants.O_RDONLY);
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

/**
 * `serve executor`, `serve gate` and `serve ledger`: a role as its own process until
 * SIGTERM/SIGINT; SIGHUP reloads its TLS files.
 */
async function serveRole(io: CliIo, role: 'executor' | 'gate' | 'ledger', config: string): Promise<number> {
  const node =
    role === 'executor'
      ? await (await import('../embedded/index.js')).startExecutorNode(config)
      : role === 'gate'
        ? await (await import('../embedded/index.js')).startGateNode(config)
        : await (await import('../embedded/index.js')).startLedgerNode(config);
  io.out(
    role === 'executor'
      ? `execution layer listening on ${node.url} (mutual TLS, gate role only)\n`
      : role === 'gate'
        ? `gate listening on ${node.url} (control plane ${(node as GateNode).config.control_plane_url})\n`
        : `ledger listening on ${node.url} (mutual TLS, control-plane role only), ${(node as LedgerNode).size()} entries verified, key ${(node as LedgerNode).vkey}\n`,
  );
  const unsubscribe = io.onReload?.(() => {
    node.reloadTls().then(
      () => io.out('reloaded TLS material\n'),
      (err: unknown) =>
        io.err(
          `TLS reload failed, refusing every peer until a reload succeeds: ${err instanceof Error ? err.message : 'failed'}\n`,
        ),
    );
  });
  // A Gate also stops on its own when it loses its instance lease: that is a failure, for its
  // supervisor to restart it.
  const stoppedItself = role === 'gate' ? (node as GateNode).stopped : new Promise<string>(() => undefined);
  const why = await Promise.race([
    stoppedItself,
    new Promise<undefined>((done) => {
      if (io.signal === undefined) return;
      if (io.signal.aborted) done(undefined);
      else io.signal.addEventListener('abort', () => done(undefined), { once: true });
    }),
  ]);
  unsubscribe?.();
  await node.close();
  if (why !== undefined) {
    io.err(`stopped: ${why}\n`);
    return EXIT.failed;
  }
  io.out('stopped\n');
  return EXIT.ok;
}

async function dispatch(io: CliIo, argv: readonly string[]): Promise<number> {
  // `verify` is offline and has options of its own: hand it everything after the word.
  const verifyAt = commandIndex(argv);
  if (argv[verifyAt] === 'verify') {
    // No `readFile`: the bundle is streamed from disk, whatever its size (a 1 GB bundle fits no string).
    return runVerifyCli(argv.slice(verifyAt + 1), { out: io.out, err: io.err });
  }
  // `replay` has options of its own (and may be preceded by `--data DIR`).
  if (argv[verifyAt] === 'replay')
    return runReplayCommand([...argv.slice(0, verifyAt), ...argv.slice(verifyAt + 1)], io);
  // `certs` works on its own directory, with options of its own.
  if (argv[verifyAt] === 'certs') return runCertsCli(argv.slice(verifyAt + 1), io.out);
  // `inventory` has options of its own (`--config`, `--json`); `--data` may come before the word.
  if (argv[verifyAt] === 'inventory')
    return runInventoryCli([...argv.slice(0, verifyAt), ...argv.slice(verifyAt + 1)], io);
  // Identifiers (kids, ids: base64url) may start with '-', even '-h…' or '--…': anything that
  // cannot be one of our options (`-h`, `--`, or `--` and a lower-case name) is a value.
  const MARK = '\u0000';
  const optionLike = (a: string): boolean => a === '-h' || a === '--' || /^--[a-z]/.test(a);
  const args = argv.map((a) => (a.startsWith('-') && !optionLike(a) ? `${MARK}${a}` : a));
  const parsed = parseArgs({ args, options: OPTIONS, allowPositionals: true, strict: true });
  const unmark = (a: string): string => (a.startsWith(MARK) ? a.slice(1) : a);
  const pos = parsed.positionals.map(unmark);
  const v = Object.fromEntries(
    Object.entries(parsed.values).map(([k, x]) => [k, typeof x === 'string' ? unmark(x) : x]),
  ) as typeof parsed.values;
  const [cmd, sub, arg1, arg2] = pos;
  if (v.help === true || cmd === undefined || cmd === 'help') {
    io.out(USAGE);
    return cmd === undefined && v.help !== true ? EXIT.usage : EXIT.ok;
  }
  const dir = resolve(
    v.data ?? (cmd === 'init' ? sub : undefined) ?? io.env['FAILCLOSED_HOME'] ?? '.failclosed',
  );
  // Options that say what a server is or where its state lives are refused where nothing reads
  // them: `call --backend postgres://…` must not look like a call made against PostgreSQL.
  // (`serve executor|gate|ledger` read theirs from --config.)
  const serving = cmd === 'up' || (cmd === 'serve' && sub === 'control-plane');
  const servingOnly: readonly [keyof typeof v, boolean][] = [
    ['backend', cmd === 'up' || cmd === 'init'],
    ['standby', cmd === 'up'],
    ['port', serving],
    ['grace', serving],
  ];
  // And the options of a call where no call is made: `requests show ID --gate URL` must not look
  // like a read from that Gate, nor `--wait` like a wait.
  const calling = cmd === 'call';
  const jobShow = cmd === 'jobs' && sub === 'show';
  const callOnly: readonly [keyof typeof v, boolean][] = [
    ['gate', calling || jobShow || cmd === 'mcp' || cmd === 'demo'],
    ['wait', calling || jobShow],
    ['request-id', calling],
    ['background', calling],
    ['token', jobShow],
    ['session', calling || cmd === 'policy' || (cmd === 'admin' && sub === 'reset-breaker')],
  ];
  for (const [name, takes] of [...servingOnly, ...callOnly])
    if (v[name] !== undefined && !takes)
      throw new UsageError(
        `${[cmd, cmd === 'serve' ? sub : undefined].filter(Boolean).join(' ')} takes no --${name}`,
      );
  // The operator acting (OE-INV-025): `--operator NAME` or $FAILCLOSED_OPERATOR, else the bootstrap.
  const as = (): ConnectOptions => operatorConnection(dir, io.env, v.operator);
  const op = (fn: (c: Connection) => Promise<HttpAnswer>): Promise<number> =>
    withConnection(dir, async (c) => report(io, await fn(c)), as());
  // `--role` and `--tenant` repeat; approver commands also take comma-separated lists.
  if (isApprovalCommand(cmd)) return runApprovalCommand(io, dir, pos, v, as);
  if (cmd === 'operators' || (cmd === 'admin' && sub === 'rotate-operator-token')) {
    const [s, name] = cmd === 'operators' ? [sub, arg1] : ['rotate', 'operator'];
    return op(async (c) => {
      const a = await runOperatorsCommand(
        (action, body) => operatorAction(c, action, body),
        s,
        name,
        {
          dir,
          env: io.env,
          out: v.out,
          tenants: v.tenant,
          allTenants: v['all-tenants'],
          reason: v.reason,
          oidcSubject: v['oidc-subject'],
        },
        cmd === 'operators' ? arg2 : undefined,
      );
      return a as HttpAnswer;
    });
  }
  const tenant = one(v.tenant, 'tenant');
  if (cmd === 'policy')
    return (await import('./policy.js')).runPolicyCommand(io, dir, pos, { ...v, tenant }, as);
  if (cmd === 'webhooks') return runWebhookCommand(io, dir, sub, arg1, v);
  switch (cmd) {
    case 'init': {
      const { initDataDir } = await import('../embedded/index.js');
      const r = await initDataDir(dir, v.backend === undefined ? {} : { backend: v.backend });
      io.out(r.created ? `initialised ${r.dir}\n` : `${r.dir} is already initialised\n`);
      return EXIT.ok;
    }
    case 'up':
      return up(
        io,
        dir,
        intOption(v.port, 'port'),
        intOption(v.grace, 'grace'),
        v.standby === true,
        undefined,
        v.backend,
      );
    case 'serve':
      // The Control Plane process runs over its data directory (its keys are there), the other
      // roles over a configuration file of their own.
      // No `--standby`: on PostgreSQL, which it requires, every Control Plane process serves at once.
      if (sub === 'control-plane' && v.config === undefined && arg1 === undefined)
        return up(io, dir, intOption(v.port, 'port'), intOption(v.grace, 'grace'), false, 'control-plane');
      if (
        (sub !== 'executor' && sub !== 'gate' && sub !== 'ledger') ||
        v.config === undefined ||
        arg1 !== undefined
      )
        throw new UsageError(
          'serve executor|gate|ledger --config FILE | serve control-plane [--data DIR] [--port N] [--grace SEC]',
        );
      return serveRole(io, sub, v.config);
    case 'call':
      if (sub === undefined) throw new UsageError('call TOOL --params JSON');
      return call(io, dir, sub, v);
    case 'mcp':
      if (sub !== undefined) throw new UsageError('mcp [--client NAME] [--gate URL]');
      return (await import('./mcp.js')).runMcpStdio(
        dir,
        v.client ?? DEMO_CLIENT.identity,
        { stdin: process.stdin, stdout: process.stdout },
        io.err,
        io.signal,
        v.gate === undefined ? undefined : gateUrlOf(v.gate),
      );
    case 'jobs': {
      // The token from FAILCLOSED_JOB_TOKEN keeps it out of the process list and shell history.
      const token = v.token ?? io.env['FAILCLOSED_JOB_TOKEN'];
      if (sub !== 'show' || arg1 === undefined || token === undefined || token === '')
        throw new UsageError('jobs show ID (--token TOKEN | FAILCLOSED_JOB_TOKEN) [--wait SEC]');
      return showJob(io, dir, arg1, token, intOption(v.wait, 'wait') ?? 0);
    }
    case 'requests':
      if (sub !== 'show' || arg1 === undefined) throw new UsageError('requests show ID');
      return op((c) => getJson(c, `/v1/requests/${encodeURIComponent(arg1)}`, true));
    case 'clients':
      if (sub === 'add' && arg1 !== undefined) return addClient(io, dir, arg1, tenant, v.owner, v.role ?? []);
      if (sub === 'rotate' && arg1 !== undefined)
        return rotateClient(io, dir, arg1, v['public-key'], v.reason);
      if (sub === 'revoke' && arg1 !== undefined)
        return op((c) =>
          operatorAction(c, 'clients-revoke', {
            name: arg1,
            ...(v.reason === undefined ? {} : { reason: v.reason }),
          }),
        );
      if (sub === 'list') return op((c) => operatorAction(c, 'clients-list', {}));
      throw new UsageError(
        'clients add NAME --tenant T [--role R]... | clients rotate NAME [--public-key FILE] | clients revoke NAME | clients list',
      );
    case 'ledger': {
      if (sub === 'move-key' && v.out !== undefined && arg1 === undefined)
        return moveLedgerKey(io, dir, resolve(v.out));
      if (sub !== 'export' || v.out === undefined)
        throw new UsageError(
          'ledger export --out FILE [--trace ID] [--from N --to M] | ledger move-key --out FILE',
        );
      const from = intOption(v.from, 'from');
      const to = intOption(v.to, 'to');
      const body: JsonObject = {
        ...(v.trace === undefined ? {} : { trace_id: v.trace }),
        ...(from === undefined ? {} : { from }),
        ...(to === undefined ? {} : { to }),
      };
      const out = v.out;
      // Through the Gate even for a local data directory: the one ledger writer records the
      // export (audit.export) before it is read; the bundle streams to the file, never parsed here.
      return withConnection(
        dir,
        async (c) => {
          const a = await operatorDownload(c, 'ledger-export', body, out);
          if (a.status !== 200) return report(io, a);
          io.out(`wrote ${out}\n`);
          return EXIT.ok;
        },
        as(),
      );
    }
    case 'schedules':
      if (sub === 'list' && arg1 === undefined) return op((c) => operatorAction(c, 'schedules-list', {}));
      if ((sub === 'pause' || sub === 'resume' || sub === 'remove') && arg1 !== undefined)
        return op((c) =>
          operatorAction(c, `schedules-${sub}`, { id: arg1, reason: v.reason ?? `schedules ${sub} (CLI)` }),
        );
      throw new UsageError('schedules list | schedules pause|resume|remove ID [--reason TEXT]');
    case 'admin':
      if (sub === 'kill-switch') {
        const on = onOff(arg1);
        return op((c) => operatorAction(c, 'kill-switch', { on }));
      }
      if (sub === 'lockdown' && arg1 !== undefined) {
        const on = onOff(arg2);
        return op((c) => operatorAction(c, 'lockdown', { tenant: arg1, on }));
      }
      if (sub === 'rotate-issuer-key') return op((c) => operatorAction(c, 'issuer-rotate', {}));
      if (sub === 'revoke-issuer-key' && arg1 !== undefined)
        return op((c) => operatorAction(c, 'issuer-revoke', { kid: arg1 }));
      if (sub === 'quarantine' && arg1 !== undefined) {
        const on = onOff(arg2);
        return op((c) => operatorAction(c, 'quarantine', { session: arg1, on }));
      }
      if (sub === 'reset-breaker') {
        const target = { session: v.session, client: v.client, tenant, reason: v.reason };
        const body: Record<string, JsonValue> = {};
        for (const [k, x] of Object.entries(target)) if (x !== undefined) body[k] = x;
        return op((c) => operatorAction(c, 'breaker-reset', body));
      }
      throw new UsageError(
        'admin kill-switch on|off | admin lockdown TENANT on|off | admin quarantine SESSION|client:NAME on|off | admin reset-breaker --session S|--client NAME|--tenant T',
      );
    case 'jwks':
      return op((c) => getJson(c, '/v1/jwks', false));
    case 'trust-roots': {
      const out = v.out;
      if (out === undefined) return op((c) => getJson(c, '/v1/trust-roots', false));
      return withConnection(dir, async (c) => {
        const a = await getJson(c, '/v1/trust-roots', false);
        if (a.status !== 200) return report(io, a);
        // The exact bytes GET /v1/trust-roots serves: both channels give the same SHA-256 to pin.
        writeFileSync(out, JSON.stringify(a.body));
        io.out(`wrote ${out}\n`);
        return EXIT.ok;
      });
    }
    case 'demo': {
      const { runDemo, runDemoThrough } = await import('./demo.js');
      // Through a deployed topology: its Gate for calls, the Control Plane process serving --data.
      if (v.gate !== undefined) return runDemoThrough(io.out, { gateUrl: gateUrlOf(v.gate), dataDir: dir });
      return runDemo(io.out, v.data === undefined ? {} : { dataDir: dir });
    }
    default:
      throw new UsageError(`unknown command ${cmd}`);
  }
}

/** `--gate URL`: an http(s) origin, nothing after it. */
function gateUrlOf(url: string): string {
  if (!/^https?:\/\/[^/?#]+\/?$/.test(url)) throw new UsageError('--gate must be http(s)://HOST:PORT');
  return url;
}

/** Runs one CLI invocation; never throws. */
export async function runCli(argv: readonly string[], io: CliIo): Promise<number> {
  try {
    return await dispatch(io, argv);
  } catch (err) {
    if (
      err instanceof UsageError ||
      err instanceof WebhookUsageError ||
      err instanceof OperatorUsageError ||
      err instanceof CertsUsageError ||
      err instanceof InventoryUsageError ||
      (err instanceof TypeError && 'code' in err && String(err.code).startsWith('ERR_PARSE_ARGS'))
    ) {
      io.err(`failclosed: ${err.message}\n\n${USAGE}`);
      return EXIT.usage;
    }
    io.err(`failclosed: ${err instanceof Error ? err.message : 'failed'}\n`);
    return EXIT.failed;
  }
}
