/**
 * The ledger process (`failclosed serve ledger`, docs/deployment.md "The ledger process"): the
 * only holder of the checkpoint key (SPEC §1 separation of powers, §4 checkpoints; L7 ledger
 * protection). It follows the shared PostgreSQL ledger the Control Plane processes append to,
 * reads every new entry, verifies that it continues the hash chain it verified before (from the
 * snapshot and checkpoint it last signed), and signs C2SP checkpoints of what it verified: on a
 * cadence (`checkpoint_entries`, `checkpoint_ms`) and when a Control Plane process asks for one at
 * an exact size (an export, a request's evidence). It appends nothing.
 *
 * A writer that rewrote or dropped entries in the database gets no further checkpoint: the
 * follow fails (`ERR_LEDGER_UNAVAILABLE`), the process logs it and refuses every checkpoint until
 * the store continues the verified chain again. The Control Plane holds only the public key and
 * checks each checkpoint it is handed against its own tree (`CheckpointWitness` in
 * `ledger/checkpoint.ts`), so neither side alone can sign a history the other did not verify.
 *
 * Its listener serves mutual TLS with a certificate naming the `ledger` role and admits only peers
 * whose certificate names the `control-plane` role (FC-INV-6, L7 mutual TLS between roles); every
 * other peer is refused at or right after the handshake, counted and logged (this process cannot
 * append, so its refusals are in its log and metrics, not the ledger). Several may run on one
 * schema (a standby): they sign the same roots with the same key, and the store keeps the first
 * checkpoint at each size.
 */
import { existsSync, readFileSync } from 'node:fs';
import { dirname, isAbsolute, join, resolve } from 'node:path';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { FailclosedError, guardObserver, parseJson, systemClock, withDeadline } from '../kernel/index.js';
import type { Clock, DenialCode, JsonValue } from '../kernel/index.js';
import { noteSignerFor } from '../kernel/signing/index.js';
import { createLedger, type Ledger, type LedgerStore, type StoredCheckpoint } from '../ledger/index.js';
import { assertSchemaCurrent, createPostgresLedgerStore, openPostgresPool } from '../storage/index.js';
import type { PostgresPool } from '../storage/index.js';
import { createMtlsServer } from '../transport/index.js';
import { answerDeny, answerJson, readJsonBody } from './json-answer.js';
import type { MtlsServer, TlsFiles } from '../transport/index.js';
import { parseBackendSpec } from './backend-spec.js';
import { assertDatabaseRole } from './db-role.js';
import { readSigningKey } from './data-dir.js';
import {
  LedgerBindingError,
  createCheckpointMemory,
  readLedgerBindingFile,
  rolledBack,
  writeLedgerBindingFile,
} from './ledger-binding.js';
import type { LedgerBinding } from './ledger-binding.js';
import {
  configListen,
  configObservability,
  configPositive,
  configText,
  configTls,
  isConfigObject,
} from './node-config.js';
import {
  createTelemetry,
  ledgerProcessMetrics,
  resolveTelemetrySettings,
  serveMetrics,
} from './telemetry/index.js';
import type { LogConfig, LogDestination, LogLevel, MetricsConfig, MetricsServer } from './telemetry/index.js';

