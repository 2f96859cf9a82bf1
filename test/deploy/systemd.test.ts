/**
 * deploy/systemd/*.service, parsed and checked for the sandboxing options (static: no systemd runs
 * here). failclosed.service runs the embedded default (`up`), failclosed-postgres.service the
 * Control Plane process of the separated shape (`serve control-plane`). The namespaces a unit must
 * let through are derived from the sandbox's own argv (`buildSandboxArgv`), so a change of the
 * bubblewrap profile that the unit would refuse fails here.
 * failclosed-executor.service (the Execution Layer as its own process) has the same sandboxing as
 * the gates' units, its own user, and sees neither the Gate's data directory nor its configuration;
 * the gates' units do not see the executor's. failclosed-gate.service (the keyless Gate, `serve
 * gate`) has every sandboxing option of failclosed.service with the same value or a stricter one
 * (it runs no tool), a user of its own, nothing writable, and sees neither the Control Plane's nor
 * the executor's files (FC-INV-6, SPEC §1 separation of powers). failclosed-ledger.service (the
 * ledger process, `serve ledger`: the checkpoint key) has the same sandboxing as the keyless
 * Gate's, a user of its own, nothing writable, its own directory that no other unit sees, and sees
 * no other unit's files (L7 ledger protection). failclosed-executor-role.service,
 * failclosed-gate-role.service and failclosed-ledger-role.service apply the shipped
 * deploy/postgres/executor-role.sql, gate-role.sql and ledger-role.sql (each role's own database
 * role, FC-INV-6 least privilege) after the Control Plane migrated the schema and before the unit
 * that connects as it, which then requires it.
 */
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { buildSandboxArgv } from '../../src/execution/sandbox/bwrap.js';
import { DEPLOY_DIR, parseUnit, unitValue } from './support.js';
import type { Unit } from './support.js';

const GATE_UNITS = ['failclosed.service', 'failclosed-postgres.service'];
/** The Control Plane process of the separated shape: `serve control-plane`, no tool runs there. */
const CP_UNIT = 'failclosed-postgres.service';
/** What each data-directory unit runs: the embedded default `up`, or the Control Plane process alone. */
const COMMAND: Record<string, string> = { 'failclosed.service': 'up', [CP_UNIT]: 'serve control-plane' };
const EXECUTOR_UNIT = 'failclosed-executor.service';
/** The units that run `up`, `serve control-plane` or `serve executor`. */
const UNITS = [...GATE_UNITS, EXECUTOR_UNIT];
/** The units that run tools, in bubblewrap: the embedded `up` and the Execution Layer. */
const TOOL_UNITS = ['failclosed.service', EXECUTOR_UNIT];
const ROLE_UNIT = 'failclosed-executor-role.service';
const GATE_ROLE_UNIT = 'failclosed-gate-role.service';
const LEDGER_ROLE_UNIT = 'failclosed-ledger-role.service';
/** The keyless Gate (`serve gate`): no tool, no bubblewrap. */
const KEYLESS_UNIT = 'failclosed-gate.service';
/** The ledger process (`serve ledger`): the checkpoint key; no tool, no bubblewrap. */
const LEDGER_UNIT = 'failclosed-ledger.service';
const units = new Map(UNITS.map((f) => [f, parseUnit(readFileSync(join(DEPLOY_DIR, 'systemd', f), 'utf8'))]));
const executorUnit = units.get(EXECUTOR_UNIT)!;
/** The unit's writable directory: the gates' data directory, or the executor's state. */
const stateDir = (file: string) =>
  file === EXECUTOR_UNIT ? '/var/lib/failclosed-executor' : '/var/lib/failclosed';

const words = (unit: Unit, key: string) =>
  (unitValue(unit, 'Service', key) ?? '').split(/\s+/).filter(Boolean);

