import type { BinaryOperator, CesqlNode } from './ast.ts';
import { CesqlLimitError, CesqlParseError } from './errors.ts';
import { describeToken, tokenize, type Token } from './lexer.ts';
import { checkDataPath, dataPath, type DataPath } from './data-path.ts';

/**
 * The largest expression Pioneer compiles, in characters (UTF-16 units). The API refuses longer ones.
 */
export const MAX_EXPRESSION_LENGTH = 4096;

/**
 * How deep an expression may nest: each `( ... )`, function call, IN list, NOT, unary `-` and LIKE or
 * IN applied to the result of another one is a level. The parser recurses once per level (a few
 * frames each) and so do the compiler and the evaluator, so this is what keeps all three far from the
 * stack's end: 64 levels take under 1,000 frames, where Node's default stack holds about 10,000.
 * No hand-written filter comes near 64; a deeper one is generated and better written flat.
 */
export const MAX_NESTING_DEPTH = 64;

/**
 * The most nodes (literals, attributes, operators, calls) an expression may have. Each node is a
 * constant amount of work per evaluation (what grows with a value's length is charged to the
 * evaluation budget instead), so this bounds the rest of the work: 1,000 nodes evaluate in a few
 * microseconds (bench/cesql.ts). Long chains of AND, OR and the like are evaluated in a loop, not by
 * recursion, so even a chain of 1,000 nodes needs no stack. A 4,096-character expression can hold
 * about 2,000 nodes (`1+1+...`); real ones hold far fewer: an IN list of 900 short strings fits.
 */
export const MAX_NODES = 1000;

const INT32_MAX = 2147483647;

const LOGIC: ReadonlySet<string> = new Set(['AND', 'OR', 'XOR']);
const COMPARISON: ReadonlySet<string> = new Set(['=', '!=', '<>', '<', '<=', '>', '>=']);
const ADDITIVE: ReadonlySet<string> = new Set(['+', '-']);
const MULTIPLICATIVE: ReadonlySet<string> = new Set(['*', '/', '%']);
const KEYWORDS: ReadonlySet<string> = new Set(['AND', 'OR', 'XOR', 'NOT', 'LIKE', 'IN', 'EXISTS', 'TRUE', 'FALSE']);

const VALUE_IDENTIFIER = /^[A-Za-z0-9]+$/;
const FUNCTION_IDENTIFIER = /^[A-Za-z][A-Za-z_]*$/;

/**
 * Parses a CESQL 1.0 expression into a tree, by recursive descent over the precedence levels of
 * spec 3.6, loosest first:
 *
 *   AND, OR, XOR (one level, left to right)
 *   = != <> < <= > >=
 *   + -
 *   * / %
 *   LIKE, NOT LIKE, IN, NOT IN (postfix on a unary operand, left to right)
 *   NOT, unary -
 *   literals, attributes, data paths, EXISTS, function invocations, ( subexpressions )
 *
 * A data path (`data.merchant.country`, data-path.ts) is Pioneer's extension: one operand, like an
 * attribute, one node however many members it has; `EXISTS` takes one as well.
 *
 * A `-` directly before an integer literal is part of the literal (spec 2.2 `integer-literal`), which
 * is how `-2147483648` is written; so is a `+` written right against the digits.
 */
export function parseCesql(source: string): CesqlNode {
  return parseCesqlCounted(source).ast;
}

/**
 * `parseCesql`, also telling how many nodes the tree has. Throws `CesqlLimitError` (a
 * `CesqlParseError`) for an expression over MAX_EXPRESSION_LENGTH, MAX_NESTING_DEPTH or MAX_NODES:
 * the length before reading anything, the depth and the node count as soon as they are passed, so
 * parsing an oversized expression costs no more than parsing an allowed one.
 */
export function parseCesqlCounted(source: string): { ast: CesqlNode; nodes: number } {
  if (source.length > MAX_EXPRESSION_LENGTH) {
    throw new CesqlLimitError('length', `longer than ${MAX_EXPRESSION_LENGTH} characters (${source.length})`, MAX_EXPRESSION_LENGTH, 'more');
  }
  const parser = new Parser(tokenize(source));
  const ast = parser.parseRoot();
  return { ast, nodes: parser.nodes };
}

class Parser {
  private index = 0;
  private depth = 0;
  nodes = 0;

  constructor(private readonly tokens: Token[]) {}

  parseRoot(): CesqlNode {
    const node = this.parseLogic();
    const next = this.peek();
    if (next.kind !== 'eof') this.fail('an operator or end of input', next);
    return node;
  }