/** The ledger process's configuration file (JSON). */
export interface LedgerNodeConfig {
  /** Where the mTLS listener is (IP literal, port; 0 = any free port). */
  readonly listen: { readonly host: string; readonly port: number };
  /** The ledger's origin, exactly the Control Plane's `origin` (`failclosed.json`). */
  readonly origin: string;
  /** The checkpoint private key (a JWK file, mode 0600), moved here from the Control Plane's `keys/ledger.jwk`. */
  readonly key: string;
  /**
   * The hash of entry 0 of the ledger this key signs, as `ledger move-key` printed it (the Control
   * Plane's `ledger-binding.json`): the process refuses to start over a store whose entry 0 is
   * another or that is empty, so its key signs no second ledger (docs/storage.md "One ledger per
   * data directory"). Optional for configurations written before it; the shipped ones hold a
   * placeholder that is refused until replaced.
   */
  readonly first_entry_hash?: string;
  /**
   * A file this process keeps (the format of the Control Plane's `ledger-binding.json`, in a
   * directory of its own that survives restarts, never in the database): the ledger its key signs
   * and the largest checkpoint it signed or verified. A store behind that checkpoint, or holding
   * other entries up to it (a database restored to an earlier point, a failover that lost commits),
   * is refused at start: signing it would fork checkpoints already handed out (docs/storage.md
   * "One ledger per data directory"). Written at the first start that verified a checkpoint of the
   * ledger (or matched `first_entry_hash`). Optional for configurations written before it.
   */
  readonly binding?: string;
  /** The shared ledger: a `postgres://` URL (`?schema=` names the schema), on the ledger's own role. */
  readonly state: string;
  /** This process's mutual TLS: CA, its `ledger` certificate and key, optional CRL and revoked serials. */
  readonly tls: TlsFiles;
  /** Period (ms) of reading and verifying new entries; default 1000. */
  readonly follow_ms: number;
  /** Sign a checkpoint after this many new entries (default 256) or this long with new ones (ms, default 10000). */
  readonly checkpoint_entries: number;
  readonly checkpoint_ms: number;
  readonly log?: LogConfig;
  readonly metrics?: MetricsConfig;
}

const FIELDS = [
  'listen',
  'origin',
  'key',
  'first_entry_hash',
  'binding',
  'state',
  'tls',
  'follow_ms',
  'checkpoint_entries',
  'checkpoint_ms',
  'log',
  'metrics',
];
const bad = (m: string): TypeError => new TypeError(`ledger config: ${m}`);

/** Parses the configuration strictly; relative paths are resolved against `base` (its directory). */
export function parseLedgerConfig(bytes: Uint8Array, base: string): LedgerNodeConfig {
  const v = parseJson(bytes, { maxBytes: 64 * 1024, maxDepth: 6 });
  if (!isConfigObject(v)) throw bad('not an object');
  for (const k of Object.keys(v)) if (!FIELDS.includes(k)) throw bad(`unknown field ${k}`);
  const state = configText(v, 'state', bad);
  let spec: ReturnType<typeof parseBackendSpec>;
  try {
    spec = parseBackendSpec(state);
  } catch {
    throw bad('state must be a postgres:// URL');
  }
  if (spec.kind !== 'postgres') throw bad('state must be a postgres:// URL (the shared ledger)');
  const key = configText(v, 'key', bad);
  const first = v['first_entry_hash'];
  if (first !== undefined && (typeof first !== 'string' || !/^[0-9a-f]{64}$/.test(first)))
    throw bad(
      'first_entry_hash must be the 64 lowercase hex digits `failclosed ledger move-key` printed (the Control Plane data directory’s ledger-binding.json)',
    );
  const binding = v['binding'] === undefined ? undefined : configText(v, 'binding', bad);
  return Object.freeze({
    listen: configListen(v['listen'], bad),
    origin: configText(v, 'origin', bad, 255),
    key: isAbsolute(key) ? key : join(base, key),
    ...(first === undefined ? {} : { first_entry_hash: first }),
    ...(binding === undefined ? {} : { binding: isAbsolute(binding) ? binding : join(base, binding) }),
    state,
    tls: configTls(v['tls'], base, bad),
    follow_ms: configPositive(v, 'follow_ms', 1000, bad),
    checkpoint_entries: configPositive(v, 'checkpoint_entries', 256, bad),
    checkpoint_ms: configPositive(v, 'checkpoint_ms', 10_000, bad),
    ...configObservability(v, bad),
  });
}

/** Reads and parses the configuration file at `path`. */
export function readLedgerConfig(path: string): LedgerNodeConfig {
  const file = resolve(path);
  return parseLedgerConfig(readFileSync(file), dirname(file));
}

