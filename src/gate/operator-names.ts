/**
 * How operators are named (OE-INV-025), apart from their registry (`operators.ts`) so that the CLI
 * can check a name without loading a store.
 */

/** The name of the bootstrap operator, the holder of the data directory's `operator.token`. */
export const BOOTSTRAP_OPERATOR = 'operator';

/** An operator's name: as a client's or approver's, without the `:` of principals. */
export const OPERATOR_NAME = /^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$/;

/** A tenant name (as admin actions accept it). */
export const OPERATOR_TENANT = /^[A-Za-z0-9._-]{1,128}$/;
