// Micro-batching of inserts. FerretDB on SQLite does ~1,400 single insertOne/s but ~10,000
// docs/s in insertMany batches (docs/architecture.md §8), so concurrent jobs' inserts are coalesced into
// one unordered insertMany. Each caller still gets its own answer, and only once the server has
// acknowledged the batch: a job never completes before its write is durable.
import { BSON, MongoBulkWriteError, type Collection, type Document } from 'mongodb'
import { AppError } from '../shared/errors.ts'
import { DUPLICATE_KEY } from '../shared/mongo.ts'
import { DocumentRejectedError, isServerUnreachable } from './mongo-errors.ts'

export type InsertOutcome = 'inserted' | 'duplicate'

export interface BatchWriterOptions {
  /** Flush as soon as this many documents are waiting. */
  maxItems?: number
  /**
   * A batch that is not full leaves once its oldest document has waited this long (and a slot is
   * free), also when a write returns. It is the knob for a
   * database where each call costs more than its documents (a round trip over a network). On
   * the local FerretDB, 50 ms gave batches 3x as large but no less CPU per document, and 45 ms
   * more latency (bench/README.md, T2a), so the default stays short. Idle, a lone document
   * waits exactly this long.
   */
  maxWaitMs?: number
  /** Documents larger than this are refused before they can fail a whole batch (BSON limit is 16 MiB). */
  maxDocumentBytes?: number
  /** Flush early once the waiting documents add up to this many bytes. */
  maxBatchBytes?: number
  /**
   * At most this many insertMany calls in flight. While they are, new documents wait and go out
   * together when one returns (group commit): under load batches grow by themselves (the
   * 100k-session bench drain: 25 -> 80 documents per call) instead of piling up as many small
   * concurrent calls that a server writing one batch at a time (FerretDB on SQLite) only queues.
   */
  maxInFlight?: number
  /** Called after each insertMany with its size and duration (metrics: worker/metrics.ts). */
  onBatch?: (documents: number, seconds: number) => void
}

export interface BatchWriter {
  /**
   * Resolves 'inserted' or 'duplicate' (a unique index already holds it) once acknowledged.
   * Rejects with DocumentRejectedError (or the server's per-document error) when this document
   * cannot be stored, and with the batch's error when the whole batch failed (server down).
   */
  insert(doc: Document): Promise<InsertOutcome>
  /** Sends what is waiting and waits for the batches in flight at the time of the call. */
  flush(): Promise<void>
  /** Like flush, and from now on refuses new documents (at shutdown, so late jobs fail fast). */
  close(): Promise<void>
  readonly stats: { batches: number; documents: number; isolatedRetries: number }
}

interface Pending {
  doc: Document
  size: number
  /** performance.now() when it was queued: the batch's age is its oldest document's. */
  at: number
  resolve: (outcome: InsertOutcome) => void
  reject: (err: unknown) => void
}

/** An insert after close(): the worker is shutting down, and the job runs again later. */
export class WriterClosedError extends AppError {
  readonly code = 'writer_closed'
  constructor() {
    super('batch writer closed: the worker is shutting down')
  }
}

export const DEFAULT_MAX_DOCUMENT_BYTES = 15 * 1024 * 1024

/** One writer's queue and settings; the functions below work on it. */
interface BatchState {
  collection: Collection
  maxItems: number
  maxWaitMs: number
  maxDocumentBytes: number
  maxBatchBytes: number
  maxInFlight: number
  onBatch?: (documents: number, seconds: number) => void
  pending: Pending[]
  pendingBytes: number
  timer: NodeJS.Timeout | null
  inFlight: Set<Promise<void>>
  stats: { batches: number; documents: number; isolatedRetries: number }
  closed: boolean
}

export function createBatchWriter(collection: Collection, opts: BatchWriterOptions = {}): BatchWriter {
  const state: BatchState = {
    collection,
    maxItems: opts.maxItems ?? 100,
    maxWaitMs: opts.maxWaitMs ?? 5,
    maxDocumentBytes: opts.maxDocumentBytes ?? DEFAULT_MAX_DOCUMENT_BYTES,
    maxBatchBytes: opts.maxBatchBytes ?? 16 * 1024 * 1024,
    maxInFlight: opts.maxInFlight ?? 2,
    onBatch: opts.onBatch,
    pending: [],
    pendingBytes: 0,
    timer: null,
    inFlight: new Set(),
    stats: { batches: 0, documents: 0, isolatedRetries: 0 },
    closed: false,
  }
  return {
    stats: state.stats,
    insert: (doc) => enqueue(state, doc),
    async flush() {
      flushNow(state, true)
      // Only what is in flight now: a job still running may keep adding batches, and waiting
      // for those could take as long as the job itself.
      await Promise.allSettled([...state.inFlight])
    },
    async close() {
      state.closed = true
      await this.flush()
    },
  }
}