/**
 * What the ledger process's role may hold in the schema, exactly (`deploy/postgres/ledger-role.sql`):
 * the schema version and the entries read-only, the checkpoints it adds, and the tree snapshot it
 * keeps. It can neither write nor change an entry, so the holder of the checkpoint key cannot also
 * rewrite the history it signs (SPEC §1 separation of powers, L7 ledger protection).
 */
const LEDGER_GRANTS: Readonly<Record<string, readonly string[]>> = {
  failclosed_schema: ['SELECT'],
  ledger_entries: ['SELECT'],
  ledger_checkpoints: ['SELECT', 'INSERT'],
  ledger_meta: ['SELECT', 'INSERT', 'UPDATE'],
  ledger_tree_chunks: ['SELECT', 'INSERT', 'UPDATE', 'DELETE'],
};

/** Refuses a database role that can do more than the ledger process needs (`assertDatabaseRole`). */
export function assertLedgerRole(db: PostgresPool): Promise<void> {
  return assertDatabaseRole(db, LEDGER_GRANTS, {
    role: 'ledger',
    what: 'the ledger process',
    script: 'ledger-role.sql',
  });
}

/** Options of {@link startLedgerNode}. */
export interface LedgerNodeOptions {
  readonly clock?: Clock;
  readonly env?: Readonly<Record<string, string | undefined>>;
  readonly logDestination?: LogDestination;
  readonly defaultLogLevel?: LogLevel;
}

/** A running ledger process. */
export interface LedgerNode {
  /** `https://HOST:PORT` of its listener. */
  readonly url: string;
  readonly config: LedgerNodeConfig;
  /** The public checkpoint key (C2SP vkey): pin it in the Control Plane's `checkpoints.vkey`. */
  readonly vkey: string;
  readonly metricsUrl?: string;
  /** The entries verified so far. */
  size(): number;
  /** Reads and verifies the new entries now (as every `follow_ms`); resolves with the verified size. */
  follow(): Promise<number>;
  reloadTls(): Promise<void>;
  close(): Promise<void>;
}

const MAX_BODY = 4096;
/** Deadline (ms) of catching up and signing one asked-for checkpoint. */
const SIGN_MS = 5000;

/** The asked-for size from an untrusted body, or undefined. */
function sizeOf(v: JsonValue): number | undefined {
  if (!isConfigObject(v)) return undefined;
  for (const k of Object.keys(v)) if (k !== 'size') return undefined;
  const size = v['size'];
  return typeof size === 'number' && Number.isSafeInteger(size) && size >= 1 ? size : undefined;
}

/** The process's `binding` file, checked against the store's entry 0 (`first`: that entry's hash). */
async function openBinding(
  config: LedgerNodeConfig,
  store: LedgerStore,
): Promise<{ readonly binding: LedgerBinding | undefined; readonly first: string | undefined }> {
  if (config.binding === undefined) return { binding: undefined, first: undefined };
  // Before the whole ledger is read: a missing directory is a configuration error.
  if (!existsSync(dirname(config.binding)))
    throw new LedgerBindingError(
      `binding: the directory of ${config.binding} does not exist: make it, writable by this process only (the shipped files: systemd's StateDirectory, compose's ./ledger-state, a Kubernetes claim)`,
    );
  const binding = readLedgerBindingFile(config.binding, 'this ledger process');
  const first = (await store.entry(0))?.entry_hash;
  if (
    binding !== undefined &&
    config.first_entry_hash !== undefined &&
    binding.first_entry_hash !== config.first_entry_hash
  )
    throw new LedgerBindingError(
      `${config.binding} names another ledger (first entry ${binding.first_entry_hash}) than first_entry_hash (${config.first_entry_hash}): one of the two is not this key's`,
    );
  if (binding !== undefined && first !== binding.first_entry_hash)
    throw otherLedger(first, `first entry ${binding.first_entry_hash}, ${config.binding}`);
  return { binding, first };
}