/** The namespaces bubblewrap creates for a command tool, named as RestrictNamespaces= names them. */
function sandboxNamespaces(): string[] {
  const built = buildSandboxArgv(['/usr/bin/true'], {
    timeout_ms: 1000,
    memory_bytes: 64 * 1024 * 1024,
    max_output_bytes: 1024,
    network: false,
    egress: [],
    fs_read: [],
    fs_write: [],
    max_cost_cents: 0,
  });
  if (built.outcome !== 'ok') throw new Error('sandbox argv');
  const argv = built.argv;
  const ns = new Set<string>(['mnt']); // bubblewrap always builds its root in a new mount namespace
  for (const a of argv) {
    if (a === '--unshare-all') for (const n of ['user', 'ipc', 'pid', 'net', 'uts', 'cgroup']) ns.add(n);
    const m = /^--unshare-(user|ipc|pid|net|uts|cgroup)(?:-try)?$/.exec(a);
    if (m !== null) ns.add(m[1]!);
  }
  expect(argv).not.toContain('--share-net');
  return [...ns].sort();
}

describe('deploy/systemd units', () => {
  const needed = sandboxNamespaces();

  it('the sandbox profile needs user, mount, pid, net, ipc, uts and cgroup namespaces', () => {
    expect(needed).toEqual(['cgroup', 'ipc', 'mnt', 'net', 'pid', 'user', 'uts']);
  });

  it('the directory listing holds exactly these units', () => {
    expect(
      readdirSync(join(DEPLOY_DIR, 'systemd'))
        .filter((f) => f.endsWith('.service'))
        .sort(),
    ).toEqual([...UNITS, ROLE_UNIT, GATE_ROLE_UNIT, LEDGER_ROLE_UNIT, KEYLESS_UNIT, LEDGER_UNIT].sort());
  });

  for (const file of GATE_UNITS) {
    const unit = units.get(file)!;
    describe(file, () => {
      it(`runs failclosed ${COMMAND[file]} as an unprivileged user on the data directory`, () => {
        const user = unitValue(unit, 'Service', 'User');
        expect(user).toBeDefined();
        expect(user).not.toMatch(/^(root|0)$/);
        const [command, grace, ...rest] = unitValue(unit, 'Service', 'ExecStart')!.split(' --grace ');
        expect(command).toBe(
          `/usr/bin/node /opt/failclosed/dist/src/cli/main.js ${COMMAND[file]} --data /var/lib/failclosed`,
        );
        expect(grace).toMatch(/^\d+$/);
        expect(rest).toEqual([]);
      });

      it('stops by SIGTERM to failclosed alone and waits longer than the drain', () => {
        const grace = Number(/--grace (\d+)/.exec(unitValue(unit, 'Service', 'ExecStart')!)![1]);
        expect(unitValue(unit, 'Service', 'KillMode')).toBe('mixed');
        expect(unitValue(unit, 'Service', 'KillSignal')).toBe('SIGTERM');
        expect(Number(/^(\d+)s?$/.exec(unitValue(unit, 'Service', 'TimeoutStopSec')!)![1])).toBeGreaterThan(
          grace,
        );
        expect(unitValue(unit, 'Service', 'Restart')).toBe('on-failure');
      });
    });
  }

  for (const [file, unit] of units) {
    describe(`${file}: sandboxing`, () => {
      it('sets the hardening options', () => {
        const expected: Record<string, string> = {
          NoNewPrivileges: 'yes',
          ProtectSystem: 'strict',
          ProtectHome: 'yes',
          PrivateTmp: 'yes',
          PrivateDevices: 'yes',
          ProtectKernelModules: 'yes',
          ProtectControlGroups: 'yes',
          RestrictSUIDSGID: 'yes',
          RestrictRealtime: 'yes',
          LockPersonality: 'yes',
          SystemCallArchitectures: 'native',
          UMask: '0077',
          CapabilityBoundingSet: '',
          AmbientCapabilities: '',
        };
        for (const [k, v] of Object.entries(expected)) expect(unitValue(unit, 'Service', k), k).toBe(v);
        expect(words(unit, 'ReadWritePaths')).toEqual([stateDir(file)]);
        expect(words(unit, 'SystemCallFilter')[0]).toBe('@system-service');
      });

      if (TOOL_UNITS.includes(file))
        it('lets through exactly the namespaces, address families and system calls bubblewrap uses', () => {
          expect(words(unit, 'RestrictNamespaces').sort()).toEqual([...needed].sort());
          expect(words(unit, 'RestrictAddressFamilies').sort()).toEqual([
            'AF_INET',
            'AF_INET6',
            'AF_NETLINK',
            'AF_UNIX',
          ]);
          expect(words(unit, 'SystemCallFilter').sort()).toEqual([
            '@mount',
            '@system-service',
            'sethostname',
          ]);
        });

      if (TOOL_UNITS.includes(file))
        it('leaves out what breaks Node.js or the sandbox: MemoryDenyWriteExecute, /proc over-mounts, ProtectHostname', () => {
          for (const k of [
            'MemoryDenyWriteExecute',
            'ProtectKernelTunables',
            'ProtectKernelLogs',
            'ProtectHostname',
            'PrivateNetwork',
          ])
            expect(unitValue(unit, 'Service', k) ?? 'no', k).toBe('no');
          expect(unitValue(unit, 'Service', 'ProcSubset') ?? 'all').toBe('all');
        });
    });
  }

  it('the PostgreSQL variant takes the database settings from a file outside the unit', () => {
    const unit = units.get('failclosed-postgres.service')!;
    expect(unitValue(unit, 'Service', 'EnvironmentFile')).toBe('/etc/failclosed/postgres.env');
    const env = unit.get('Service')!.get('Environment')!.join(' ');
    expect(env).not.toMatch(/FAILCLOSED_BACKEND|PGPASSWORD|postgres:\/\//);
    expect(unitValue(units.get('failclosed.service')!, 'Service', 'EnvironmentFile')).toBeUndefined();
  });

  it('the Control Plane process refuses to start while its data directory holds the checkpoint key (an assertion: a failed start, not a skipped one)', () => {
    const cp = units.get(CP_UNIT)!;
    // systemd.unit(5): "!" negates; an Assert*= that fails fails the start job, a Condition*=
    // would skip the unit silently.
    expect(cp.get('Unit')!.get('AssertPathExists')).toEqual(['!/var/lib/failclosed/keys/ledger.jwk']);
    for (const k of ['ConditionPathExists', 'ConditionFileNotEmpty'])
      expect(unitValue(cp, 'Unit', k), k).toBeUndefined();
    // The path is the key `failclosed init` writes under the unit's data directory.
    expect(unitValue(cp, 'Service', 'ExecStart')).toContain('--data /var/lib/failclosed ');
    // failclosed.service (SQLite, no ledger process) keeps its checkpoint key.
    expect(unitValue(units.get('failclosed.service')!, 'Unit', 'AssertPathExists')).toBeUndefined();
  });

  it('the Control Plane process runs no tool (executor_url, no tls.executor): none of the relaxations for bubblewrap, every other option of failclosed.service', () => {
    expectNoToolSandboxing(units.get(CP_UNIT)!, units.get('failclosed.service')!);
  });

  describe(EXECUTOR_UNIT, () => {
    it('runs serve executor with its own configuration, as a user of its own (not the Gate user)', () => {
      const user = unitValue(executorUnit, 'Service', 'User')!;
      expect(user).toBe('failclosed-executor');
      for (const f of GATE_UNITS) expect(unitValue(units.get(f)!, 'Service', 'User')).not.toBe(user);
      expect(unitValue(executorUnit, 'Service', 'Group')).toBe('failclosed-executor');
      expect(unitValue(executorUnit, 'Service', 'ExecStart')).toBe(
        '/usr/bin/node /opt/failclosed/dist/src/cli/main.js serve executor --config /etc/failclosed-executor/executor.json',
      );
      expect(unitValue(executorUnit, 'Service', 'StateDirectory')).toBe('failclosed-executor');
      expect(unitValue(executorUnit, 'Service', 'ExecReload')).toBe('/bin/kill -HUP $MAINPID');
    });

    it('stops by SIGTERM to failclosed alone, restarts on failure', () => {
      expect(unitValue(executorUnit, 'Service', 'KillMode')).toBe('mixed');
      expect(unitValue(executorUnit, 'Service', 'KillSignal')).toBe('SIGTERM');
      expect(unitValue(executorUnit, 'Service', 'Restart')).toBe('on-failure');
    });

    it('has the sandboxing of failclosed.service, key for key, but for its own paths', () => {
      const gate = units.get('failclosed.service')!.get('Service')!;
      const own = executorUnit.get('Service')!;
      const PATHS = ['ReadWritePaths', 'InaccessiblePaths'];
      const SANDBOX = [
        'NoNewPrivileges',
        'CapabilityBoundingSet',
        'AmbientCapabilities',
        'ProtectSystem',
        'ProtectHome',
        'PrivateTmp',
        'PrivateDevices',
        'ProtectKernelModules',
        'ProtectControlGroups',
        'ProtectClock',
        'ProtectProc',
        'RestrictSUIDSGID',
        'RestrictRealtime',
        'LockPersonality',
        'RemoveIPC',
        'KeyringMode',
        'RestrictAddressFamilies',
        'RestrictNamespaces',
        'SystemCallArchitectures',
        'SystemCallFilter',
        'SystemCallErrorNumber',
        'UMask',
      ];
      for (const k of SANDBOX) {
        expect(own.get(k), k).toBeDefined();
        expect(own.get(k), k).toEqual(gate.get(k));
      }
      // Nothing the gate unit sets is missing here, besides its paths and what starts it.
      const START = ['ExecStart', 'User', 'Group', 'StateDirectory', 'Environment', 'EnvironmentFile'];
      for (const k of gate.keys()) if (![...PATHS, ...START].includes(k)) expect(own.has(k), k).toBe(true);
    });

    it("sees neither the Gate's data directory nor its configuration, and the gates do not see its own", () => {
      expect(words(executorUnit, 'InaccessiblePaths').sort()).toEqual([
        '-/etc/failclosed',
        '-/etc/failclosed-gate',
        '-/etc/failclosed-ledger',
        '-/var/lib/failclosed',
        '-/var/lib/failclosed-ledger',
      ]);
      for (const f of GATE_UNITS)
        expect(words(units.get(f)!, 'InaccessiblePaths').sort(), f).toEqual([
          '-/etc/failclosed-executor',
          '-/etc/failclosed-gate',
          '-/etc/failclosed-ledger',
          '-/var/lib/failclosed-executor',
          '-/var/lib/failclosed-ledger',
        ]);
      // Its configuration, certificate and secrets live under /etc/failclosed-executor, which it reads.
      expect(unitValue(executorUnit, 'Service', 'EnvironmentFile')).toBe(
        '-/etc/failclosed-executor/executor.env',
      );
      expect(unitValue(executorUnit, 'Service', 'Environment')).not.toMatch(
        /PGPASSWORD|FC_SECRET|postgres:\/\//,
      );
    });
  });
});

const ROLE_UNITS = [
  {
    file: ROLE_UNIT,
    sql: 'executor-role.sql',
    role: 'failclosed_executor',
    env: 'FAILCLOSED_EXECUTOR_DB_PASSWORD',
    envFile: '/etc/failclosed/executor-role.env',
    before: EXECUTOR_UNIT,
    table: 'envelope_nonce_horizon',
  },
  {
    file: GATE_ROLE_UNIT,
    sql: 'gate-role.sql',
    role: 'failclosed_gate',
    env: 'FAILCLOSED_GATE_DB_PASSWORD',
    envFile: '/etc/failclosed/gate-role.env',
    before: KEYLESS_UNIT,
    table: 'gate_request_nonces',
  },
  {
    file: LEDGER_ROLE_UNIT,
    sql: 'ledger-role.sql',
    role: 'failclosed_ledger',
    env: 'FAILCLOSED_LEDGER_DB_PASSWORD',
    envFile: '/etc/failclosed/ledger-role.env',
    before: LEDGER_UNIT,
    table: 'ledger_tree_chunks',
  },
];
for (const r of ROLE_UNITS)
  describe(r.file, () => {
    const ROLE_UNIT = r.file;
    const unit = parseUnit(readFileSync(join(DEPLOY_DIR, 'systemd', ROLE_UNIT), 'utf8'));
    const argv = unitValue(unit, 'Service', 'ExecStart')!.split(/\s+/);
    const vars = Object.fromEntries(
      argv.flatMap((w, i) => (argv[i - 1] === '-v' ? [w.split('=', 2) as [string, string]] : [])),
    );
    /** The words of a [Unit] key. */
    const inUnit = (key: string) => (unitValue(unit, 'Unit', key) ?? '').split(/\s+/).filter(Boolean);

    it('a oneshot that runs the shipped SQL file with psql, as the gates role, the role and its password named, not given', () => {
      expect(unitValue(unit, 'Service', 'Type')).toBe('oneshot');
      expect(unitValue(unit, 'Service', 'RemainAfterExit')).toBe('yes');
      expect(argv[0]).toBe('/usr/bin/psql');
      expect(argv[argv.indexOf('-f') + 1]).toBe(`/opt/failclosed/deploy/postgres/${r.sql}`);
      expect(vars).toEqual({
        ON_ERROR_STOP: '1',
        schema: 'failclosed',
        role: r.role,
        password_env: r.env,
      });
      const url = new URL(argv[1]!);
      expect(url.password).toBe('');
      expect(url.username).not.toBe(vars.role);
      // The passwords come from root-owned files systemd reads: the gate's (the owner's PGPASSWORD)
      // and the one naming the executor's password.
      expect(unit.get('Service')!.get('EnvironmentFile')).toEqual([
        '/etc/failclosed/postgres.env',
        r.envFile,
      ]);
      const text = readFileSync(join(DEPLOY_DIR, 'systemd', ROLE_UNIT), 'utf8');
      expect(text).not.toMatch(/^(?!#).*(PGPASSWORD=|PASSWORD=\S)/m);
      // With password_env the file creates the role and sets its password, which the owner can
      // only with CREATEROLE (test/e2e/deploy-keyless.test.ts runs the line on such an owner):
      // the unit says so.
      expect(text).toMatch(/^# .*owner holding CREATEROLE/m);
    });

    it('waits for a gate to have migrated the schema, on the same database, before it grants', () => {
      const pre = unitValue(unit, 'Service', 'ExecStartPre')!;
      expect(pre).toContain(argv[1]);
      expect(pre).toContain(`${vars.schema}.${r.table}`);
      expect(pre).toMatch(/until .* do sleep \d+; done/);
      expect(Number(unitValue(unit, 'Service', 'TimeoutStartSec'))).toBeGreaterThan(0);
      expect(inUnit('After')).toContain('failclosed-postgres.service');
    });

    it('runs before the executor, which requires it once it is enabled', () => {
      expect(inUnit('Before')).toEqual([r.before]);
      expect(unitValue(unit, 'Install', 'RequiredBy')).toBe(r.before);
      expect(unitValue(unit, 'Install', 'WantedBy')).toBeUndefined();
    });

    it('is sandboxed for psql alone: a dynamic user, no capability, nothing writable, no role’s data visible', () => {
      const expected: Record<string, string> = {
        DynamicUser: 'yes',
        NoNewPrivileges: 'yes',
        CapabilityBoundingSet: '',
        AmbientCapabilities: '',
        ProtectSystem: 'strict',
        ProtectHome: 'yes',
        PrivateTmp: 'yes',
        PrivateDevices: 'yes',
        RestrictNamespaces: 'yes',
        MemoryDenyWriteExecute: 'yes',
        SystemCallArchitectures: 'native',
        SystemCallFilter: '@system-service',
        UMask: '0077',
      };
      for (const [k, v] of Object.entries(expected)) expect(unitValue(unit, 'Service', k), k).toBe(v);
      expect(unitValue(unit, 'Service', 'ReadWritePaths')).toBeUndefined();
      expect(unitValue(unit, 'Service', 'User')).toBeUndefined();
      expect(words(unit, 'InaccessiblePaths').sort()).toEqual([
        '-/etc/failclosed-executor',
        '-/etc/failclosed-gate',
        '-/etc/failclosed-ledger',
        '-/var/lib/failclosed',
        '-/var/lib/failclosed-executor',
        '-/var/lib/failclosed-ledger',
      ]);
      expect(words(unit, 'RestrictAddressFamilies').sort()).toEqual(['AF_INET', 'AF_INET6', 'AF_UNIX']);
    });
  });

describe(KEYLESS_UNIT, () => {
  const unit = parseUnit(readFileSync(join(DEPLOY_DIR, 'systemd', KEYLESS_UNIT), 'utf8'));
  const own = unit.get('Service')!;
  const inUnit = (key: string) => (unitValue(unit, 'Unit', key) ?? '').split(/\s+/).filter(Boolean);

  it('runs serve gate with its own configuration, as a user of its own, after its role step, which it requires', () => {
    expect(unitValue(unit, 'Service', 'ExecStart')).toBe(
      '/usr/bin/node /opt/failclosed/dist/src/cli/main.js serve gate --config /etc/failclosed-gate/gate.json',
    );
    const user = unitValue(unit, 'Service', 'User')!;
    expect(user).toBe('failclosed-gate');
    expect(unitValue(unit, 'Service', 'Group')).toBe('failclosed-gate');
    for (const u of units.values()) expect(unitValue(u, 'Service', 'User')).not.toBe(user);
    expect(inUnit('Requires')).toEqual([GATE_ROLE_UNIT]);
    expect(inUnit('After')).toContain(GATE_ROLE_UNIT);
    expect(inUnit('After')).toContain('failclosed-postgres.service');
    expect(unitValue(unit, 'Service', 'ExecReload')).toBe('/bin/kill -HUP $MAINPID');
    expect(unitValue(unit, 'Service', 'KillMode')).toBe('mixed');
    expect(unitValue(unit, 'Service', 'Restart')).toBe('on-failure');
  });

  it('holds nothing: no state directory, nothing writable, neither the Control Plane data directory (keys) nor the executor files visible', () => {
    expect(unitValue(unit, 'Service', 'StateDirectory')).toBeUndefined();
    expect(unitValue(unit, 'Service', 'ReadWritePaths')).toBeUndefined();
    expect(words(unit, 'InaccessiblePaths').sort()).toEqual([
      '-/etc/failclosed',
      '-/etc/failclosed-executor',
      '-/etc/failclosed-ledger',
      '-/var/lib/failclosed',
      '-/var/lib/failclosed-executor',
      '-/var/lib/failclosed-ledger',
    ]);
    // Its database password (its own role's) from a root-owned file, never in the unit.
    expect(unitValue(unit, 'Service', 'EnvironmentFile')).toBe('/etc/failclosed-gate/gate.env');
    expect(own.get('Environment')!.join(' ')).not.toMatch(/PGPASSWORD|FAILCLOSED_BACKEND|postgres:\/\//);
  });

  it('has every sandboxing option of failclosed.service, with the same value or a stricter one', () => {
    expectNoToolSandboxing(unit, units.get('failclosed.service')!);
  });
});

describe(LEDGER_UNIT, () => {
  const unit = parseUnit(readFileSync(join(DEPLOY_DIR, 'systemd', LEDGER_UNIT), 'utf8'));
  const own = unit.get('Service')!;
  const inUnit = (key: string) => (unitValue(unit, 'Unit', key) ?? '').split(/\s+/).filter(Boolean);
  const keyless = parseUnit(readFileSync(join(DEPLOY_DIR, 'systemd', KEYLESS_UNIT), 'utf8'));

  it('runs serve ledger with its own configuration, as a user of its own, after its role step, which it requires', () => {
    expect(unitValue(unit, 'Service', 'ExecStart')).toBe(
      '/usr/bin/node /opt/failclosed/dist/src/cli/main.js serve ledger --config /etc/failclosed-ledger/ledger.json',
    );
    const user = unitValue(unit, 'Service', 'User')!;
    expect(user).toBe('failclosed-ledger');
    expect(unitValue(unit, 'Service', 'Group')).toBe('failclosed-ledger');
    for (const u of [...units.values(), keyless]) expect(unitValue(u, 'Service', 'User')).not.toBe(user);
    expect(inUnit('Requires')).toEqual([LEDGER_ROLE_UNIT]);
    expect(inUnit('After')).toContain(LEDGER_ROLE_UNIT);
    expect(inUnit('After')).toContain('failclosed-postgres.service');
    expect(unitValue(unit, 'Service', 'ExecReload')).toBe('/bin/kill -HUP $MAINPID');
    expect(unitValue(unit, 'Service', 'KillMode')).toBe('mixed');
    expect(unitValue(unit, 'Service', 'Restart')).toBe('on-failure');
    expect(unitValue(unit, 'Install', 'WantedBy')).toBe('multi-user.target');
    // Calls never wait for it: the Control Plane unit neither requires nor wants it.
    const cp = units.get(CP_UNIT)!;
    for (const k of ['Requires', 'Wants', 'BindsTo', 'Requisite'])
      expect(unitValue(cp, 'Unit', k) ?? '', k).not.toContain(LEDGER_UNIT);
  });

  it('holds only its own files: its state directory (the binding file ledger.json names) the only thing writable, no other unit’s directory visible (the Control Plane’s data directory, the Gate’s, the executor’s)', () => {
    expect(unitValue(unit, 'Service', 'StateDirectory')).toBe('failclosed-ledger');
    expect(unitValue(unit, 'Service', 'StateDirectoryMode')).toBe('0700');
    expect(unitValue(unit, 'Service', 'ReadWritePaths')).toBe('/var/lib/failclosed-ledger');
    const config = JSON.parse(readFileSync(join(DEPLOY_DIR, 'systemd', 'ledger.json'), 'utf8')) as {
      binding?: string;
    };
    expect(config.binding).toBe('/var/lib/failclosed-ledger/ledger-binding.json');
    expect(words(unit, 'InaccessiblePaths').sort()).toEqual([
      '-/etc/failclosed',
      '-/etc/failclosed-executor',
      '-/etc/failclosed-gate',
      '-/var/lib/failclosed',
      '-/var/lib/failclosed-executor',
    ]);
    // Its database password (its own role's) from a root-owned file in its own directory.
    expect(unitValue(unit, 'Service', 'EnvironmentFile')).toBe('/etc/failclosed-ledger/ledger.env');
    expect(own.get('Environment')!.join(' ')).not.toMatch(/PGPASSWORD|FAILCLOSED_BACKEND|postgres:\/\//);
  });

  it('reaches and is reached on loopback only: every other address denied in and out', () => {
    // systemd.resource-control(5): the allow list wins over the deny list; `localhost` is
    // 127.0.0.0/8 and ::1. ledger.json names PostgreSQL and its listener by IP literals.
    expect(own.get('IPAddressDeny')).toEqual(['any']);
    expect(own.get('IPAddressAllow')).toEqual(['localhost']);
    const config = JSON.parse(readFileSync(join(DEPLOY_DIR, 'systemd', 'ledger.json'), 'utf8')) as {
      listen: { host: string };
      state: string;
    };
    expect(config.listen.host).toBe('127.0.0.1');
    expect(new URL(config.state).hostname).toBe('127.0.0.1');
  });

  it('has every sandboxing option of failclosed.service, with the same value or a stricter one, key for key as the keyless Gate', () => {
    expectNoToolSandboxing(unit, units.get('failclosed.service')!);
    const gate = keyless.get('Service')!;
    // Its own: what starts it, its state directory (the binding file), and its network allow list
    // (the Gate's clients are not on loopback).
    const START = [
      'ExecStart',
      'User',
      'Group',
      'EnvironmentFile',
      'StateDirectory',
      'StateDirectoryMode',
      'ReadWritePaths',
      'InaccessiblePaths',
      'TimeoutStopSec',
      'IPAddressDeny',
      'IPAddressAllow',
    ];
    expect([...own.keys()].filter((k) => !START.includes(k)).sort()).toEqual(
      [...gate.keys()].filter((k) => !START.includes(k)).sort(),
    );
    for (const k of own.keys()) if (!START.includes(k)) expect(own.get(k), k).toEqual(gate.get(k));
  });
});

describe('the ledger process’s directory', () => {
  it('(the checkpoint key, its certificate, its password) and its state directory are inaccessible to every other unit', () => {
    const files = readdirSync(join(DEPLOY_DIR, 'systemd')).filter((f) => f.endsWith('.service'));
    expect(files).toContain(LEDGER_UNIT);
    for (const f of files) {
      const hidden = words(
        parseUnit(readFileSync(join(DEPLOY_DIR, 'systemd', f), 'utf8')),
        'InaccessiblePaths',
      );
      expect(hidden.includes('-/etc/failclosed-ledger'), f).toBe(f !== LEDGER_UNIT);
      // Nor what it remembers of the ledger (its binding file): no other unit can lower or forge it.
      expect(hidden.includes('-/var/lib/failclosed-ledger'), f).toBe(f !== LEDGER_UNIT);
    }
  });
});

/**
 * A unit that runs no tool (the keyless Gate; the Control Plane process of the separated shape):
 * every sandboxing option of `failclosed.service` (`reference`), with the same value or a
 * stricter one, and none of what that unit lets through for bubblewrap.
 */
function expectNoToolSandboxing(unit: Unit, reference: Unit): void {
  const own = unit.get('Service')!;
  const ref = reference.get('Service')!;
  const SAME = [
    'NoNewPrivileges',
    'CapabilityBoundingSet',
    'AmbientCapabilities',
    'ProtectSystem',
    'ProtectHome',
    'PrivateTmp',
    'PrivateDevices',
    'ProtectKernelModules',
    'ProtectControlGroups',
    'ProtectClock',
    'ProtectProc',
    'RestrictSUIDSGID',
    'RestrictRealtime',
    'LockPersonality',
    'RemoveIPC',
    'KeyringMode',
    'SystemCallArchitectures',
    'SystemCallErrorNumber',
    'UMask',
  ];
  for (const k of SAME) {
    expect(own.get(k), k).toBeDefined();
    expect(own.get(k), k).toEqual(ref.get(k));
  }
  // What failclosed.service lets through for bubblewrap, refused here: it runs no tool.
  expect(unitValue(unit, 'Service', 'RestrictNamespaces')).toBe('yes');
  expect(words(unit, 'SystemCallFilter')).toEqual(['@system-service']);
  expect(words(unit, 'RestrictAddressFamilies').sort()).toEqual(['AF_INET', 'AF_INET6', 'AF_UNIX']);
  for (const k of ['ProtectKernelTunables', 'ProtectKernelLogs', 'ProtectHostname'])
    expect(unitValue(unit, 'Service', k), k).toBe('yes');
  // Left out as in failclosed.service: V8 needs writable, executable memory; it serves clients.
  for (const k of ['MemoryDenyWriteExecute', 'PrivateNetwork'])
    expect(unitValue(unit, 'Service', k) ?? 'no', k).toBe('no');
  // Nothing failclosed.service sets is missing, besides its paths and what starts it.
  const START = [
    'ExecStart',
    'User',
    'Group',
    'StateDirectory',
    'StateDirectoryMode',
    'Environment',
    'EnvironmentFile',
    'ReadWritePaths',
  ];
  for (const k of ref.keys()) if (!START.includes(k)) expect(own.has(k), k).toBe(true);
}
