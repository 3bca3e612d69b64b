import type { BinaryOperator, CesqlNode } from './ast.ts';
import { CesqlParseError } from './errors.ts';
import { describeToken, tokenize, type Token } from './lexer.ts';

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
 *   literals, attributes, EXISTS, function invocations, ( subexpressions )
 *
 * A `-` directly before an integer literal is part of the literal (spec 2.2 `integer-literal`), which
 * is how `-2147483648` is written; so is a `+` written right against the digits.
 */
export function parseCesql(source: string): CesqlNode {
  return new Parser(tokenize(source)).parseRoot();
}

class Parser {
  private index = 0;

  constructor(private readonly tokens: Token[]) {}

  parseRoot(): CesqlNode {
    const node = this.parseLogic();
    const next = this.peek();
    if (next.kind !== 'eof') this.fail('an operator or end of input', next);
    return node;
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
      left = { type: 'binary', op: op as BinaryOperator, left, right, pos: token.pos };
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

  private parsePostfix(): CesqlNode {
    let node = this.parseUnary();
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
      if (negated) this.advance();
      this.advance();
      if (operator.kind === 'word' && operator.upper === 'LIKE') {
        const pattern = this.peek();
        if (pattern.kind !== 'string') this.fail('a string literal as LIKE pattern', pattern);
        this.advance();
        node = { type: 'like', operand: node, pattern: pattern.value, negated, pos: token.pos };
      } else {
        node = { type: 'in', operand: node, set: this.parseSet(), negated, pos: token.pos };
      }
    }
  }

  private parseSet(): CesqlNode[] {
    this.expectPunct('(');
    const set: CesqlNode[] = [this.parseLogic()];
    while (this.isPunct(this.peek(), ',')) {
      this.advance();
      set.push(this.parseLogic());
    }
    this.expectPunct(')');
    return set;
  }

  private parseUnary(): CesqlNode {
    const token = this.peek();
    if (this.isKeyword(token, 'NOT')) {
      this.advance();
      return { type: 'not', operand: this.parseUnary(), pos: token.pos };
    }
    if (this.isPunct(token, '-')) {
      this.advance();
      const next = this.peek();
      if (next.kind === 'integer') {
        this.advance();
        return { type: 'literal', value: this.integerValue(next, -1, token.pos), pos: token.pos };
      }
      return { type: 'negate', operand: this.parseUnary(), pos: token.pos };
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
        return { type: 'literal', value: this.integerValue(token, 1, token.pos), pos: token.pos };
      case 'string':
        this.advance();
        return { type: 'literal', value: token.value, pos: token.pos };
      case 'punct':
        if (token.text === '(') {
          this.advance();
          const inner = this.parseLogic();
          this.expectPunct(')');
          return inner;
        }
        if (token.text === '+') {
          const next = this.peek(1);
          if (next.kind === 'integer' && next.pos === token.end) {
            this.advance();
            this.advance();
            return { type: 'literal', value: this.integerValue(next, 1, token.pos), pos: token.pos };
          }
        }
        return this.fail('an expression', token);
      case 'word':
        return this.parseWord(token);
      case 'eof':
        return this.fail('an expression', token);
    }
  }

  private parseWord(token: Token & { kind: 'word' }): CesqlNode {
    if (token.upper === 'TRUE' || token.upper === 'FALSE') {
      this.advance();
      return { type: 'literal', value: token.upper === 'TRUE', pos: token.pos };
    }
    if (token.upper === 'EXISTS') {
      this.advance();
      const name = this.peek();
      if (name.kind !== 'word' || KEYWORDS.has(name.upper) || !VALUE_IDENTIFIER.test(name.text)) {
        this.fail('an attribute name after EXISTS', name);
      }
      this.advance();
      return { type: 'exists', name: name.text.toLowerCase(), pos: token.pos };
    }
    if (this.isPunct(this.peek(1), '(')) {
      if (!FUNCTION_IDENTIFIER.test(token.text) || KEYWORDS.has(token.upper)) this.fail('a function name', token);
      this.advance();
      this.advance();
      const args: CesqlNode[] = [];
      if (!this.isPunct(this.peek(), ')')) {
        args.push(this.parseArgument());
        while (this.isPunct(this.peek(), ',')) {
          this.advance();
          args.push(this.parseArgument());
        }
      }
      this.expectClosingParen();
      return { type: 'call', name: token.upper, args, pos: token.pos };
    }
    if (KEYWORDS.has(token.upper)) this.fail('an expression', token);
    if (!VALUE_IDENTIFIER.test(token.text)) this.fail('an attribute name (letters and digits only)', token);
    this.advance();
    return { type: 'attribute', name: token.text.toLowerCase(), pos: token.pos };
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
