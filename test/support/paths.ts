import { fileURLToPath } from 'node:url';
import { resolve } from 'node:path';

/** Repository root. */
export const REPO_ROOT = resolve(fileURLToPath(new URL('.', import.meta.url)), '../..');
/** The public test vectors, copied into the repository with their licences and checksums. */
export const VECTORS_DIR = resolve(REPO_ROOT, 'test/fixtures/vectors');
