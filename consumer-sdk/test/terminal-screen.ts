/**
 * What a terminal shows for output that redraws a line in place: "\r" returns to the start of the line, ESC[2K
 * erases it, "\n" ends it. Returns the lines as a person would see them (the last one: what is still being drawn).
 */
export function screen(raw: string): string[] {
  const lines: string[] = [];
  let line = '';
  let col = 0;
  for (let i = 0; i < raw.length; i++) {
    const c = raw[i]!;
    if (raw.startsWith('\x1b[2K', i)) {
      line = '';
      i += 3;
    } else if (c === '\r') col = 0;
    else if (c === '\n') {
      lines.push(line);
      line = '';
      col = 0;
    } else {
      line = line.slice(0, col) + c + line.slice(col + 1);
      col++;
    }
  }
  lines.push(line);
  return lines;
}
