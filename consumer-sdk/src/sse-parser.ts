/**
 * An incremental parser for the Server-Sent Events wire format (WHATWG HTML, "event stream interpretation"):
 * lines end in LF, CR or CRLF (a CR at the end of one chunk and an LF at the start of the next are one line
 * end), a leading BOM is ignored, `:` starts a comment, fields are `event`, `data`, `id` and `retry`, and a
 * blank line dispatches the message. Feed it decoded text in whatever pieces the network delivers.
 */
export interface SseMessage {
  /** the event type (`message` when the server sent none) */
  event: string;
  data: string;
  /** the last event id seen on the stream so far (the spec's "last event ID buffer") */
  id: string | undefined;
}

export interface SseParserCallbacks {
  onMessage(message: SseMessage): void;
  onComment?(text: string): void;
  onRetry?(ms: number): void;
}

export class SseParser {
  private buffer = '';
  private started = false;
  private skipLf = false;
  private eventType = '';
  private data: string[] = [];
  private lastId: string | undefined;

  constructor(private readonly callbacks: SseParserCallbacks) {}

  push(text: string): void {
    if (!this.started && text.length > 0) {
      this.started = true;
      if (text.charCodeAt(0) === 0xfeff) text = text.slice(1);
    }
    let chunk = this.buffer + text;
    let pos = 0;
    if (this.skipLf && chunk.charCodeAt(0) === 10) pos = 1;
    this.skipLf = false;
    for (;;) {
      let end = -1;
      for (let i = pos; i < chunk.length; i++) {
        const c = chunk.charCodeAt(i);
        if (c === 10 || c === 13) {
          end = i;
          break;
        }
      }
      if (end < 0) break;
      const line = chunk.slice(pos, end);
      if (chunk.charCodeAt(end) === 13) {
        if (end + 1 < chunk.length) pos = chunk.charCodeAt(end + 1) === 10 ? end + 2 : end + 1;
        else {
          pos = end + 1;
          this.skipLf = true;
        }
      } else pos = end + 1;
      this.line(line);
    }
    this.buffer = chunk.slice(pos);
    chunk = '';
  }

  private line(line: string): void {
    if (line === '') return this.dispatch();
    if (line.charCodeAt(0) === 58 /* : */) {
      this.callbacks.onComment?.(line.slice(1).replace(/^ /, ''));
      return;
    }
    const colon = line.indexOf(':');
    const field = colon < 0 ? line : line.slice(0, colon);
    let value = colon < 0 ? '' : line.slice(colon + 1);
    if (value.charCodeAt(0) === 32) value = value.slice(1);
    switch (field) {
      case 'event':
        this.eventType = value;
        break;
      case 'data':
        this.data.push(value);
        break;
      case 'id':
        if (!value.includes('\0')) this.lastId = value;
        break;
      case 'retry':
        if (/^\d+$/.test(value)) this.callbacks.onRetry?.(Number(value));
        break;
      default:
        break; // unknown fields are ignored
    }
  }

  private dispatch(): void {
    const type = this.eventType;
    const data = this.data;
    this.eventType = '';
    this.data = [];
    if (data.length === 0) return;
    this.callbacks.onMessage({ event: type || 'message', data: data.join('\n'), id: this.lastId });
  }
}
