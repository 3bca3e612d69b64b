import type { DataPath } from './data-path.ts';

/**
 * The syntax tree of a CESQL expression. `pos` is the 0-based offset of the node in the source. `data` and
 * `existsData` are Pioneer's extension: a value inside the event's JSON data (data-path.ts).
 */
export type CesqlNode =
  | { type: 'literal'; value: boolean | number | string; pos: number }
  | { type: 'attribute'; name: string; pos: number }
  | { type: 'exists'; name: string; pos: number }
  | { type: 'data'; path: DataPath; pos: number }
  | { type: 'existsData'; path: DataPath; pos: number }
  | { type: 'not'; operand: CesqlNode; pos: number }
  | { type: 'negate'; operand: CesqlNode; pos: number }
  | { type: 'binary'; op: BinaryOperator; left: CesqlNode; right: CesqlNode; pos: number }
  | { type: 'like'; operand: CesqlNode; pattern: string; negated: boolean; pos: number }
  | { type: 'in'; operand: CesqlNode; set: CesqlNode[]; negated: boolean; pos: number }
  | { type: 'call'; name: string; args: CesqlNode[]; pos: number };

export type LogicOperator = 'AND' | 'OR' | 'XOR';
export type ComparisonOperator = '=' | '!=' | '<>' | '<' | '<=' | '>' | '>=';
export type ArithmeticOperator = '+' | '-' | '*' | '/' | '%';
export type BinaryOperator = LogicOperator | ComparisonOperator | ArithmeticOperator;
