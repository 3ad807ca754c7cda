export * from './control.js';
export * from './identity.js';
export * from './post-mortem.js';
export * from './render-queue.js';
export * from './rundir.js';
export * from './rundir-watcher.js';
export * from './state-header.js';
export * from './summary.js';
