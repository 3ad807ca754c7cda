export * from './control.js';
export * from './rundir.js';
export * from './watch.js';
