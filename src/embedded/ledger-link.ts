/**
 * A Control Plane process whose checkpoints the ledger process signs (`checkpoints` in
 * `failclosed.json`; `failclosed serve ledger`, `ledger-node.ts`; docs/deployment.md "The ledger
 * process"). The data directory then holds no checkpoint key: the writer is given the public key
 * pinned here and asks the ledger process, over mutual TLS and by the `ledger` role only, for the
 * checkpoint at an exact size. The answer is untrusted input, parsed strictly here and verified
 * against the pinned key and the writer's own tree by the checkpointer (`ledger/checkpoint.ts`).
 */
import { FailclosedError, parseJson } from '../kernel/index.js';
import type { JsonValue } from '../kernel/index.js';
import { ledgerKeyFromVkey, type CheckpointWitness, type StoredCheckpoint } from '../ledger/index.js';
import { gateRequest, type GateLink } from './executor-node.js';
import { isConfigObject } from './node-config.js';

const MAX_ANSWER = 64 * 1024;
const HEX64 = /^[0-9a-f]{64}$/;

function checkpointOf(v: JsonValue): StoredCheckpoint | undefined {
  if (!isConfigObject(v)) return undefined;
  const o = v;
  const { size, root_hash: root, note, at } = o;
  if (typeof size !== 'number' || !Number.isSafeInteger(size) || size < 1) return undefined;
  if (typeof root !== 'string' || !HEX64.test(root)) return undefined;
  if (typeof note !== 'string' || note.length > 16 * 1024) return undefined;
  if (typeof at !== 'string' || at.length > 64) return undefined;
  return { size, root_hash: root, note, at };
}

/** The writer's {@link CheckpointWitness} over `link` (the ledger process) with the pinned key. */
export function createLedgerWitness(link: GateLink, vkey: string): CheckpointWitness {
  return {
    ledgerKey: ledgerKeyFromVkey(vkey),
    async sign(size) {
      const a = await gateRequest(link, 'POST', '/v1/ledger/checkpoint', { size }, MAX_ANSWER);
      if (a.status !== 200)
        throw new FailclosedError('ERR_LEDGER_UNAVAILABLE', `the ledger process answered HTTP ${a.status}`);
      let v: JsonValue;
      try {
        v = parseJson(a.body, { maxBytes: MAX_ANSWER, maxDepth: 4 });
      } catch {
        throw new FailclosedError('ERR_LEDGER_UNAVAILABLE', 'the ledger process answered malformed JSON');
      }
      const cp = checkpointOf(v);
      if (cp === undefined)
        throw new FailclosedError('ERR_LEDGER_UNAVAILABLE', 'the ledger process answered no checkpoint');
      return cp;
    },
  };
}
