// A process that takes the ledger writer lock with the built code (`npm run build`), prints
// "held <epoch>" and keeps it until it is killed or its stdin closes (its parent is gone).
//   node writer-lock-holder.mjs sqlite <lock file>
//   node writer-lock-holder.mjs postgres <url> <schema> [heartbeat ms]   (an instance lease: prints "held <instance>")
const [backend, target, schema, heartbeat] = process.argv.slice(2);
let lock;
if (backend === 'sqlite') {
  const { createFileWriterLock } = await import('../../dist/src/storage/sqlite/index.js');
  lock = createFileWriterLock(target);
} else if (backend === 'postgres') {
  // An instance lease: it prints its instance id instead of an epoch.
  const { openPostgresPool, acquireInstanceLease } = await import('../../dist/src/storage/postgres/index.js');
  const lease = await acquireInstanceLease(openPostgresPool({ url: target, schema }), {
    name: `holder-${process.pid}`,
    ...(heartbeat === undefined ? {} : { heartbeatMs: Number(heartbeat) }),
  });
  process.stdout.write(`held ${lease.instance}\n`);
  process.stdin.resume();
  process.stdin.on('end', () => process.exit(0));
  await new Promise(() => undefined);
} else {
  throw new Error(`unknown backend ${backend}`);
}
const lease = await lock.acquire({ wait: false });
process.stdout.write(`held ${lease.epoch}\n`);
// The open stdin pipe keeps the process alive (a file lease holds nothing the event loop waits on).
process.stdin.resume();
process.stdin.on('end', () => process.exit(0));
