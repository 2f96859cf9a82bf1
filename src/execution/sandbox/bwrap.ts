/**
 * The bubblewrap sandbox for command tools (SPEC §6 Shell and sandbox, OE-INV-012/024,
 * OE-INV-006, §7 scenario 17, §8 sandbox row).
 *
 * Profile: every namespace unshared (user, pid, net, ipc, uts, cgroup, mount), unprivileged uid
 * 65534 inside, no capabilities, no nested user namespaces, a new session (no TTY injection),
 * killed with its parent. The root is an empty tmpfs: only `/usr` (and the merged-usr symlinks
 * `/bin`, `/lib`, `/lib64`, `/sbin`) is bound read-only, `/etc` holds only
 * `/etc/alternatives` (plus resolver files when network is granted), `/tmp` is a private tmpfs,
 * and `/dev`, `/proc` are the sandbox's own. Host secrets (`/etc/shadow`, `/root`, `/home`,
 * the data directory, the repository) are simply absent. Granted paths are bound at the same
 * location: `fs_read` read-only, `fs_write` read-write. A granted path must be itself, no symbolic
 * link on its way (a tool granted a parent directory could otherwise plant one there and have the
 * next call bind whatever it points at, `/` included); it is opened (`O_PATH | O_NOFOLLOW`), the
 * descriptor checked to name exactly that path, and bubblewrap binds the descriptor
 * (`--ro-bind-fd`, `--bind-fd`), never the name again, so nothing swapped in between is bound.
 * The network namespace is always private
 * (only `lo`). `constraints.network` with an egress allowlist reaches the outside only through
 * the call's egress proxy (`egress.ts`, OE-INV-011): its socket is bound in and a forwarder
 * inside exposes it on the sandbox's loopback before it starts the tool. `network` without an
 * allowlist is denied: the host network (its loopback services included) is never shared.
 * Resource limits by `prlimit` inside: address space, CPU seconds, processes, file size, open
 * files, no core dumps.
 *
 * Denies: `ERR_SANDBOX_UNAVAILABLE` (bwrap missing, fails to set up, profile not enforceable,
 * egress proxy or forwarder not started), `ERR_EGRESS_DENIED` / `ERR_EGRESS_LIMIT` (the proxy
 * refused a connection; the tool is killed),
 * `ERR_TOOL_TIMEOUT` (wall clock; the process group is killed), `ERR_TOOL_OUTPUT_LIMIT`
 * (stdout + stderr over `max_output_bytes`; killed). Never runs anything outside the sandbox.
 */