  /** Counts a node; every node the parser builds goes through here. */
  private node<N extends CesqlNode>(node: N): N {
    if (++this.nodes > MAX_NODES) {
      throw new CesqlLimitError('nodes', `more than ${MAX_NODES} nodes (operands, operators and calls) at position ${node.pos}`, node.pos, 'more');
    }
    return node;
  }

  /** Enters one level of nesting at `token`; `leave()` when done. */
  private enter(token: Token): void {
    if (++this.depth > MAX_NESTING_DEPTH) {
      throw new CesqlLimitError('depth', `nesting deeper than ${MAX_NESTING_DEPTH} at position ${token.pos}`, token.pos, describeToken(token));
    }
  }

  private leave(): void {
    this.depth--;
  }

  private peek(offset = 0): Token {
    const token = this.tokens[Math.min(this.index + offset, this.tokens.length - 1)];
    if (token === undefined) throw new Error('token stream is empty');
    return token;
  }

  private advance(): Token {
    const token = this.peek();
    if (token.kind !== 'eof') this.index++;
    return token;
  }

  private fail(expected: string, token: Token): never {
    throw new CesqlParseError(expected, token.pos, describeToken(token));
  }

  private isPunct(token: Token, text: string): boolean {
    return token.kind === 'punct' && token.text === text;
  }

  private isKeyword(token: Token, upper: string): boolean {
    return token.kind === 'word' && token.upper === upper;
  }

  private expectPunct(text: string): Token {
    const token = this.peek();
    if (!this.isPunct(token, text)) this.fail(`'${text}'`, token);
    return this.advance();
  }

  private binaryLevel(ops: ReadonlySet<string>, next: () => CesqlNode): CesqlNode {
    let left = next();
    for (;;) {
      const token = this.peek();
      const op = token.kind === 'punct' ? token.text : token.kind === 'word' ? token.upper : '';
      if (!ops.has(op)) return left;
      this.advance();
      const right = next();
      left = this.node({ type: 'binary', op: op as BinaryOperator, left, right, pos: token.pos });
    }
  }

  private parseLogic(): CesqlNode {
    return this.binaryLevel(LOGIC, () => this.parseComparison());
  }

  private parseComparison(): CesqlNode {
    return this.binaryLevel(COMPARISON, () => this.parseAdditive());
  }

  private parseAdditive(): CesqlNode {
    return this.binaryLevel(ADDITIVE, () => this.parseMultiplicative());
  }

  private parseMultiplicative(): CesqlNode {
    return this.binaryLevel(MULTIPLICATIVE, () => this.parsePostfix());
  }

  /**
   * LIKE and IN chain without recursion here, but each one applied to another's result nests one
   * level deeper in the tree (the compiler and the evaluator recurse through it), so each counts as
   * a level of nesting until the chain ends.
   */
  private parsePostfix(): CesqlNode {
    let node = this.parseUnary();
    const depth = this.depth;
    try {
      for (;;) {
        const token = this.peek();
        let negated = false;
        let operator = token;
        if (this.isKeyword(token, 'NOT')) {
          const after = this.peek(1);
          if (!this.isKeyword(after, 'LIKE') && !this.isKeyword(after, 'IN')) this.fail("LIKE or IN after NOT", after);
          negated = true;
          operator = after;
        } else if (!this.isKeyword(token, 'LIKE') && !this.isKeyword(token, 'IN')) {
          return node;
        }
        if (node.type === 'like' || node.type === 'in') this.enter(token);
        if (negated) this.advance();
        this.advance();
        if (operator.kind === 'word' && operator.upper === 'LIKE') {
          const pattern = this.peek();
          if (pattern.kind !== 'string') this.fail('a string literal as LIKE pattern', pattern);
          this.advance();
          node = this.node({ type: 'like', operand: node, pattern: pattern.value, negated, pos: token.pos });
        } else {
          node = this.node({ type: 'in', operand: node, set: this.parseSet(), negated, pos: token.pos });
        }
      }
    } finally {
      this.depth = depth;
    }
  }

  private parseSet(): CesqlNode[] {
    const open = this.expectPunct('(');
    this.enter(open);
    const set: CesqlNode[] = [this.parseLogic()];
    while (this.isPunct(this.peek(), ',')) {
      this.advance();
      set.push(this.parseLogic());
    }
    this.expectPunct(')');
    this.leave();
    return set;
  }

  private parseUnary(): CesqlNode {
    const token = this.peek();
    if (this.isKeyword(token, 'NOT')) {
      this.advance();
      this.enter(token);
      const operand = this.parseUnary();
      this.leave();
      return this.node({ type: 'not', operand, pos: token.pos });
    }
    if (this.isPunct(token, '-')) {
      this.advance();
      const next = this.peek();
      if (next.kind === 'integer') {
        this.advance();
        return this.node({ type: 'literal', value: this.integerValue(next, -1, token.pos), pos: token.pos });
      }
      this.enter(token);
      const operand = this.parseUnary();
      this.leave();
      return this.node({ type: 'negate', operand, pos: token.pos });
    }
    return this.parsePrimary();
  }

