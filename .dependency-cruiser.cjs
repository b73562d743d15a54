/**
 * The layering of src/, checked by `npm run lint:deps` (part of `npm test`).
 * Every import points down this list; type-only imports count too.
 */
const LAYERS = [
  ['shared layout', '^src/(errors\\.ts|schedule\\.ts|shm/)'],
  ['heap', '^src/heap/'],
  ['reclamation', '^src/reclaim/'],
  ['allocator', '^src/alloc/'],
  ['map', '^src/map/'],
  ['recovery', '^src/recovery/'],
  ['public heap', '^src/anyalloc\\.ts$'],
  ['public entry', '^src/index\\.ts$'],
  ['node and cli edges', '^src/(node|cli)/'],
];

const upward = LAYERS.flatMap(([name, path], i) =>
  LAYERS.slice(i + 1).map(([higher, higherPath]) => ({
    name: `no-upward-${name.replace(/ /g, '-')}-to-${higher.replace(/ /g, '-')}`,
    comment: `The ${name} layer must not import the ${higher} layer above it.`,
    severity: 'error',
    from: { path },
    to: { path: higherPath },
  })),
);

module.exports = {
  forbidden: [
    {
      name: 'no-circular',
      comment: 'No module reaches itself through its imports.',
      severity: 'error',
      from: {},
      to: { circular: true },
    },
    ...upward,
    {
      name: 'core-runs-everywhere',
      comment: 'The core uses only what every JavaScript scope has: Node built-ins only at the edges (src/node, src/cli).',
      severity: 'error',
      from: { path: '^src/', pathNot: '^src/(node|cli)/' },
      to: { dependencyTypes: ['core'] },
    },
    {
      name: 'no-test-or-bench-in-src',
      comment: 'The library does not import its tests or benchmarks.',
      severity: 'error',
      from: { path: '^src/' },
      to: { path: '^(test|bench)/' },
    },
    {
      name: 'tests-and-benchmarks-apart',
      comment: 'Tests and benchmarks share helpers from one place instead of importing each other.',
      severity: 'error',
      from: { path: '^(test|bench)/' },
      to: { path: '^(test|bench)/', pathNot: '^$1/' },
    },
    {
      name: 'no-unresolvable',
      comment: 'Every import resolves.',
      severity: 'error',
      from: {},
      to: { couldNotResolve: true },
    },
  ],
  options: {
    doNotFollow: { path: 'node_modules' },
    exclude: { path: '^(dist|node_modules)/' },
    tsPreCompilationDeps: true,
    tsConfig: { fileName: 'tsconfig.json' },
    enhancedResolveOptions: { exportsFields: ['exports'], conditionNames: ['import', 'require', 'node', 'default', 'types'] },
  },
};
