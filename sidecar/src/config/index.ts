export * from './config.js';
export * from './size.js';
