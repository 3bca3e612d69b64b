/**
 * The window of recently handed-over events, by CloudEvent `source` and `id`. The platform may re-derive the
 * last second of a subscription after a Redis crash; those events come back with new cursors, and this window
 * (kept in the checkpoint) is how the consumer recognises and drops them.
 */
export function eventKey(source: string, id: string): string {
  return `${source} ${id}`;
}

export class RecentIds {
  private readonly order: string[] = [];
  private head = 0;
  private readonly set = new Set<string>();

  constructor(readonly capacity = 10_000, initial: Iterable<string> = []) {
    for (const k of initial) this.add(k);
  }

  has(key: string): boolean {
    return this.set.has(key);
  }

  add(key: string): void {
    if (this.capacity <= 0 || this.set.has(key)) return;
    this.set.add(key);
    this.order.push(key);
    while (this.set.size > this.capacity) {
      this.set.delete(this.order[this.head]!);
      this.head++;
    }
    if (this.head > 4096 && this.head * 2 > this.order.length) {
      this.order.splice(0, this.head);
      this.head = 0;
    }
  }

  get size(): number {
    return this.set.size;
  }

  /** Oldest first, as stored in the checkpoint. */
  toArray(): string[] {
    return this.order.slice(this.head);
  }
}
