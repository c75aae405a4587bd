/** One thing wrong with an inventory, where it is, and what to do about it. */
export interface Problem {
  file: string;
  line: number;
  column: number;
  message: string;
  hint: string;
}

/** Bad input: raised before any host is contacted; the CLI maps it to exit code 2. */
export class InventoryError extends Error {
  constructor(readonly problems: Problem[]) {
    super(problems.map(formatProblem).join('\n'));
    this.name = 'InventoryError';
  }
}

export function formatProblem(p: Problem): string {
  return `${p.file}:${p.line}:${p.column}: ${p.message}\n  hint: ${p.hint}`;
}