function enqueue(state: BatchState, doc: Document): Promise<InsertOutcome> {
  if (state.closed) return Promise.reject(new WriterClosedError())
  let size: number
  try {
    size = BSON.calculateObjectSize(doc)
  } catch (err) {
    return Promise.reject(new DocumentRejectedError(`document cannot be serialised: ${(err as Error).message.slice(0, 200)}`))
  }
  if (size > state.maxDocumentBytes) {
    return Promise.reject(new DocumentRejectedError(`document is ${size} bytes, over the ${state.maxDocumentBytes}-byte limit`, 10334))
  }
  return new Promise<InsertOutcome>((resolve, reject) => {
    state.pending.push({ doc, size, at: performance.now(), resolve, reject })
    state.pendingBytes += size
    if (full(state)) flushNow(state)
    else armTimer(state)
  })
}

function full(state: BatchState): boolean {
  return state.pending.length >= state.maxItems || state.pendingBytes >= state.maxBatchBytes
}

/** A batch may leave: it is full, or its oldest document has waited maxWaitMs. */
function due(state: BatchState): boolean {
  return full(state) || performance.now() - state.pending[0]!.at >= state.maxWaitMs
}

/**
 * Wakes up when the oldest waiting document is due. Only while a slot is free: otherwise the
 * write that returns first sends what is due (flushNow runs on every completion).
 */
function armTimer(state: BatchState): void {
  if (state.timer || state.pending.length === 0 || state.inFlight.size >= state.maxInFlight) return
  const wait = Math.max(0, state.pending[0]!.at + state.maxWaitMs - performance.now())
  state.timer = setTimeout(() => {
    state.timer = null
    flushNow(state)
  }, wait)
}

/** The oldest waiting documents, within maxItems and maxBatchBytes (always at least one). */
function take(state: BatchState): Pending[] {
  const { pending } = state
  let n = 0
  let bytes = 0
  while (n < pending.length && n < state.maxItems && (n === 0 || bytes + pending[n]!.size <= state.maxBatchBytes))
    bytes += pending[n++]!.size
  state.pendingBytes -= bytes
  return pending.splice(0, n)
}

/**
 * Sends the due batches while a slot is free, then waits for the next one to be due. Forced
 * (flush, close), it sends everything waiting at once, over every slot.
 */
function flushNow(state: BatchState, force = false): void {
  if (state.timer) {
    clearTimeout(state.timer)
    state.timer = null
  }
  while (state.pending.length > 0 && (force || (state.inFlight.size < state.maxInFlight && due(state)))) {
    const p: Promise<void> = write(state, take(state)).finally(() => {
      state.inFlight.delete(p)
      flushNow(state)
    })
    state.inFlight.add(p)
  }
  armTimer(state)
}

async function write(state: BatchState, batch: Pending[]): Promise<void> {
  state.stats.batches++
  state.stats.documents += batch.length
  const started = performance.now()
  try {
    await state.collection.insertMany(
      batch.map((p) => p.doc),
      { ordered: false },
    )
    state.onBatch?.(batch.length, (performance.now() - started) / 1000)
    for (const p of batch) p.resolve('inserted')
    return
  } catch (err) {
    state.onBatch?.(batch.length, (performance.now() - started) / 1000)
    if (err instanceof MongoBulkWriteError && settlePerDocument(batch, err)) return
    if (batch.length > 1 && !isServerUnreachable(err)) {
      // The batch failed as a whole (a client-side serialisation error, a dropped connection).
      // Retry each document on its own so that one bad document cannot fail its neighbours;
      // documents that did get in come back as duplicates, which callers already treat as done.
      state.stats.isolatedRetries++
      await Promise.all(batch.map((p) => write(state, [p])))
      return
    }
    for (const p of batch) p.reject(err)
  }
}

/** Maps a bulk error's per-document errors onto callers; false when it is not per-document. */
function settlePerDocument(batch: Pending[], err: MongoBulkWriteError): boolean {
  const list = Array.isArray(err.writeErrors) ? err.writeErrors : err.writeErrors ? [err.writeErrors] : []
  if (list.length === 0) return false
  // A write concern error means the acknowledged documents may still be rolled back: retry them.
  const wce = (err.result as { getWriteConcernError?: () => unknown } | undefined)?.getWriteConcernError?.()
  const byIndex = new Map(list.map((w) => [w.index, w]))
  batch.forEach((p, i) => {
    const w = byIndex.get(i)
    if (w?.code === DUPLICATE_KEY) p.resolve('duplicate')
    else if (w) p.reject(new DocumentRejectedError(String(w.errmsg ?? 'write error').slice(0, 300), w.code))
    else if (wce) p.reject(err)
    else p.resolve('inserted')
  })
  return true
}
