import { fileURLToPath } from 'node:url';
import { resolve } from 'node:path';

/** Repository root. */
export const REPO_ROOT = resolve(fileURLToPath(new URL('.', import.meta.url)), '../..');
/** The public test vectors, kept beside the repository in `shared/vectors`. */
export const VECTORS_DIR = resolve(REPO_ROOT, '../shared/vectors');