/** The refusal of a store whose entry 0 (`first`) is not the one this key signs (`signs`, where it is named). */
function otherLedger(first: string | undefined, signs: string): LedgerBindingError {
  return new LedgerBindingError(
    first === undefined
      ? `the shared ledger (state) holds no entry, but this key signs another ledger (${signs}): signing another would fork its checkpoints`
      : `the shared ledger (state) holds another ledger (first entry ${first}) than the one this key signs (${signs}): signing it would fork its checkpoints`,
  );
}

/**
 * The binding a first start records: only with a proof that the store is this key's ledger (its
 * latest checkpoint verified under this key and origin at open, or `first_entry_hash` matched).
 */
function bindingOf(
  config: LedgerNodeConfig,
  first: string | undefined,
  verified: StoredCheckpoint | undefined,
): LedgerBinding {
  if (first === undefined)
    throw new LedgerBindingError(
      `the shared ledger (state) holds no entry: the Control Plane writes its first entries (failclosed init) before the ledger process starts`,
    );
  if (verified === undefined && config.first_entry_hash === undefined)
    throw new LedgerBindingError(
      `${config.binding} does not exist yet, and the shared ledger (state) holds no checkpoint of this key that would show it is this key's ledger: set first_entry_hash to what \`failclosed ledger move-key\` printed`,
    );
  return {
    version: 1,
    first_entry_hash: first,
    ...(verified === undefined ? {} : { checkpoint: { size: verified.size, root_hash: verified.root_hash } }),
  };
}

/** The refusal of a store rolled back behind (or forked beside) the checkpoint `binding` remembers. */
function rollbackRefusal(
  file: string,
  binding: LedgerBinding,
  ledger: Ledger,
  mismatch: 'behind' | 'other',
): LedgerBindingError {
  const cp = binding.checkpoint!;
  return new LedgerBindingError(
    mismatch === 'behind'
      ? `the shared ledger (state) holds ${ledger.size()} entries, but this key signed a checkpoint of it at size ${cp.size} (${file}): the database was rolled back (restored to an earlier point, or a failover lost commits) and has lost entries auditors may hold a checkpoint over; signing it would sign other roots at sizes already signed (a fork). Restore the database to hold at least ${cp.size} entries`
      : `the shared ledger (state) holds other entries up to size ${cp.size} than the checkpoint this key signed there (${file}): signing it would fork that checkpoint. Restore the database the checkpoint was signed over`,
  );
}

