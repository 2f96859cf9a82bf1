/** Index of the command word: the first argument that is neither an option nor `--data`'s value. */
export function commandIndex(argv: readonly string[]): number {
  let i = 0;
  while (i < argv.length && argv[i]!.startsWith('-')) i += argv[i] === '--data' ? 2 : 1;
  return i;
}
