/**
 * Shared by the strict-parser tests and its fuzzer: what `parseJson` decided for an input, and
 * where the JSONTestSuite corpus lives (test/fixtures/vectors/json, with its licence).
 */
import { join } from 'node:path';
import { parseJson } from '../../src/kernel/json.js';
import type { JsonLimits } from '../../src/kernel/json.js';
import { FailclosedError } from '../../src/kernel/errors.js';
import type { DenialCode } from '../../src/kernel/errors.js';
import { VECTORS_DIR } from './paths.js';

/** `accept`, or the denial code the strict parser gave. */
export type Outcome = 'accept' | DenialCode;

/** Runs the parser and reports the outcome; anything but a FailclosedError is rethrown. */
export function outcome(input: string | Uint8Array, limits?: JsonLimits): Outcome {
  try {
    parseJson(input, limits);
    return 'accept';
  } catch (err) {
    if (err instanceof FailclosedError) return err.code;
    throw err;
  }
}

/** JSON.parse as the oracle for accepted input, with -0 read as 0 like the strict parser. */
export const jsonParseOracle = (text: string): unknown =>
  JSON.parse(text, (_k, v: unknown) => (Object.is(v, -0) ? 0 : v));

/** JSONTestSuite's `test_parsing` folder (y_ accepted, n_ rejected, i_ decided in docs/json.md). */
export const JSON_TEST_SUITE_PARSING_DIR = join(VECTORS_DIR, 'json', 'test_parsing');
/** JSONTestSuite's `test_transform` folder. */
export const JSON_TEST_SUITE_TRANSFORM_DIR = join(VECTORS_DIR, 'json', 'test_transform');
