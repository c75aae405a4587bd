// The shape of src/, checked by `npm run lint`: no import cycle, and no folder importing a
// folder above it. Lowest first: a folder may import only from folders before it.
const LAYERS = ['core', 'inventory', 'backends', 'remote', 'plan', 'verify', 'apply', 'status', 'report', 'cli'];

module.exports = {
  forbidden: [
    { name: 'no-circular', severity: 'error', comment: 'an import cycle', from: {}, to: { circular: true } },
    ...LAYERS.slice(0, -1).map((layer, i) => ({
      name: `${layer}-imports-upward`,
      severity: 'error',
      comment: `src/${layer} may import only from ${LAYERS.slice(0, i + 1).join(', ')}`,
      from: { path: `^src/${layer}/` },
      to: { path: `^src/(${LAYERS.slice(i + 1).join('|')})(/|\\.ts$)` },
    })),
    { name: 'no-unresolvable', severity: 'error', comment: 'an import that names no file', from: {}, to: { couldNotResolve: true } },
  ],
  options: {
    doNotFollow: { path: 'node_modules' },
    tsPreCompilationDeps: true,
    tsConfig: { fileName: 'tsconfig.json' },
  },
};
