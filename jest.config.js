// ESM TypeScript under jest: ts-jest compiles each .ts file as an ES module and jest runs
// it with node's VM modules (the test script sets NODE_OPTIONS=--experimental-vm-modules).
// Imports are written with .js suffixes, as NodeNext requires; the mapper strips them.
export default {
  testEnvironment: 'node',
  extensionsToTreatAsEsm: ['.ts'],
  moduleNameMapper: { '^(\\.{1,2}/.*)\\.js$': '$1' },
  transform: { '^.+\\.ts$': ['ts-jest', { useESM: true, tsconfig: 'tsconfig.test.json' }] },
  testMatch: ['<rootDir>/test/**/*.test.ts'],
  // Only these are crawled: .bench holds whole Debian roots (and /proc mounts
  // while bench hosts run), which exhaust jest's file map.
  roots: ['<rootDir>/src', '<rootDir>/test'],
  // Two files at once: each worker boots its own lab (test/lab/control.ts), whose servers
  // mostly wait on SSH, apt and the network, so two labs on two cores take about half the
  // time of one after the other. The cache they share is built first, once.
  maxWorkers: 2,
  globalSetup: '<rootDir>/test/lab/global-setup.mjs',
  globalTeardown: '<rootDir>/test/lab/global-teardown.mjs',
  testSequencer: '<rootDir>/test/lab/sequencer.mjs',
  testTimeout: 30000,
  reporters: ['default', '<rootDir>/test/lab/durations.mjs'],
};
