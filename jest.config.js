// ESM TypeScript under jest: ts-jest compiles each .ts file as an ES module and jest runs
// it with node's VM modules (the test script sets NODE_OPTIONS=--experimental-vm-modules).
// Imports are written with .js suffixes, as NodeNext requires; the mapper strips them.
export default {
  testEnvironment: 'node',
  extensionsToTreatAsEsm: ['.ts'],
  moduleNameMapper: { '^(\\.{1,2}/.*)\\.js$': '$1' },
  transform: { '^.+\\.ts$': ['ts-jest', { useESM: true, tsconfig: 'tsconfig.test.json' }] },
  testMatch: ['<rootDir>/test/**/*.test.ts'],
  // Only these are crawled: .lab-cache and .bench hold whole Debian roots (and /proc mounts
  // while bench hosts run), which exhaust jest's file map.
  roots: ['<rootDir>/src', '<rootDir>/test'],
  // The lab tests share one set of UML servers; running files one at a time keeps them apart.
  maxWorkers: 1,
  testTimeout: 30000,
};
