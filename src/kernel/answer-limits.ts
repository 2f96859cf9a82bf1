/**
 * What a governed call's result may be, and so what every answer carrying one may be: the bounds
 * the executor enforces on a result (OE-INV-006 "max output"; docs/adapters.md "Output limits")
 * and those every reader of an answer accepts (the client library, a Gate reading a separate
 * Execution Layer). They are one pair of numbers so that a result the executor lets through is
 * never one a reader must refuse: a call that ran is answered with its result, never `unknown`
 * because its answer outgrew what the client reads.
 */

/**
 * The largest `max_output_bytes` a tool may be granted (bytes of the result's canonical JSON,
 * after redaction), and the default one. A bundle asking for more is refused at load.
 */
export const MAX_OUTPUT_BYTES = 1024 * 1024;

/**
 * The deepest nesting of arrays and objects a result may have (a top-level object or array is 1):
 * an answer nests it one or two levels deeper, within the readers' 64.
 */
export const MAX_RESULT_DEPTH = 48;

/**
 * The largest answer body read (bytes): a result at {@link MAX_OUTPUT_BYTES} and what an answer
 * carries beside it (ids, the receipt's reference, a job's token), with room to spare.
 */
export const MAX_ANSWER_BYTES = MAX_OUTPUT_BYTES + 64 * 1024;
