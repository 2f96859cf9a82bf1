/**
 * Reads a whole HTTP body into memory, at most `maxBytes` of it: past the cap the stream is
 * destroyed and the answer is `null` (the caller refuses), so a peer cannot make a role buffer
 * more than it allows. Used by the roles' mTLS listeners for request bodies and their clients for
 * answers.
 */
import type { Readable } from 'node:stream';

/** The body of `stream`, or null once it grows past `maxBytes` (the stream is destroyed then). */
export function readCapped(stream: Readable, maxBytes: number): Promise<Buffer | null> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    stream.on('data', (c: Buffer) => {
      size += c.length;
      if (size > maxBytes) {
        resolve(null);
        stream.destroy();
        return;
      }
      chunks.push(c);
    });
    stream.once('end', () => resolve(Buffer.concat(chunks)));
    stream.once('error', reject);
  });
}
