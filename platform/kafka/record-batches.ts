/**
 * Kafka's record batches (message format v2, the only one Kafka 3 writes and Kafka 4 reads) read as a Fetch
 * response holds them, one record at a time, with no object per batch or per field: a record's key and value are
 * views of the response's bytes, its offset a Number. Written here because both clients decode every record of a
 * fetch into objects (offsets and timestamps as texts or BigInts, a decoder object per record) before the first
 * is handed over, which was a third of the cold tier's CPU with the collector's share of it.
 *
 * Batch layout (bytes from the batch's start): baseOffset int64 @0, batchLength int32 @8, partitionLeaderEpoch @12,
 * magic int8 @16, crc @17, attributes int16 @21 (bits 0-2 compression, 4 transactional, 5 control), lastOffsetDelta
 * int32 @23, baseTimestamp int64 @27, maxTimestamp @35, producerId int64 @43, producerEpoch @51, baseSequence @53,
 * record count int32 @57, records @61. A record: length, attributes int8, timestampDelta, offsetDelta, key length
 * and key, value length and value, header count, then per header its name's length and name, value's length and
 * value; every length and delta a zigzag varint, -1 for null.
 *
 * Compressed batches are inflated with @platformatic/kafka's codecs. Transactional batches of aborted transactions
 * are passed over as a read_committed consumer does (the response's aborted transactions, closed by their control
 * batches); control batches themselves carry no record.
 */
import { compressionsAlgorithmsByBitmask } from '@platformatic/kafka';

/**
 * One record, valid for the handler's call only (one object serves every record of a read): key and value are
 * views of the fetch's bytes.
 */
export interface BatchRecord {
  readonly key: Buffer | null;
  readonly value: Buffer | null;
  /** header values by name; a name that repeats gets the list of its values, as kafkajs hands them */
  readonly headers: Record<string, Buffer | Buffer[]> | undefined;
  /** milliseconds since the epoch, as text (as kafkajs hands it) */
  readonly timestamp: string;
}

/** The record handed: its key and timestamp made only when asked (most records a reader passes over never are). */
class RecordView implements BatchRecord {
  value: Buffer | null = null;
  headers: Record<string, Buffer | Buffer[]> | undefined = undefined;
  buf: Buffer = EMPTY;
  keyStart = 0;
  /** -1: no key */
  keyEnd = -1;
  time = 0;
  get key(): Buffer | null {
    return this.keyEnd < 0 ? null : this.buf.subarray(this.keyStart, this.keyEnd);
  }
  get timestamp(): string {
    return String(this.time);
  }
}

const EMPTY = Buffer.alloc(0);

/** header names seen, kept as texts: records of a topic carry the same few, so no text is made per header */
const names: { bytes: Buffer; name: string }[] = [];
const MAX_NAMES = 32;

function nameAt(buf: Buffer, start: number, length: number): string {
  for (const n of names) {
    if (n.bytes.length !== length) continue;
    let i = 0;
    while (i < length && n.bytes[i] === buf[start + i]) i++;
    if (i === length) return n.name;
  }
  const name = buf.toString('utf8', start, start + length);
  if (names.length < MAX_NAMES) names.push({ bytes: Buffer.from(buf.subarray(start, start + length)), name });
  return name;
}

/** An aborted transaction of the response: its producer's batches from `firstOffset` on are not read. */
export interface AbortedTransaction {
  producerId: bigint;
  firstOffset: number;
}

export class CorruptBatchError extends Error {
  constructor(what: string) {
    super(`a record batch from the broker is corrupt: ${what}`);
  }
}

const HEAD = 61;
const COMPRESSION = 0x07;
const TRANSACTIONAL = 0x10;
const CONTROL = 0x20;
const TWO_32 = 4294967296;

/** the read position of the varint readers below (one module-wide cursor: no tuple per read) */
let at = 0;

/** A zigzag varint (up to 2^53 exact), read at `at`. */
function varint(buf: Buffer, end: number): number {
  let u = 0;
  let scale = 1;
  for (;;) {
    if (at >= end) throw new CorruptBatchError('a record runs past its batch');
    const b = buf[at++]!;
    u += (b & 0x7f) * scale;
    if (b < 0x80) break;
    scale *= 128;
  }
  return u % 2 === 1 ? -(u + 1) / 2 : u / 2;
}

function int64(buf: Buffer, p: number): number {
  return buf.readInt32BE(p) * TWO_32 + buf.readUInt32BE(p + 4);
}

/** The offset after the last complete batch of `bytes` from `start` on, or -1 when it holds none. */
export function offsetAfter(bytes: Buffer, start = 0): number {
  let next = -1;
  for (let p = start; p + HEAD <= bytes.length; ) {
    const end = p + 12 + bytes.readInt32BE(p + 8);
    if (end > bytes.length) break;
    next = int64(bytes, p) + bytes.readInt32BE(p + 23) + 1;
    p = end;
  }
  return next;
}

