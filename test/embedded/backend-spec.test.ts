/**
 * The storage backend choice (SPEC §1 deployment shapes): `sqlite` or a PostgreSQL URL whose
 * parameters cannot override the pool's own safety settings; the environment overrides the file.
 */
import { describe, expect, it } from 'vitest';
import { parseBackendSpec, redactedBackend, resolveBackendSpec } from '../../src/embedded/backend-spec.js';

describe('backend choice', () => {
  it('accepts sqlite and postgres URLs, taking the schema out of the URL', () => {
    expect(parseBackendSpec('sqlite')).toEqual({ kind: 'sqlite' });
    expect(parseBackendSpec('postgres://u@h:5432/db?schema=fc&sslmode=require')).toEqual({
      kind: 'postgres',
      url: 'postgres://u@h:5432/db?sslmode=require',
      schema: 'fc',
    });
    expect(parseBackendSpec('postgresql://h/db')).toMatchObject({ kind: 'postgres', schema: undefined });
  });

  it('refuses anything else, and URL parameters that would override the pool (options, timeouts, keepalives)', () => {
    for (const bad of [
      'mysql://h/db',
      'file:///tmp/x',
      'not a url',
      'postgres://h/db?options=-c%20search_path%3Dpublic',
      'postgres://h/db?statement_timeout=0',
      'postgres://h/db?keepalives=0',
    ])
      expect(() => parseBackendSpec(bad), bad).toThrow(TypeError);
  });

  it('the environment overrides the configuration file; the default is sqlite', () => {
    expect(resolveBackendSpec(undefined, {}, undefined)).toEqual({ kind: 'sqlite' });
    expect(resolveBackendSpec(undefined, { FAILCLOSED_BACKEND: 'postgres://h/a' }, 'sqlite')).toMatchObject({
      kind: 'postgres',
    });
    expect(resolveBackendSpec('sqlite', { FAILCLOSED_BACKEND: 'postgres://h/a' }, undefined)).toEqual({
      kind: 'sqlite',
    });
  });

  it('never shows a password', () => {
    expect(redactedBackend(parseBackendSpec('postgres://u:secret@h/db?schema=s'))).not.toContain('secret');
  });
});
