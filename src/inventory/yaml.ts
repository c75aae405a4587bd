import { EVENT_ID, type Event, getScalarValue, load, parseEvents, YAMLException } from 'js-yaml';
import { InventoryError, type Problem } from './errors.js';

/** Where a YAML node starts, 1-based as editors count. */
export interface Position {
  line: number;
  column: number;
}

/**
 * A node's source offsets, shaped like the value js-yaml builds, so that a path into the
 * value (as a schema validator reports it) leads to a line and column.
 */
type PosNode =
  | { kind: 'scalar'; start: number }
  | { kind: 'seq'; start: number; items: PosNode[] }
  | { kind: 'map'; start: number; keys: Map<string, { key: number; value: PosNode }> };

export interface ParsedYaml {
  value: unknown;
  /** Position of the node at `path`; with `key`, of the mapping key itself. */
  locate(path: readonly PropertyKey[], key?: boolean): Position;
}

// Aliases are refused outright: an inventory never needs them, and they are how
// "billion laughs" documents blow up whoever walks the value.
const LOAD_OPTIONS = { maxAliases: 0, maxDepth: 32 } as const;

export function parseYaml(text: string, file: string): ParsedYaml {
  let value: unknown;
  let events: Event[];
  try {
    value = load(text, { ...LOAD_OPTIONS, filename: file });
    events = parseEvents(text, { filename: file, maxDepth: LOAD_OPTIONS.maxDepth });
  } catch (err) {
    throw new InventoryError([yamlProblem(err, file)]);
  }
  const root = buildTree(events, text);
  const lines = lineStarts(text);
  const toPos = (offset: number): Position => positionOf(lines, offset);

  return {
    value,
    locate(path, key = false) {
      let node: PosNode | undefined = root;
      let keyOffset: number | undefined;
      for (const part of path) {
        if (!node) break;
        keyOffset = undefined;
        if (node.kind === 'map') {
          const entry = node.keys.get(String(part));
          if (!entry) break;
          keyOffset = entry.key;
          node = entry.value;
        } else if (node.kind === 'seq' && typeof part === 'number') {
          const item: PosNode | undefined = node.items[part];
          if (!item) break;
          node = item;
        } else {
          break;
        }
      }
      if (key && keyOffset !== undefined) return toPos(keyOffset);
      return toPos(node?.start ?? 0);
    },
  };
}

function yamlProblem(err: unknown, file: string): Problem {
  if (err instanceof YAMLException) {
    const mark = err.mark;
    const reason = err.reason || 'invalid YAML';
    let hint = 'Fix the YAML syntax at that spot; indentation must use spaces and be consistent.';
    if (/maxAliases/.test(err.message)) hint = 'Write the value out instead of using an alias (*name): aliases are not allowed in an inventory.';
    else if (/duplicated mapping key/.test(reason)) hint = 'Each key may appear once in a mapping; remove or rename the repeated one.';
    else if (/tab/.test(reason)) hint = 'Indent with spaces, not tabs.';
    else if (/depth/.test(reason)) hint = 'The inventory is nested far deeper than it can be; check the structure.';
    return {
      file,
      line: mark ? mark.line + 1 : 1,
      column: mark ? mark.column + 1 : 1,
      message: reason.replace(/\s*\(\d+:\d+\)\s*$/, ''),
      hint,
    };
  }
  return { file, line: 1, column: 1, message: `cannot read YAML: ${(err as Error).message ?? err}`, hint: 'Check the file is a YAML document.' };
}

function buildTree(events: Event[], text: string): PosNode | undefined {
  type Open =
    | { kind: 'seq'; node: Extract<PosNode, { kind: 'seq' }> }
    | { kind: 'map'; node: Extract<PosNode, { kind: 'map' }>; pendingKey?: { name: string; at: number } };
  const stack: Open[] = [];
  let root: PosNode | undefined;

  const attach = (node: PosNode, keyText?: string): void => {
    const top = stack[stack.length - 1];
    if (!top) {
      root ??= node;
      return;
    }
    if (top.kind === 'seq') {
      top.node.items.push(node);
    } else if (top.pendingKey) {
      top.node.keys.set(top.pendingKey.name, { key: top.pendingKey.at, value: node });
      top.pendingKey = undefined;
    } else {
      // A mapping key. Only scalar keys are named; a complex key never matches a path.
      top.pendingKey = { name: keyText ?? '\u0000complex', at: node.start };
    }
  };

  for (const ev of events) {
    switch (ev.type) {
      case EVENT_ID.SCALAR: {
        const quoted = ev.style === 2 || ev.style === 3;
        const valueStart = quoted ? ev.valueStart - 1 : ev.valueStart;
        const start = ev.anchorStart >= 0 ? Math.min(ev.anchorStart, valueStart) : valueStart;
        attach({ kind: 'scalar', start }, getScalarValue(text, ev));
        break;
      }
      case EVENT_ID.SEQUENCE: {
        const node = { kind: 'seq' as const, start: ev.start, items: [] };
        attach(node);
        stack.push({ kind: 'seq', node });
        break;
      }
      case EVENT_ID.MAPPING: {
        const node = { kind: 'map' as const, start: ev.start, keys: new Map() };
        attach(node);
        stack.push({ kind: 'map', node });
        break;
      }
      case EVENT_ID.ALIAS:
        attach({ kind: 'scalar', start: ev.anchorStart });
        break;
      case EVENT_ID.POP:
        stack.pop();
        break;
      default:
        break;
    }
  }
  return root;
}

function lineStarts(text: string): number[] {
  const starts = [0];
  for (let i = 0; i < text.length; i++) if (text.charCodeAt(i) === 10) starts.push(i + 1);
  return starts;
}

function positionOf(starts: number[], offset: number): Position {
  let lo = 0;
  let hi = starts.length - 1;
  while (lo < hi) {
    const mid = (lo + hi + 1) >> 1;
    if ((starts[mid] ?? 0) <= offset) lo = mid;
    else hi = mid - 1;
  }
  return { line: lo + 1, column: offset - (starts[lo] ?? 0) + 1 };
}
