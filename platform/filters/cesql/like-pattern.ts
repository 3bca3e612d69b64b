/**
 * Compiles a LIKE pattern (spec 3.4.3) into a predicate, once, when the expression is compiled.
 *
 * `%` matches any run of characters (also none), `_` exactly one character (a Unicode code point),
 * `\%` and `\_` match the wildcard characters themselves; any other character, a backslash before
 * anything else included, matches itself, case-sensitively. Patterns without `_` and with `%` only at
 * the ends become `===`, `startsWith`, `endsWith` or `includes`; the rest become an anchored RegExp.
 */
export function compileLikePattern(pattern: string): (value: string) => boolean {
  type Part = { kind: 'text'; text: string } | { kind: 'any' } | { kind: 'one' };
  const parts: Part[] = [];
  let text = '';
  const flush = (): void => {
    if (text !== '') parts.push({ kind: 'text', text });
    text = '';
  };
  for (let i = 0; i < pattern.length; i++) {
    const c = pattern.charAt(i);
    const next = pattern.charAt(i + 1);
    if (c === '\\' && (next === '%' || next === '_')) {
      text += next;
      i++;
    } else if (c === '%') {
      flush();
      const last = parts[parts.length - 1];
      if (last === undefined || last.kind !== 'any') parts.push({ kind: 'any' });
    } else if (c === '_') {
      flush();
      parts.push({ kind: 'one' });
    } else {
      text += c;
    }
  }
  flush();

  const shape = parts.map((p) => (p.kind === 'text' ? 't' : p.kind === 'any' ? '%' : '_')).join('');
  const literal = (index: number): string => {
    const part = parts[index];
    return part !== undefined && part.kind === 'text' ? part.text : '';
  };
  switch (shape) {
    case '':
      return (value) => value === '';
    case 't': {
      const exact = literal(0);
      return (value) => value === exact;
    }
    case '%':
      return () => true;
    case 't%': {
      const prefix = literal(0);
      return (value) => value.startsWith(prefix);
    }
    case '%t': {
      const suffix = literal(1);
      return (value) => value.endsWith(suffix);
    }
    case '%t%': {
      const infix = literal(1);
      return (value) => value.includes(infix);
    }
    case 't%t': {
      const prefix = literal(0);
      const suffix = literal(2);
      const min = prefix.length + suffix.length;
      return (value) => value.length >= min && value.startsWith(prefix) && value.endsWith(suffix);
    }
  }
  const source = parts
    .map((p) => (p.kind === 'text' ? p.text.replace(/[\\^$.*+?()[\]{}|/]/g, '\\$&') : p.kind === 'any' ? '.*' : '.'))
    .join('');
  const regexp = new RegExp(`^${source}$`, 'su');
  return (value) => regexp.test(value);
}