/** Starts the ledger process from its configuration file. */
export async function startLedgerNode(
  configPath: string,
  options: LedgerNodeOptions = {},
): Promise<LedgerNode> {
  const config = readLedgerConfig(configPath);
  const clock = options.clock ?? systemClock;
  const env = options.env ?? process.env;
  const settings = resolveTelemetrySettings(config, env, options.defaultLogLevel ?? 'info');
  const signer = noteSignerFor(config.origin, readSigningKey(config.key).privateKey);
  const spec = parseBackendSpec(config.state);
  if (spec.kind !== 'postgres') throw bad('state must be a postgres:// URL');
  // Before the pool: a telemetry that cannot be built (its tracing SDK not loading) leaves nothing open.
  const telemetry = await createTelemetry({
    logLevel: settings.logLevel,
    role: 'ledger',
    env,
    ...(options.logDestination === undefined ? {} : { logDestination: options.logDestination }),
  });
  const db = openPostgresPool({
    url: spec.url,
    ...(spec.schema === undefined ? {} : { schema: spec.schema }),
    max: 4,
    applicationName: 'failclosed-ledger',
  });
  // Closed last: the ledger's and the pool's closing may still log.
  const closers: (() => Promise<void> | void)[] = [() => telemetry.close(), () => db.close()];
  const closeAll = async (): Promise<void> => {
    for (const c of closers.reverse()) await Promise.resolve(c()).catch(() => undefined);
  };
  let ledger: Ledger;
  let lastMemoryError: string | undefined;
  try {
    // The Control Plane process migrates the schema; the ledger process reads it at its own version.
    await assertSchemaCurrent(db);
    await assertLedgerRole(db);
    // Shared, without an instance lease: every append is refused, and a tree snapshot only
    // ever replaces a smaller one (a standby writes them too).
    const store = createPostgresLedgerStore(db, { shared: () => undefined });
    // The ledger this key signs, before anything is read or signed: over another store its
    // checkpoints would fork the evidence (ledger-binding.ts).
    if (config.first_entry_hash !== undefined) {
      const first = (await store.entry(0))?.entry_hash;
      if (first !== config.first_entry_hash)
        throw otherLedger(first, `first_entry_hash ${config.first_entry_hash}`);
    }
    // What this process remembers of the ledger its key signs (`binding`), checked against the
    // store's entry 0 before anything is read as its head or signed.
    const remembered = await openBinding(config, store);
    /** What the process remembers in its `binding` file (none without one). */
    const mem =
      config.binding === undefined
        ? undefined
        : createCheckpointMemory(config.binding, (err) => {
            // Once per distinct failure: the cadence retries at every follow.
            const reason = err instanceof Error ? err.message : 'write failed';
            if (reason === lastMemoryError) return;
            lastMemoryError = reason;
            telemetry.logger.error(
              { reason, file: config.binding },
              'a checkpoint could not be recorded in the binding file: none is signed until one can be',
            );
          });
    /** The store's latest checkpoint, as createLedger verified it under this key and origin. */
    let verifiedAtOpen: StoredCheckpoint | undefined;
    let opening = true;
    // Opening reads and verifies every entry (the stored tree snapshot is not trusted), and the
    // latest stored checkpoint against them: a rewritten store refuses to open (fail closed).
    ledger = await createLedger({
      store,
      clock,
      checkpointSigner: signer,
      origin: config.origin,
      checkpointEvery: { entries: config.checkpoint_entries, ms: config.checkpoint_ms },
      // A `ledger_verify` span in the trace of every call it follows; guarded, so telemetry
      // never fails a follow (and so never holds a checkpoint back).
      observer: guardObserver(telemetry.observer),
      // Every entry hashed here at start: no root it signs comes from nodes it did not compute.
      rehash: true,
      onCheckpoint: (cp) => {
        if (opening) verifiedAtOpen = cp;
        mem?.remember(cp);
      },
      // Each checkpoint it signs is in its binding file before it is stored or handed out.
      ...(mem === undefined ? {} : { beforeCheckpointStored: (cp) => mem.record(cp) }),
    });
    opening = false;
    const opened = ledger;
    closers.push(async () => {
      await opened.close();
      mem?.close();
      await mem?.settled();
    });
    if (config.binding !== undefined && mem !== undefined) {
      // Not behind (nor beside) a checkpoint this process signed or verified, before it signs.
      const mismatch = rolledBack(remembered.binding?.checkpoint, ledger);
      if (mismatch !== undefined)
        throw rollbackRefusal(config.binding, remembered.binding!, ledger, mismatch);
      const found = remembered.binding ?? bindingOf(config, remembered.first, verifiedAtOpen);
      // Written at every start, before anything is signed or served, with the larger of the
      // checkpoint remembered and the one the open verified: a file that cannot be written stops
      // the start here rather than leaving signatures unremembered.
      const binding: LedgerBinding =
        verifiedAtOpen !== undefined && verifiedAtOpen.size > (found.checkpoint?.size ?? 0)
          ? { ...found, checkpoint: { size: verifiedAtOpen.size, root_hash: verifiedAtOpen.root_hash } }
          : found;
      try {
        await writeLedgerBindingFile(config.binding, binding);
      } catch (err) {
        throw new LedgerBindingError(
          `binding: ${config.binding} cannot be written (${err instanceof Error ? err.message : 'write failed'}): the ledger process records there every checkpoint it signs, so it does not start without it. Make its directory, writable by this process only`,
        );
      }
      mem.bound(binding);
    }
  } catch (err) {
    await closeAll();
    throw err;
  }
  const log = telemetry.logger;
  const instruments = ledgerProcessMetrics(telemetry.metrics, () => ledger.size());

  // Follows: serialized by the writer; a failure is logged once when it starts and once when it ends.
  let failing: string | undefined;
  const follow = async (): Promise<number> => {
    try {
      const size = await ledger.follow();
      if (failing !== undefined) log.info({ size }, 'the ledger continues the verified chain again');
      failing = undefined;
      return size;
    } catch (err) {
      const why = err instanceof Error ? err.message : 'failed';
      if (failing !== why)
        log.error({ reason: why }, 'the ledger cannot be followed: no checkpoint is signed until it can');
      failing = why;
      instruments.followFailed();
      throw err;
    }
  };

  const handler = (req: IncomingMessage, res: ServerResponse): void => {
    const send = (status: number, body: JsonValue): void => answerJson(res, status, body);
    const refuse = (code: DenialCode, reason: string): void => answerDeny(res, code, reason);
    const handle = async (): Promise<void> => {
      if (req.method !== 'POST' || req.url !== '/v1/ledger/checkpoint') {
        req.resume();
        return send(404, { error: 'not_found' });
      }
      const v = await readJsonBody(req, res, MAX_BODY, 4);
      if (v === undefined) return;
      const size = sizeOf(v);
      if (size === undefined) return refuse('ERR_REQUEST_MALFORMED', 'size: a positive integer');
      const r = await withDeadline(async () => {
        // Everything up to the store's head, verified, before signing at `size`.
        const verified = await follow();
        if (size > verified) throw new FailclosedError('ERR_LEDGER_UNAVAILABLE', 'beyond the ledger');
        return ledger.checkpoint(size);
      }, SIGN_MS);
      if (r.status !== 'ok') return refuse('ERR_LEDGER_UNAVAILABLE', 'no checkpoint at that size');
      const cp = r.value;
      return send(200, { size: cp.size, root_hash: cp.root_hash, note: cp.note, at: cp.at });
    };
    handle().catch(() => {
      if (!res.headersSent) refuse('ERR_LEDGER_UNAVAILABLE', 'failed');
      else res.destroy();
    });
  };

  let server: MtlsServer;
  try {
    server = await createMtlsServer(handler, {
      files: config.tls,
      allow: ['control-plane'],
      host: config.listen.host,
      port: config.listen.port,
      now: clock,
      serves: { role: 'ledger', fix: 'issue it with `failclosed certs issue ledger`' },
      onRefused: (r) => {
        instruments.refused(r.reason);
        log.warn({ reason: r.reason, peer_role: r.peer_role ?? null }, 'peer refused');
      },
    });
    closers.push(() => server.close());
  } catch (err) {
    await closeAll();
    throw err;
  }
  let metricsServer: MetricsServer | undefined;
  try {
    if (settings.metricsListen !== undefined) {
      metricsServer = await serveMetrics(
        telemetry.metrics,
        settings.metricsListen.host,
        settings.metricsListen.port,
      );
      const m = metricsServer;
      closers.push(() => m.close());
    }
  } catch (err) {
    await closeAll();
    throw err;
  }
  let stopped = false;
  let round: Promise<unknown> = Promise.resolve();
  const timer = setInterval(() => {
    if (stopped) return;
    round = follow().catch(() => undefined);
  }, config.follow_ms);
  timer.unref();
  log.info(
    {
      url: server.url,
      size: ledger.size(),
      vkey: ledger.ledgerKey.vkey,
      metrics: metricsServer?.url ?? null,
    },
    'ledger listening',
  );
  return {
    url: server.url,
    config,
    vkey: ledger.ledgerKey.vkey,
    ...(metricsServer === undefined ? {} : { metricsUrl: metricsServer.url }),
    size: () => ledger.size(),
    follow,
    reloadTls: () => server.reload(),
    async close() {
      if (stopped) return;
      stopped = true;
      clearInterval(timer);
      await round;
      await closeAll();
    },
  };
}
