/**
 * Debug mode's public names under their former path; the code lives in
 * ./debug/ (debug-allocator.ts is the place to start).
 */
export { DebugAllocator } from './debug/debug-allocator.js';
export { DEBUG_CANARY, DEBUG_HEADER, DEBUG_OVERHEAD, POISON_BYTE } from './debug/guard.js';
export { openAllocator } from './debug/open.js';
export { AllocatorMisuseError, MISUSE, type MisuseCode } from './misuse.js';
