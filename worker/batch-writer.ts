// Micro-batching of inserts. FerretDB on SQLite does ~1,400 single insertOne/s but ~10,000
// docs/s in insertMany batches (docs/architecture.md §8), so concurrent jobs' inserts are coalesced into
// one unordered insertMany. Each caller still gets its own answer, and only once the server has
// acknowledged the batch: a job never completes before its write is durable.
import { BSON, MongoBulkWriteError, type Collection, type Document } from 'mongodb'
import { DUPLICATE_KEY } from '../shared/mongo.ts'
import { DocumentRejectedError, isServerUnreachable } from './mongo-errors.ts'

export type InsertOutcome = 'inserted' | 'duplicate'

export interface BatchWriterOptions {
  /** Flush as soon as this many documents are waiting. */
  maxItems?: number
  /** Flush at most this long after the first document of a batch arrived. */
  maxWaitMs?: number
  /** Documents larger than this are refused before they can fail a whole batch (BSON limit is 16 MiB). */
  maxDocumentBytes?: number
  /** Flush early once the waiting documents add up to this many bytes. */
  maxBatchBytes?: number
  /**
   * At most this many insertMany calls in flight. While they are, new documents wait and go out
   * together as soon as one returns (group commit): under load batches grow by themselves (the
   * 100k-session bench drain: 25 -> 80 documents per call) instead of piling up as many small
   * concurrent calls that a server writing one batch at a time (FerretDB on SQLite) only queues.
   * Idle, a document still leaves after maxWaitMs.
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
  resolve: (outcome: InsertOutcome) => void
  reject: (err: unknown) => void
}

export const DEFAULT_MAX_DOCUMENT_BYTES = 15 * 1024 * 1024

export function createBatchWriter(collection: Collection, opts: BatchWriterOptions = {}): BatchWriter {
  const maxItems = opts.maxItems ?? 100
  const maxWaitMs = opts.maxWaitMs ?? 5
  const maxDocumentBytes = opts.maxDocumentBytes ?? DEFAULT_MAX_DOCUMENT_BYTES
  const maxBatchBytes = opts.maxBatchBytes ?? 16 * 1024 * 1024
  const maxInFlight = opts.maxInFlight ?? 2
  const pending: Pending[] = []
  let pendingBytes = 0
  let timer: NodeJS.Timeout | null = null
  const inFlight = new Set<Promise<void>>()
  const stats = { batches: 0, documents: 0, isolatedRetries: 0 }
  let closed = false

  /** The oldest waiting documents, within maxItems and maxBatchBytes (always at least one). */
  function take(): Pending[] {
    let n = 0
    let bytes = 0
    while (n < pending.length && n < maxItems && (n === 0 || bytes + pending[n]!.size <= maxBatchBytes)) bytes += pending[n++]!.size
    pendingBytes -= bytes
    return pending.splice(0, n)
  }

  /** Sends waiting documents while a slot is free (every slot too, when forced: flush, close). */
  function flushNow(force = false): void {
    if (timer) {
      clearTimeout(timer)
      timer = null
    }
    while (pending.length > 0 && (force || inFlight.size < maxInFlight)) {
      const p: Promise<void> = write(take()).finally(() => {
        inFlight.delete(p)
        // What arrived while this batch was being written goes now, however few.
        if (pending.length > 0) flushNow()
      })
      inFlight.add(p)
    }
  }

  async function write(batch: Pending[]): Promise<void> {
    stats.batches++
    stats.documents += batch.length
    const started = performance.now()
    try {
      await collection.insertMany(
        batch.map((p) => p.doc),
        { ordered: false },
      )
      opts.onBatch?.(batch.length, (performance.now() - started) / 1000)
      for (const p of batch) p.resolve('inserted')
      return
    } catch (err) {
      opts.onBatch?.(batch.length, (performance.now() - started) / 1000)
      if (err instanceof MongoBulkWriteError && settlePerDocument(batch, err)) return
      if (batch.length > 1 && !isServerUnreachable(err)) {
        // The batch failed as a whole (a client-side serialisation error, a dropped connection).
        // Retry each document on its own so that one bad document cannot fail its neighbours;
        // documents that did get in come back as duplicates, which callers already treat as done.
        stats.isolatedRetries++
        await Promise.all(batch.map((p) => write([p])))
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

  return {
    stats,
    insert(doc) {
      if (closed) return Promise.reject(new Error('batch writer closed: the worker is shutting down'))
      let size: number
      try {
        size = BSON.calculateObjectSize(doc)
      } catch (err) {
        return Promise.reject(new DocumentRejectedError(`document cannot be serialised: ${(err as Error).message.slice(0, 200)}`))
      }
      if (size > maxDocumentBytes) {
        return Promise.reject(new DocumentRejectedError(`document is ${size} bytes, over the ${maxDocumentBytes}-byte limit`, 10334))
      }
      return new Promise<InsertOutcome>((resolve, reject) => {
        pending.push({ doc, size, resolve, reject })
        pendingBytes += size
        if (pending.length >= maxItems || pendingBytes >= maxBatchBytes) flushNow()
        else if (!timer) timer = setTimeout(flushNow, maxWaitMs)
      })
    },
    async flush() {
      flushNow(true)
      // Only what is in flight now: a job still running may keep adding batches, and waiting
      // for those could take as long as the job itself.
      await Promise.allSettled([...inFlight])
    },
    async close() {
      closed = true
      await this.flush()
    },
  }
}
