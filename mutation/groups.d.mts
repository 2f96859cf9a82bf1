/** Types for `groups.mjs`: each group's mutated source files and the tests run against them. */
export declare const groups: Record<
  string,
  { readonly mutate: readonly string[]; readonly tests: readonly string[] }
>;
