/**
 * The demo's reads of the operator evidence view are bounded: a Gate that accepts the connection
 * and never answers, or stops in the middle of its answer's body, fails the step that needed the
 * read, naming it, instead of holding the demo for ever (docs/demo.md).
 */
import { createServer } from 'node:http';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { evidenceRecords } from '../../src/cli/demo.js';

const servers: Server[] = [];

afterEach(async () => {
  for (const s of servers.splice(0)) {
    s.closeAllConnections();
    await new Promise<void>((resolve) => s.close(() => resolve()));
  }
});

async function serve(handle: Parameters<typeof createServer>[1]): Promise<string> {
  const s = createServer(handle);
  servers.push(s);
  await new Promise<void>((resolve) => s.listen(0, '127.0.0.1', resolve));
  return `http://127.0.0.1:${(s.address() as AddressInfo).port}`;
}

describe("the demo's evidence reads", () => {
  it('a Gate that never answers fails the read within its bound', async () => {
    const url = await serve(() => undefined);
    await expect(evidenceRecords(url, 't', 'req_1', 200)).rejects.toThrow(
      'the evidence view of req_1 did not answer within 200 ms',
    );
  });

  it('an answer whose body stops midway fails the read within its bound', async () => {
    const url = await serve((_req, res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.write('{"records":[');
    });
    await expect(evidenceRecords(url, 't', 'req_2', 200)).rejects.toThrow('did not answer within 200 ms');
  });

  it('an answer is read as before', async () => {
    const url = await serve((_req, res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end('{"records":[{"entry":{"type":"decision"}}]}');
    });
    expect(await evidenceRecords(url, 't', 'req_3', 2000)).toEqual([{ entry: { type: 'decision' } }]);
  });
});
