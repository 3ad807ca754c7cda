export type * from './model.js';
export { parseDump, readDump } from './dump.js';
export { parseStateFile, STATE_MAGIC, STATE_HEADER_SIZE, type StateReadOptions } from './state.js';
export { diskSourceReader, type SourceReader } from './source.js';
export { buildTree, foldedLabel, mergeStacks, NO_PYTHON_FRAME, sortStacks, toFolded, trimToCoverage, type FlameNode } from './stacks.js';
export { renderFlamegraph, svgHeight, type FlamegraphOptions } from './flamegraph.js';
export { explainTrigger, FILES, renderPage, type Page } from './html.js';
export { buildReportJson, renderDumpFile, renderReport, reportJsonText, timestampName, type RenderOptions } from './render.js';
