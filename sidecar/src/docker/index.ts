export * from './collect.js';
export * from './engine.js';
export * from './tar.js';
