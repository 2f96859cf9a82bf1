/**
 * Works around a V8 fault in Node 20.20 (V8 11.3): when TurboFan inlines a JS→Wasm call (the
 * Cedar evaluator is WebAssembly) and the calling function is lazily deoptimised during that call,
 * the deoptimiser aborts the whole process ("Fatal error … unreachable code" in
 * `Deoptimizer::DoComputeBuiltinContinuation`). Seen under sustained load on the governed path.
 * Turning that one inlining off costs nothing measurable; it must run before the policy engine
 * gets hot, so it runs when this module is first imported.
 */
import { setFlagsFromString } from 'node:v8';

setFlagsFromString('--no-turbo-inline-js-wasm-calls');
