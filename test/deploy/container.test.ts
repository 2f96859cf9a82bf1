/**
 * The container image's Dockerfile, checked statically (no image is built here: the test machines
 * have no container engine). docs/deployment.md "Deployment artefacts".
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { REPO_ROOT } from '../support/paths.js';
import { DEPLOY_DIR, parseDockerfile } from './support.js';
import type { Stage } from './support.js';

const DOCKERFILE = readFileSync(join(DEPLOY_DIR, 'container/Dockerfile'), 'utf8');
const stages = parseDockerfile(DOCKERFILE);
const runtime = stages.at(-1)!;
const of = (stage: Stage, keyword: string) => stage.instructions.filter((i) => i.keyword === keyword);

/** `COPY [--from=X] [--chown=…] SRC… DST` -> its flags and paths. */
function copyParts(args: string): { from: string | undefined; sources: string[]; dest: string } {
  const words = args.split(/\s+/);
  let from: string | undefined;
  while (words[0]?.startsWith('--') === true) {
    const flag = words.shift()!;
    if (flag.startsWith('--from=')) from = flag.slice('--from='.length);
  }
  const dest = words.pop()!;
  return { from, sources: words, dest };
}

describe('deploy/container/Dockerfile', () => {
  it('is multi-stage: a build stage with dev dependencies, a production-dependency stage and a runtime', () => {
    expect(stages.map((s) => s.name)).toEqual(['build', 'prod-deps', 'runtime']);
    const build = stages[0]!;
    expect(of(build, 'RUN').some((i) => /npm ci --ignore-scripts/.test(i.args))).toBe(true);
    expect(of(build, 'RUN').some((i) => /npm run build/.test(i.args))).toBe(true);
    const prod = stages[1]!;
    expect(of(prod, 'RUN').some((i) => /npm ci --omit=dev/.test(i.args))).toBe(true);
  });

  it('pins every base image by an exact version tag or a digest, never latest', () => {
    for (const s of stages) {
      expect(s.image, s.image).toMatch(/^[a-z0-9./-]+(:\d+\.\d+\.\d+[\w.-]*)?(@sha256:[0-9a-f]{64})?$/);
      expect(s.image, s.image).toMatch(/:\d+\.\d+\.\d+|@sha256:/);
      expect(s.image).not.toMatch(/:latest\b/);
    }
  });

  it('the runtime stage copies only what runs: production dependencies, compiled output, package.json, the demo policy', () => {
    const copies = of(runtime, 'COPY').map((i) => copyParts(i.args));
    expect(of(runtime, 'ADD')).toEqual([]);
    for (const c of copies) expect(['build', 'prod-deps'], JSON.stringify(c)).toContain(c.from);
    expect(copies.map((c) => `${c.from}:${c.sources.join(',')}`).sort()).toEqual(
      [
        'prod-deps:/src/node_modules',
        'build:/src/package.json',
        'build:/src/dist/src',
        'build:/src/examples/demo-policy',
      ].sort(),
    );
  });

  it('runs as a numeric non-root user, set in the runtime stage', () => {
    const users = of(runtime, 'USER');
    expect(users).toHaveLength(1);
    const m = /^(\d+)(?::(\d+))?$/.exec(users[0]!.args);
    expect(m, users[0]!.args).not.toBeNull();
    expect(Number(m![1])).toBeGreaterThan(0);
    expect(Number(m![2] ?? '1')).toBeGreaterThan(0);
  });

  it('fetches nothing with ADD (no URLs, no archives) in any stage', () => {
    for (const s of stages) expect(of(s, 'ADD'), s.name).toEqual([]);
    expect(DOCKERFILE).not.toMatch(/^\s*ADD\s/im);
  });

  it('declares the data directory and /tmp as volumes, for a read-only root filesystem', () => {
    const volumes = of(runtime, 'VOLUME').flatMap((i) => JSON.parse(i.args) as string[]);
    expect(volumes.sort()).toEqual(['/tmp', '/var/lib/failclosed']);
    expect(
      of(runtime, 'ENV')
        .map((i) => i.args)
        .join(' '),
    ).toMatch(/FAILCLOSED_HOME=\/var\/lib\/failclosed/);
  });

  it('has a HEALTHCHECK on /healthz and exposes only the Gate port', () => {
    const hc = of(runtime, 'HEALTHCHECK');
    expect(hc).toHaveLength(1);
    expect(hc[0]!.args).toMatch(/CMD \[/);
    expect(hc[0]!.args).toContain('http://127.0.0.1:7070/healthz');
    expect(of(runtime, 'EXPOSE').map((i) => i.args)).toEqual(['7070']);
  });

  it('installs bubblewrap in the runtime and starts failclosed up under an init process', () => {
    expect(of(runtime, 'RUN').some((i) => /apt-get install[^&]*\bbubblewrap\b/.test(i.args))).toBe(true);
    const entry = JSON.parse(of(runtime, 'ENTRYPOINT')[0]!.args) as string[];
    expect(entry).toEqual(['/usr/bin/tini', '--', 'node', '/app/dist/src/cli/main.js']);
    const cmd = JSON.parse(of(runtime, 'CMD')[0]!.args) as string[];
    expect(cmd.slice(0, 3)).toEqual(['up', '--data', '/var/lib/failclosed']);
  });

  it('bakes no secret in: no ENV or ARG named like a secret, no key or token file copied', () => {
    for (const s of stages)
      for (const i of [...of(s, 'ENV'), ...of(s, 'ARG')])
        expect(i.args, `${s.name}: ${i.args}`).not.toMatch(/(PASSWORD|TOKEN|SECRET|PRIVATE|_KEY\b|PGPASS)/i);
    expect(DOCKERFILE).not.toMatch(/\.jwk\b|operator\.token|derivation\.key/);
  });

  it('.dockerignore keeps data directories, keys, tokens and local builds out of the build context', () => {
    const ignore = readFileSync(join(REPO_ROOT, '.dockerignore'), 'utf8')
      .split('\n')
      .map((l) => l.trim())
      .filter((l) => l !== '' && !l.startsWith('#'));
    for (const p of [
      '.git',
      '**/node_modules',
      '**/dist',
      '.failclosed',
      '**/.failclosed',
      '*.token',
      '*.jwk',
      '*.key',
      '.env',
    ])
      expect(ignore, p).toContain(p);
    // Nothing the build stage copies is ignored.
    for (const p of ['src', 'bench', 'examples', 'scripts', 'package.json', 'package-lock.json'])
      expect(ignore, p).not.toContain(p);
  });
});