import { spawn } from 'node:child_process';
import { closeSync, constants as fsConstants, openSync, readlinkSync, realpathSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { posix } from 'node:path';
import type { Readable } from 'node:stream';
import { deny } from '../../kernel/index.js';
import type { Deny } from '../../kernel/index.js';
import type { ExecutionConstraints } from '../adapters/types.js';
import {
  EGRESS_ENV,
  EGRESS_FORWARDER,
  EGRESS_PORT,
  EGRESS_SANDBOX_DIR,
  EGRESS_SOCKET_NAME,
  egressRuntimeDir,
  grantOverlaps,
  parseEgressAllowlist,
  startEgressProxy,
} from './egress.js';
import type { EgressLimits, EgressProxy } from './egress.js';

/** What to run in the sandbox. */
/** `path` with its symbolic links resolved, or itself when it does not exist (yet). */
function resolvedOrSelf(path: string): string {
  try {
    return realpathSync(path);
  } catch {
    return path;
  }
}

export interface SandboxRequest {
  /** `argv[0]` is an absolute path inside the sandbox; never a shell string. */
  readonly argv: readonly string[];
  /** Extra environment (e.g. resolved secrets); names `[A-Z_][A-Z0-9_]*`, no `LD_*`, no `PATH`. */
  readonly env?: Readonly<Record<string, string>>;
  readonly constraints: ExecutionConstraints;
  /** Aborting kills the sandbox and yields `ERR_TOOL_TIMEOUT`. */
  readonly signal: AbortSignal;
}

/** A process that ran to completion inside the sandbox. */
export interface SandboxExit {
  readonly outcome: 'exited';
  /** Exit code, or `null` when killed by a signal. */
  readonly exit_code: number | null;
  readonly stdout: Buffer;
  readonly stderr: Buffer;
}

/** An OS sandbox for command tools. */
export interface Sandbox {
  /** Checks at start-up (and for `/readyz`) that a sandbox can be established. */
  probe(): Promise<{ readonly outcome: 'ok' } | Deny>;
  /** Runs `request` inside the sandbox, or denies; never runs it bare. */
  run(request: SandboxRequest): Promise<SandboxExit | Deny>;
}

/** Options for {@link createBwrapSandbox}. */
export interface BwrapSandboxOptions {
  readonly bwrapPath?: string;
  /** `prlimit` path inside the sandbox (it lives under `/usr`). */
  readonly prlimitPath?: string;
  /** Unprivileged uid/gid inside the sandbox. Default 65534 (nobody). */
  readonly uid?: number;
  /** RLIMIT_NPROC inside. Default 64. */
  readonly maxProcesses?: number;
  /** RLIMIT_FSIZE inside (bytes). Default 64 MiB. */
  readonly maxFileBytes?: number;
  /** Probe deadline (ms). Default 5000. */
  readonly probeTimeoutMs?: number;
  /** Node.js inside the sandbox (runs the egress forwarder; must live under `/usr`). */
  readonly nodePath?: string;
  /** Per-call egress caps (bytes each way, connections); `DEFAULT_EGRESS_LIMITS` otherwise. */
  readonly egressLimits?: Partial<EgressLimits>;
  /** Where the egress proxies' socket directories live; `egressRuntimeDir()` by default. */
  readonly egressRuntimeDir?: string;
}

/** The egress proxy a sandbox with network is wired to. */
export interface SandboxEgress {
  /** Host directory holding the proxy's socket. */
  readonly socketDir: string;
}

const ENV_NAME = /^[A-Z_][A-Z0-9_]{0,63}$/;
const RESERVED_ENV = new Set(['PATH', 'HOME', 'LANG', 'TMPDIR', ...Object.keys(EGRESS_ENV)]);
// Names are resolved by the proxy, never inside: only the CA certificates, for TLS through CONNECT.
const NETWORK_ETC = ['/etc/ssl', '/etc/ca-certificates'];
const WORKDIR = '/tmp/work';

function isGrantablePath(p: string): boolean {
  return (
    typeof p === 'string' &&
    p.startsWith('/') &&
    p !== '/' &&
    !p.includes('\0') &&
    posix.normalize(p) === p &&
    !p.endsWith('/')
  );
}

/** Linux's `O_PATH` (not among Node's constants): a descriptor that names an object, opens nothing. */
const O_PATH = 0o10000000;

/** The first descriptor number a granted path has in bwrap (0-2 stdio, 3 the status pipe). */
const FIRST_GRANT_FD = 4;

/**
 * Opens every granted path for binding by descriptor: each must exist and be itself (its real
 * path, no symbolic link on the way), and the descriptor opened on it must name exactly it
 * (`/proc/self/fd`), or `ERR_SANDBOX_UNAVAILABLE`. The descriptors, by path, for the caller to
 * close once bwrap has started.
 */
export function openGrants(
  c: ExecutionConstraints,
): { readonly outcome: 'ok'; readonly fds: Map<string, number> } | Deny {
  const fds = new Map<string, number>();
  const refuse = (reason: string): Deny => {
    for (const fd of fds.values()) closeSync(fd);
    return deny('ERR_SANDBOX_UNAVAILABLE', reason);
  };
  for (const p of [...c.fs_read, ...c.fs_write]) {
    if (fds.has(p)) continue;
    let real: string;
    try {
      real = realpathSync(p);
    } catch {
      return refuse('a granted path cannot be opened');
    }
    if (real !== p) return refuse('a granted path is or passes through a symbolic link');
    let fd: number;
    try {
      fd = openSync(p, O_PATH | fsConstants.O_NOFOLLOW);
    } catch {
      return refuse('a granted path cannot be opened');
    }
    fds.set(p, fd);
    let named: string | undefined;
    try {
      named = readlinkSync(`/proc/self/fd/${fd}`);
    } catch {
      named = undefined;
    }
    if (named !== p) return refuse('a granted path changed while it was opened');
  }
  return { outcome: 'ok', fds };
}

/**
 * The bwrap + prlimit argv for `constraints`, or a deny when the profile cannot be enforced.
 * Exported so the profile can be inspected and documented; {@link createBwrapSandbox} is the
 * only runner. With `grants` (the granted paths in the order bwrap receives their descriptors,
 * from fd 4 on: {@link openGrants}), each is bound by its descriptor; without, by its name (the
 * profile as documented).
 */
export function buildSandboxArgv(
  command: readonly string[],
  constraints: ExecutionConstraints,
  options: BwrapSandboxOptions = {},
  egress?: SandboxEgress,
  grants?: readonly string[],
): { readonly outcome: 'ok'; readonly argv: readonly string[] } | Deny {
  const c = constraints;
  const positive = (n: unknown): n is number => typeof n === 'number' && Number.isSafeInteger(n) && n > 0;
  if (!positive(c.timeout_ms) || !positive(c.memory_bytes) || !positive(c.max_output_bytes)) {
    return deny('ERR_SANDBOX_UNAVAILABLE', 'constraints lack positive limits');
  }
  const networkDeny = checkNetworkGrant(c);
  if (networkDeny !== undefined) return networkDeny;
  if (c.network && egress === undefined)
    return deny('ERR_SANDBOX_UNAVAILABLE', 'network is granted but no egress proxy is running');
  const runtimeDir = options.egressRuntimeDir ?? egressRuntimeDir();
  for (const p of [...c.fs_read, ...c.fs_write]) {
    if (!isGrantablePath(p))
      return deny('ERR_SANDBOX_UNAVAILABLE', 'a granted path is not an absolute normalized path');
    // The proxies' sockets of every concurrent call live there (OE-INV-011): no grant may be,
    // contain or lie inside it, by its name or by what it resolves to (a symbolic link).
    if (
      grantOverlaps(p, runtimeDir) ||
      grantOverlaps(resolvedOrSelf(p), resolvedOrSelf(runtimeDir)) ||
      (grantOverlaps(p, tmpdir()) && !p.startsWith(`${tmpdir()}/`))
    )
      return deny('ERR_SANDBOX_UNAVAILABLE', 'a granted path overlaps the egress runtime directory');
  }
  const [program] = command;
  if (program === undefined || !program.startsWith('/') || command.some((a) => a.includes('\0'))) {
    return deny('ERR_ADAPTER_UNAVAILABLE', 'command must start with an absolute program path');
  }
  const uid = String(options.uid ?? 65534);
  // prettier-ignore
  const args = [
    '--unshare-all',
    '--unshare-user',
    '--uid', uid,
    '--gid', uid,
    '--die-with-parent',
    '--new-session',
    '--cap-drop', 'ALL',
    '--disable-userns',
    '--hostname', 'sandbox',
    '--ro-bind', '/usr', '/usr',
    '--symlink', 'usr/bin', '/bin',
    '--symlink', 'usr/lib', '/lib',
    '--symlink', 'usr/lib64', '/lib64',
    '--symlink', 'usr/sbin', '/sbin',
    '--dir', '/etc',
    '--ro-bind-try', '/etc/alternatives', '/etc/alternatives',
    '--tmpfs', '/tmp',
    '--dev', '/dev',
    '--proc', '/proc',
    '--dir', WORKDIR,
    '--chdir', WORKDIR,
  ];
  let forwarder: readonly string[] = [];
  if (c.network && egress !== undefined) {
    // No --share-net: the namespace stays private; the proxy's socket is the only way out.
    args.push('--ro-bind', egress.socketDir, EGRESS_SANDBOX_DIR);
    for (const p of NETWORK_ETC) args.push('--ro-bind-try', p, p);
    forwarder = [
      options.nodePath ?? '/usr/bin/node',
      '-e',
      EGRESS_FORWARDER,
      `${EGRESS_SANDBOX_DIR}/${EGRESS_SOCKET_NAME}`,
      String(EGRESS_PORT),
    ];
  }
  const bind = (how: '--ro-bind' | '--bind', p: string): void => {
    if (grants === undefined) {
      args.push(how, p, p);
      return;
    }
    const i = grants.indexOf(p);
    if (i < 0) throw new TypeError('a granted path has no descriptor');
    args.push(`${how}-fd`, String(FIRST_GRANT_FD + i), p);
  };
  for (const p of c.fs_read) bind('--ro-bind', p);
  for (const p of c.fs_write) bind('--bind', p);
  args.push('--json-status-fd', '3');
  const limits = [
    `--as=${c.memory_bytes}`,
    `--cpu=${Math.max(1, Math.ceil(c.timeout_ms / 1000))}`,
    `--nproc=${options.maxProcesses ?? 64}`,
    `--fsize=${options.maxFileBytes ?? 64 * 1024 * 1024}`,
    '--nofile=256',
    '--core=0',
  ];
  return {
    outcome: 'ok',
    argv: Object.freeze([
      ...args,
      '--',
      ...forwarder,
      options.prlimitPath ?? '/usr/bin/prlimit',
      ...limits,
      '--',
      ...command,
    ]),
  };
}

/**
 * Why a network grant cannot be enforced, or undefined when it can: `network` needs a non-empty
 * allowlist of `host:port` entries (the host network is never shared, OE-INV-011).
 */
export function checkNetworkGrant(c: ExecutionConstraints): Deny | undefined {
  if (c.network !== true && c.network !== false)
    return deny('ERR_SANDBOX_UNAVAILABLE', 'network grant is not a boolean');
  if (!c.network) return undefined;
  if (c.egress.length === 0)
    return deny('ERR_SANDBOX_UNAVAILABLE', 'network is granted without an egress allowlist');
  if (parseEgressAllowlist(c.egress) === undefined)
    return deny('ERR_SANDBOX_UNAVAILABLE', 'an egress allowlist entry is not host:port');
  return undefined;
}

/**
 * Starts the call's egress proxy when `c` grants network (undefined when it does not), or
 * denies `ERR_SANDBOX_UNAVAILABLE`: no proxy, no network. `onDenial` gets the proxy's first
 * refusal.
 */
export async function openEgress(
  c: ExecutionConstraints,
  options: BwrapSandboxOptions,
  onDenial: (d: Deny) => void,
): Promise<{ readonly outcome: 'ok'; readonly proxy: EgressProxy | undefined } | Deny> {
  const networkDeny = checkNetworkGrant(c);
  if (networkDeny !== undefined) return networkDeny;
  if (!c.network) return { outcome: 'ok', proxy: undefined };
  try {
    const proxy = await startEgressProxy({
      allow: c.egress,
      ...(options.egressLimits === undefined ? {} : { limits: options.egressLimits }),
      ...(options.egressRuntimeDir === undefined ? {} : { runtimeDir: options.egressRuntimeDir }),
      onDenial,
    });
    return { outcome: 'ok', proxy };
  } catch {
    return deny('ERR_SANDBOX_UNAVAILABLE', 'the egress proxy could not be started');
  }
}

/**
 * Creates the bubblewrap {@link Sandbox}. Each run spawns bwrap in its own process group with
 * an explicit minimal environment (the host environment, which may hold `FC_SECRET_*`, is never
 * inherited), and knows the sandbox was established only when bwrap reports on
 * its status fd that the program inside ran (`exit-code`).
 */
export function createBwrapSandbox(options: BwrapSandboxOptions = {}): Sandbox {
  const bwrap = options.bwrapPath ?? '/usr/bin/bwrap';

  const run = async (request: SandboxRequest): Promise<SandboxExit | Deny> => {
    // Everything checkable is checked before a proxy is started.
    const checked = buildSandboxArgv(request.argv, request.constraints, options, {
      socketDir: '/nonexistent',
    });
    if (checked.outcome === 'deny') return checked;
    const env: Record<string, string> = {
      PATH: '/usr/bin:/bin',
      HOME: WORKDIR,
      TMPDIR: '/tmp',
      LANG: 'C.UTF-8',
    };
    for (const [name, value] of Object.entries(request.env ?? {})) {
      if (!ENV_NAME.test(name) || name.startsWith('LD_') || RESERVED_ENV.has(name) || value.includes('\0')) {
        return Promise.resolve(deny('ERR_ADAPTER_UNAVAILABLE', 'tool environment name is not allowed'));
      }
      env[name] = value;
    }
    if (request.signal.aborted) return deny('ERR_TOOL_TIMEOUT', 'aborted before start');
    const cap = request.constraints.max_output_bytes;
    let onEgressDenial: (d: Deny) => void = () => undefined;
    const opened = await openEgress(request.constraints, options, (d) => onEgressDenial(d));
    if (opened.outcome === 'deny') return opened;
    const proxy = opened.proxy;
    const grants = openGrants(request.constraints);
    if (grants.outcome === 'deny') {
      await proxy?.close();
      return grants;
    }
    const grantFds = [...grants.fds.values()];
    const closeGrants = (): void => {
      for (const fd of grantFds.splice(0)) closeSync(fd);
    };
    let built: ReturnType<typeof buildSandboxArgv>;
    try {
      built = buildSandboxArgv(
        request.argv,
        request.constraints,
        options,
        proxy === undefined ? undefined : { socketDir: proxy.socketDir },
        [...grants.fds.keys()],
      );
    } catch {
      built = deny('ERR_SANDBOX_UNAVAILABLE', 'the sandbox profile could not be built');
    }
    if (built.outcome === 'deny') {
      closeGrants();
      await proxy?.close();
      return built;
    }
    const argv = built.argv;
    if (proxy !== undefined) Object.assign(env, EGRESS_ENV);

    const exit = await new Promise<SandboxExit | Deny>((resolve) => {
      let settled: SandboxExit | Deny | undefined;
      let status = '';
      let used = 0;
      const out: Buffer[] = [];
      const err: Buffer[] = [];
      let child: ReturnType<typeof spawn>;
      try {
        // The granted paths' descriptors follow the status pipe (fd 4 on); bwrap binds them.
        child = spawn(bwrap, argv, {
          env,
          detached: true,
          stdio: ['ignore', 'pipe', 'pipe', 'pipe', ...grantFds],
        });
      } catch {
        resolve(deny('ERR_SANDBOX_UNAVAILABLE', 'bwrap could not be started'));
        return;
      } finally {
        closeGrants();
      }
      const kill = (): void => {
        try {
          if (child.pid !== undefined) process.kill(-child.pid, 'SIGKILL');
        } catch {
          // Already gone.
        }
      };
      const finish = (result: SandboxExit | Deny): void => {
        settled ??= result;
      };
      // A refused connection ends the call: the tool is killed and the call denied with its code.
      onEgressDenial = (d) => {
        finish(d);
        kill();
      };
      const early = proxy?.denial();
      if (early !== undefined) onEgressDenial(early);
      const timer = setTimeout(() => {
        finish(
          deny(
            status.includes('"child-pid"') ? 'ERR_TOOL_TIMEOUT' : 'ERR_SANDBOX_UNAVAILABLE',
            'time limit exceeded',
          ),
        );
        kill();
      }, request.constraints.timeout_ms);
      const onAbort = (): void => {
        finish(deny('ERR_TOOL_TIMEOUT', 'aborted'));
        kill();
      };
      // An abort while the egress proxy was being set up has fired already: it is heard now.
      if (request.signal.aborted) onAbort();
      else request.signal.addEventListener('abort', onAbort, { once: true });
      const collect = (stream: Readable | null, sink: Buffer[]): void => {
        stream?.on('data', (chunk: Buffer) => {
          if (settled !== undefined) return;
          used += chunk.length;
          if (used > cap) {
            finish(deny('ERR_TOOL_OUTPUT_LIMIT', 'output limit exceeded'));
            kill();
            return;
          }
          sink.push(chunk);
        });
      };
      collect(child.stdout, out);
      collect(child.stderr, err);
      const statusStream = child.stdio[3] as Readable | null | undefined;
      statusStream?.on('data', (chunk: Buffer) => {
        if (status.length < 4096) status += chunk.toString('utf8');
      });
      child.on('error', () => {
        finish(deny('ERR_SANDBOX_UNAVAILABLE', 'bwrap could not be started'));
      });
      child.on('close', (code) => {
        clearTimeout(timer);
        request.signal.removeEventListener('abort', onAbort);
        // bwrap reports "exit-code" only when the program it started inside (prlimit) ran; without
        // it, bwrap failed to set the sandbox up or to start prlimit.
        if (!status.includes('"exit-code"'))
          finish(deny('ERR_SANDBOX_UNAVAILABLE', 'the sandbox could not be established'));
        // With egress, the forwarder starts the tool only after it reached the proxy.
        if (proxy !== undefined && !proxy.ready())
          finish(deny('ERR_SANDBOX_UNAVAILABLE', 'the egress forwarder did not start'));
        finish({
          outcome: 'exited',
          exit_code: code,
          stdout: Buffer.concat(out),
          stderr: Buffer.concat(err),
        });
        resolve(settled!);
      });
    });
    await proxy?.close();
    return exit;
  };

  return {
    run,
    async probe() {
      const controller = new AbortController();
      const result = await run({
        argv: ['/usr/bin/id', '-u'],
        constraints: {
          timeout_ms: options.probeTimeoutMs ?? 5000,
          max_output_bytes: 1024,
          memory_bytes: 256 * 1024 * 1024,
          network: false,
          egress: [],
          fs_read: [],
          fs_write: [],
          max_cost_cents: 0,
        },
        signal: controller.signal,
      });
      if (result.outcome === 'deny') return deny('ERR_SANDBOX_UNAVAILABLE', 'sandbox probe failed');
      const uid = String(options.uid ?? 65534);
      if (result.exit_code !== 0 || result.stdout.toString('utf8').trim() !== uid) {
        return deny('ERR_SANDBOX_UNAVAILABLE', 'sandbox probe did not run unprivileged');
      }
      return { outcome: 'ok' };
    },
  };
}
