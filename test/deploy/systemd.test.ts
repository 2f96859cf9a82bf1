/**
 * deploy/systemd/*.service, parsed and checked for the sandboxing options (static: no systemd runs
 * here). The namespaces a unit must let through are derived from the sandbox's own argv
 * (`buildSandboxArgv`), so a change of the bubblewrap profile that the unit would refuse fails here.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { buildSandboxArgv } from '../../src/execution/sandbox/bwrap.js';
import { DEPLOY_DIR, parseUnit, unitValue } from './support.js';
import type { Unit } from './support.js';

const UNITS = ['failclosed.service', 'failclosed-postgres.service'];
const units = new Map(UNITS.map((f) => [f, parseUnit(readFileSync(join(DEPLOY_DIR, 'systemd', f), 'utf8'))]));

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

  for (const [file, unit] of units) {
    describe(file, () => {
      it('runs failclosed up as an unprivileged user on the data directory', () => {
        const user = unitValue(unit, 'Service', 'User');
        expect(user).toBeDefined();
        expect(user).not.toMatch(/^(root|0)$/);
        const exec = unitValue(unit, 'Service', 'ExecStart')!;
        expect(exec).toMatch(
          /^\/usr\/bin\/node \/opt\/failclosed\/dist\/src\/cli\/main\.js up --data \/var\/lib\/failclosed --grace \d+$/,
        );
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
        expect(words(unit, 'ReadWritePaths')).toEqual(['/var/lib/failclosed']);
        expect(words(unit, 'SystemCallFilter')[0]).toBe('@system-service');
      });

      it('lets through exactly the namespaces, address families and system calls bubblewrap uses', () => {
        expect(words(unit, 'RestrictNamespaces').sort()).toEqual([...needed].sort());
        expect(words(unit, 'RestrictAddressFamilies').sort()).toEqual([
          'AF_INET',
          'AF_INET6',
          'AF_NETLINK',
          'AF_UNIX',
        ]);
        expect(words(unit, 'SystemCallFilter').sort()).toEqual(['@mount', '@system-service', 'sethostname']);
      });

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
});
