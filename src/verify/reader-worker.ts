/**
 * Runs `verifyBundleFile` for a v2 file inside a worker thread whose heap is capped, so the
 * whole verification stays within a bounded RSS whatever the bundle's size (the streamed live
 * set is small; an uncapped V8 heap would grow with allocation churn instead). The report is
 * posted back to the caller.
 */
import { parentPort, workerData } from 'node:worker_threads';
import type { VerifyOptions } from './types.js';
import { verifyV2File } from './verify-file.js';

const { path, options } = workerData as { path: string; options: VerifyOptions };
parentPort?.postMessage(await verifyV2File(path, options, true));
