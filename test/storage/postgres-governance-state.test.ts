/**
 * The PostgreSQL governance state: the shared GovernanceState contract (every handle its own
 * pool on one schema, i.e. its own replica), plus rows parsed at the boundary and a shared pool
 * left open (OE-INV-025, FC-INV-4).
 */
import { afterEach, describe, expect, it } from 'vitest';
import { createPostgresGovernanceState, openPostgresPool } from '../../src/storage/postgres/index.js';
import type { PostgresPool } from '../../src/storage/postgres/index.js';
import { runGovernanceStateContract } from '../control-plane/governance-state.contract.js';
import { openMigratedPool, useTestDatabase } from '../support/postgres.js';

const pgdb = useTestDatabase('fc_gov');

runGovernanceStateContract('postgres', async () => {
  const first = await openMigratedPool(pgdb.url);
  const pools: PostgresPool[] = [first];
  let opened = 0;
  return {
    open: () => {
      // The first handle uses the migrating pool; every later one is a replica with its own pool.
      opened += 1;
      const db = opened === 1 ? first : openPostgresPool({ url: pgdb.url, schema: first.schema, max: 2 });
      if (db !== first) pools.push(db);
      return Promise.resolve(createPostgresGovernanceState(db));
    },
    destroy: async () => {
      await Promise.all(pools.map((p) => p.close()));
    },
  };
});

describe('PostgreSQL governance state specifics (OE-INV-025, FC-INV-4)', () => {
  const pools: PostgresPool[] = [];
  afterEach(async () => {
    await Promise.all(pools.splice(0).map((p) => p.close()));
  });
  const setup = async () => {
    const db = await openMigratedPool(pgdb.url);
    pools.push(db);
    return { db, state: createPostgresGovernanceState(db) };
  };

  it('a missing kill-switch row reads as engaged, never all clear; engaging it again restores the row', async () => {
    const { db, state } = await setup();
    await db.pool.query('DELETE FROM governance_kill_switch');
    expect((await state.check('acme', null)).kill_switch).toBe(true);
    expect((await state.snapshot()).kill_switch).toBe(true);
    await state.apply({ kind: 'kill_switch', on: false });
    expect((await state.check('acme', null)).kill_switch).toBe(false);
  });

  it('FC-INV-4: a kill-switch column of an unexpected type rejects check and snapshot', async () => {
    const { db, state } = await setup();
    await db.pool.query(
      'ALTER TABLE governance_kill_switch ALTER COLUMN engaged TYPE text USING engaged::text',
    );
    await expect(state.check('acme', 's')).rejects.toBeInstanceOf(TypeError);
    await expect(state.snapshot()).rejects.toBeInstanceOf(TypeError);
  });

  it('close() refuses later calls and leaves the shared pool open', async () => {
    const { db, state } = await setup();
    await state.apply({ kind: 'lockdown', tenant: 'acme', on: true });
    await state.close();
    await expect(state.check('acme', null)).rejects.toThrow('governance state closed');
    await expect(state.apply({ kind: 'kill_switch', on: true })).rejects.toThrow('governance state closed');
    await expect(state.snapshot()).rejects.toThrow('governance state closed');
    expect((await createPostgresGovernanceState(db).check('acme', null)).tenant_locked).toBe(true);
  });
});
