export * from './config.js';
export * from './size.js';
export * from './watch.js';
