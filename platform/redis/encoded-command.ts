/**
 * A command written into one Buffer here rather than by ioredis. ioredis writes a command of string arguments by
 * concatenating them into one string, which the socket then flattens and encodes to UTF-8, and one with Buffer
 * arguments by measuring and writing every piece on its own. The append script's calls carry a source batch's
 * events, about a kilobyte each and mostly the records' own bytes, and either way cost the route more than its own
 * work per event. Here each argument is measured once and the command written into one buffer: short ASCII
 * strings byte by byte, other strings with one write each, Buffers copied as they are.
 */
import { Command } from 'ioredis';

/** Strings up to this long are checked for ASCII and written byte by byte; longer ones by Buffer's own encoder. */
const SHORT = 64;
const CR = 0x0d;
const LF = 0x0a;

function byteLengthOf(s: string): number {
  const n = s.length;
  if (n > SHORT) return Buffer.byteLength(s, 'utf8');
  for (let i = 0; i < n; i++) if (s.charCodeAt(i) > 0x7f) return Buffer.byteLength(s, 'utf8');
  return n;
}

function digitsOf(n: number): number {
  let d = 1;
  for (let v = n; v >= 10; v = Math.floor(v / 10)) d++;
  return d;
}

/** `<marker><n>\r\n` at `at`; the offset after it. */
function writeHeader(out: Buffer, at: number, marker: number, n: number): number {
  out[at++] = marker;
  const d = digitsOf(n);
  for (let i = d - 1, v = n; i >= 0; i--, v = Math.floor(v / 10)) out[at + i] = 0x30 + (v % 10);
  at += d;
  out[at++] = CR;
  out[at++] = LF;
  return at;
}

function writeBulk(out: Buffer, at: number, arg: string | Buffer, length: number): number {
  at = writeHeader(out, at, 0x24, length);
  if (typeof arg !== 'string') out.set(arg, at);
  else if (length === arg.length && length <= SHORT) for (let i = 0; i < length; i++) out[at + i] = arg.charCodeAt(i);
  else out.write(arg, at, length, 'utf8');
  at += length;
  out[at++] = CR;
  out[at++] = LF;
  return at;
}

/** The RESP encoding of `name` and `args`: an array of bulk strings. */
export function encodeCommand(name: string, args: readonly (string | Buffer)[]): Buffer {
  const n = args.length;
  const lengths = new Array<number>(n);
  const nameLength = byteLengthOf(name);
  let size = 3 + digitsOf(n + 1) + 5 + digitsOf(nameLength) + nameLength;
  for (let i = 0; i < n; i++) {
    const arg = args[i]!;
    const length = typeof arg === 'string' ? byteLengthOf(arg) : arg.length;
    lengths[i] = length;
    size += 5 + digitsOf(length) + length;
  }
  const out = Buffer.allocUnsafe(size);
  let at = writeHeader(out, 0, 0x2a, n + 1);
  at = writeBulk(out, at, name, nameLength);
  for (let i = 0; i < n; i++) at = writeBulk(out, at, args[i]!, lengths[i]!);
  return out;
}

/** An ioredis command (timeouts, queueing while reconnecting, Cluster slots from its keys) written by encodeCommand. */
export class EncodedCommand extends Command {
  private encoded: Buffer | undefined;

  constructor(name: string, args: (string | Buffer)[]) {
    // the arguments as they are: ioredis would copy them (flat) and has no keys to prefix here
    super(name, []);
    this.args = args;
  }

  override toWritable(): Buffer {
    this.encoded ??= encodeCommand(this.name, this.args as (string | Buffer)[]);
    return this.encoded;
  }
}