export interface ReadOutcome {
  /** the offset after the last complete batch read (or passed over), -1 when there was none */
  next: number;
  /** where the first batch holding a record past `to` starts in `bytes`, -1 when no batch read does */
  past: number;
}

/**
 * Hands each record of `bytes` (a partition's record batches) whose offset is in [from, to], in offset order, to
 * `onRecord`; stops at the first batch that holds a record past `to`, or at a batch cut short by the fetch's size.
 * `aborted` lists the response's aborted transactions (null or empty: none).
 */
export function readBatches(
  bytes: Buffer,
  from: number,
  to: number,
  aborted: readonly AbortedTransaction[] | null,
  onRecord: (record: BatchRecord, offset: number) => void,
): ReadOutcome {
  let next = -1;
  const view = new RecordView();
  // producers whose transaction, open at this point of the log, was aborted (read_committed)
  const pending = aborted && aborted.length > 0 ? [...aborted].sort((a, b) => a.firstOffset - b.firstOffset) : null;
  const abortedNow = pending ? new Set<bigint>() : null;
  let p = 0;
  while (p + HEAD <= bytes.length) {
    const batchEnd = p + 12 + bytes.readInt32BE(p + 8);
    if (batchEnd > bytes.length) break; // cut short by the fetch's size: the next fetch starts at it
    const base = int64(bytes, p);
    const last = base + bytes.readInt32BE(p + 23);
    if (bytes[p + 16] !== 2) throw new CorruptBatchError(`message format ${bytes[p + 16]} (only format 2 is read)`);
    if (base > to) return { next, past: p };
    const attributes = bytes.readInt16BE(p + 21);
    let skip = last < from;
    if (pending && abortedNow) {
      while (pending.length > 0 && pending[0]!.firstOffset <= last) abortedNow.add(pending.shift()!.producerId);
      if (abortedNow.size > 0 && attributes & TRANSACTIONAL) {
        const producer = bytes.readBigInt64BE(p + 43);
        if (attributes & CONTROL) abortedNow.delete(producer); // the transaction's end marker
        else if (abortedNow.has(producer)) skip = true;
      }
    }
    if (!skip && !(attributes & CONTROL)) {
      const count = bytes.readInt32BE(p + 57);
      const baseTime = int64(bytes, p + 27);
      let buf = bytes;
      let end = batchEnd;
      at = p + HEAD;
      const codec = attributes & COMPRESSION;
      if (codec !== 0) {
        const algorithm = compressionsAlgorithmsByBitmask[codec];
        if (!algorithm) throw new CorruptBatchError(`compression ${codec} is unknown`);
        buf = algorithm.decompressSync(bytes.subarray(p + HEAD, batchEnd));
        at = 0;
        end = buf.length;
      }
      for (let i = 0; i < count; i++) {
        const length = varint(buf, end);
        const recordEnd = at + length;
        if (length < 0 || recordEnd > end) throw new CorruptBatchError('a record runs past its batch');
        at++; // attributes
        const timeDelta = varint(buf, recordEnd);
        const offset = base + varint(buf, recordEnd);
        if (offset < from || offset > to) {
          at = recordEnd;
          continue;
        }
        const keyLength = varint(buf, recordEnd);
        view.buf = buf;
        view.keyStart = at;
        view.keyEnd = keyLength < 0 ? -1 : (at += keyLength);
        const valueLength = varint(buf, recordEnd);
        const value = valueLength < 0 ? null : buf.subarray(at, (at += valueLength));
        const headerCount = varint(buf, recordEnd);
        let headers: Record<string, Buffer | Buffer[]> | undefined;
        if (headerCount > 0) {
          headers = {};
          for (let h = 0; h < headerCount; h++) {
            const nameLength = varint(buf, recordEnd);
            const name = nameAt(buf, at, nameLength);
            at += nameLength;
            const hLength = varint(buf, recordEnd);
            const hValue = hLength < 0 ? Buffer.alloc(0) : buf.subarray(at, (at += hLength));
            const had = headers[name];
            // a name repeated n times costs n steps, not n^2: the record's producer chooses n
            if (had === undefined) headers[name] = hValue;
            else if (Array.isArray(had)) had.push(hValue);
            else headers[name] = [had, hValue];
          }
        }
        if (at > recordEnd) throw new CorruptBatchError('a record runs past its length');
        at = recordEnd;
        view.value = value;
        view.headers = headers;
        view.time = baseTime + timeDelta;
        onRecord(view, offset);
      }
      if (last > to) return { next: last + 1, past: p };
    }
    next = last + 1;
    p = batchEnd;
  }
  return { next, past: -1 };
}