  private integerValue(token: Token, sign: 1 | -1, pos: number): number {
    const text = token.text.replace(/^0+(?=\d)/, '');
    const magnitude = text.length > 10 ? Infinity : Number(text);
    const limit = sign === 1 ? INT32_MAX : INT32_MAX + 1;
    if (magnitude > limit) {
      throw new CesqlParseError('an integer literal within the 32-bit signed range', pos, `'${sign === 1 ? '' : '-'}${token.text}'`);
    }
    return sign === 1 ? magnitude : magnitude === 0 ? 0 : -magnitude;
  }

  private parsePrimary(): CesqlNode {
    const token = this.peek();
    switch (token.kind) {
      case 'integer':
        this.advance();
        return this.node({ type: 'literal', value: this.integerValue(token, 1, token.pos), pos: token.pos });
      case 'string':
        this.advance();
        return this.node({ type: 'literal', value: token.value, pos: token.pos });
      case 'punct':
        if (token.text === '(') {
          this.advance();
          this.enter(token);
          const inner = this.parseLogic();
          this.expectPunct(')');
          this.leave();
          return inner;
        }
        if (token.text === '+') {
          const next = this.peek(1);
          if (next.kind === 'integer' && next.pos === token.end) {
            this.advance();
            this.advance();
            return this.node({ type: 'literal', value: this.integerValue(next, 1, token.pos), pos: token.pos });
          }
        }
        return this.fail('an expression', token);
      case 'word':
        return this.parseWord(token);
      case 'path':
        this.advance();
        return this.node({ type: 'data', path: this.dataPath(token), pos: token.pos });
      case 'eof':
        return this.fail('an expression', token);
    }
  }

  private parseWord(token: Token & { kind: 'word' }): CesqlNode {
    if (token.upper === 'TRUE' || token.upper === 'FALSE') {
      this.advance();
      return this.node({ type: 'literal', value: token.upper === 'TRUE', pos: token.pos });
    }
    if (token.upper === 'EXISTS') {
      this.advance();
      const name = this.peek();
      if (name.kind === 'path') {
        this.advance();
        return this.node({ type: 'existsData', path: this.dataPath(name), pos: token.pos });
      }
      if (name.kind !== 'word' || KEYWORDS.has(name.upper) || !VALUE_IDENTIFIER.test(name.text)) {
        this.fail('an attribute name after EXISTS', name);
      }
      this.advance();
      return this.node({ type: 'exists', name: name.text.toLowerCase(), pos: token.pos });
    }
    if (this.isPunct(this.peek(1), '(')) {
      if (!FUNCTION_IDENTIFIER.test(token.text) || KEYWORDS.has(token.upper)) this.fail('a function name', token);
      this.advance();
      const open = this.advance();
      this.enter(open);
      const args: CesqlNode[] = [];
      if (!this.isPunct(this.peek(), ')')) {
        args.push(this.parseArgument());
        while (this.isPunct(this.peek(), ',')) {
          this.advance();
          args.push(this.parseArgument());
        }
      }
      this.expectClosingParen();
      this.leave();
      return this.node({ type: 'call', name: token.upper, args, pos: token.pos });
    }
    if (KEYWORDS.has(token.upper)) this.fail('an expression', token);
    if (!VALUE_IDENTIFIER.test(token.text)) this.fail('an attribute name (letters and digits only)', token);
    this.advance();
    return this.node({ type: 'attribute', name: token.text.toLowerCase(), pos: token.pos });
  }

  /** A dotted path's token as a data path: `data` (in any case) and the members the limits allow. */
  private dataPath(token: Token & { kind: 'path' }): DataPath {
    if (token.root.toUpperCase() !== 'DATA') this.fail('an attribute name, or a data path starting with data (data.amount)', token);
    const problem = checkDataPath(token.text, token.segments);
    if (problem !== undefined) throw new CesqlParseError('a data path within the limits', token.pos, describeToken(token), `${problem} at position ${token.pos}`);
    return dataPath(token.text, token.segments);
  }

  private parseArgument(): CesqlNode {
    const token = this.peek();
    if (token.kind === 'eof') this.fail("an expression or ')'", token);
    return this.parseLogic();
  }

  private expectClosingParen(): void {
    const token = this.peek();
    if (!this.isPunct(token, ')')) this.fail(token.kind === 'eof' ? "')'" : "',' or ')'", token);
    this.advance();
  }
}
