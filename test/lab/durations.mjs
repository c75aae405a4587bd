// A jest reporter: at the end of every run, a table of durations (file, test, seconds), the
// slowest files first, so that where the suite's time goes is on record in every CI log.
// PROVISION_TEST_DURATIONS=FILE also writes it there (docs/development.md keeps the latest).
import { writeFileSync } from 'node:fs';
import { relative } from 'node:path';

export default class Durations {
  constructor(globalConfig) {
    this.root = globalConfig.rootDir;
    this.files = [];
    this.started = Date.now();
  }

  onTestResult(_test, result) {
    const file = relative(this.root, result.testFilePath);
    const seconds = (result.perfStats.end - result.perfStats.start) / 1000;
    const tests = result.testResults.map((t) => ({ name: t.title, seconds: (t.duration ?? 0) / 1000, status: t.status }));
    this.files.push({ file, seconds, tests });
  }

  onRunComplete() {
    const wall = (Date.now() - this.started) / 1000;
    const lines = ['', `Durations (wall ${fmt(wall)} s; files run two at a time):`, '', '| file | test | seconds |', '| --- | --- | ---: |'];
    for (const f of [...this.files].sort((a, b) => b.seconds - a.seconds)) {
      lines.push(`| ${f.file} | (whole file, ${f.tests.length} tests) | ${fmt(f.seconds)} |`);
      // Every lab test; of the quick files only the whole file.
      if (f.seconds < 60) continue;
      for (const t of f.tests)
        lines.push(`| ${f.file} | ${t.name.replace(/\|/g, '\\|').slice(0, 110)}${t.status === 'passed' ? '' : ` (${t.status})`} | ${fmt(t.seconds)} |`);
    }
    const table = `${lines.join('\n')}\n`;
    process.stdout.write(table);
    if (process.env.PROVISION_TEST_DURATIONS) writeFileSync(process.env.PROVISION_TEST_DURATIONS, table);
  }
}

const fmt = (s) => (s >= 100 ? s.toFixed(0) : s.toFixed(1));
