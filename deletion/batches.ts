// Deleting in bounded batches: the one piece of code that removes stored records, used by the
// retention run (worker/processors/retention.ts), by `session delete` / `workspace purge` (the CLI
// and the admin panel: deletion/erase.ts) and by a worker that finds it stored a record of a
// deleted session (deletion/tombstones.ts).
//
// Why batches, and in this order: documents are read and deleted a batch at a time (a cursor held
// open through a long run can time out, and one huge deleteMany holds the database), and each batch
// removes the objects first and the documents that name them after. A run killed at any point
// leaves documents that the next run finds again (deleting an object that is already gone
// succeeds), so repeated or concurrent runs converge and never orphan an object that no document
// names. Objects that no document names (staged uploads, a copy whose document never got in) are
// removed by prefix, listed a batch at a time.
import type { Client as S3Client } from 'minio'
import type { Collection, Document, Filter } from 'mongodb'
import { AppError } from '../shared/errors.ts'
import type { COLLECTIONS } from '../shared/mongo.ts'

/** The collections that hold a session's records. */
export type RecordCollection = (typeof COLLECTIONS)['sessions' | 'conflicts' | 'logs' | 'logBatches' | 'media']

/** An object delete that storage refused (e.g. AccessDenied): the run fails, and running it again retries. */
export class ObjectDeleteError extends AppError {
  readonly code = 'object_delete_failed'
}

/** The deleter ran out of its budget; callers that set one catch it and stop there. */
export class BudgetSpent extends AppError {
  readonly code = 'budget_spent'
}

export interface BatchDeleterOptions {
  s3: S3Client
  batchSize: number
  /** At most this many documents in all (the retention run's per-run budget); default: no limit. */
  budget?: number
  /** Runs before every batch: the retention run stops here when its worker shuts down. */
  beforeBatch?: () => void
  /** Called after each batch of documents, and of objects (metrics). */
  onDocuments?: (collection: string, n: number) => void
  onObjects?: (objects: number, bytes: number) => void
}

export interface DeletionCounts {
  /** Documents deleted per collection. */
  removed: Record<RecordCollection, number>
  objects: number
  bytes: number
}

export const emptyCounts = (): DeletionCounts => ({
  removed: {
    test_sessions: 0,
    test_session_conflicts: 0,
    test_session_logs: 0,
    test_session_log_batches: 0,
    test_session_media: 0,
  },
  objects: 0,
  bytes: 0,
})

/** A batch deleter: its budget, its counts, and the three batch steps. */
export class BatchDeleter {
  private left: number
  private readonly counts = emptyCounts()

  constructor(private readonly opts: BatchDeleterOptions) {
    this.left = opts.budget ?? Infinity
  }

  /** Documents the next query may return: a batch, or what is left of the budget. */
  batchLimit(): number {
    this.opts.beforeBatch?.()
    if (this.left <= 0) throw new BudgetSpent('deletion budget spent')
    return Math.min(this.opts.batchSize, this.left)
  }

  budgetLeft(): number {
    return Math.max(0, this.left)
  }

  /** Deletes every document matching `filter`, a batch at a time, with the objects they name when `withObjects`. */
  async deleteAll(collection: Collection, filter: Filter<Document>, withObjects = false): Promise<void> {
    if (!withObjects) return this.deleteRanges(collection, filter)
    for (;;) {
      const batch = await collection
        .find(filter, { projection: { _id: 1, bucket: 1, key: 1, size: 1 } })
        .limit(this.batchLimit())
        .toArray()
      if (batch.length === 0) return
      await this.removeNamedObjects(batch)
      await this.deleteIds(collection, batch)
    }
  }

  /**
   * Documents that name no object, a batch at a time, as an _id range of the filter's matches:
   * FerretDB evaluates a 500-id `$in` against every document of the collection (a purge of 10k
   * sessions spent minutes per batch of log entries), a range costs two comparisons, and MongoDB
   * serves both from the _id index. A matching document inserted into the range meanwhile goes
   * too, which is what the filter asks for.
   */
  private async deleteRanges(collection: Collection, filter: Filter<Document>): Promise<void> {
    for (;;) {
      const batch = await collection
        .find(filter, { projection: { _id: 1 } })
        .sort({ _id: 1 })
        .limit(this.batchLimit())
        .toArray()
      if (batch.length === 0) return
      const range = { $gte: batch[0]!._id, $lte: batch[batch.length - 1]!._id }
      const res = await collection.deleteMany({ ...filter, _id: range })
      this.counted(collection, batch.length, res.deletedCount)
    }
  }

  async deleteIds(collection: Collection, docs: Document[]): Promise<void> {
    if (docs.length === 0) return
    const res = await collection.deleteMany({ _id: { $in: docs.map((d) => d._id) } })
    this.counted(collection, docs.length, res.deletedCount)
  }

  /** `deleted` is what this deleter deleted (a concurrent one may have taken some first); the budget counts what it read. */
  private counted(collection: Collection, read: number, deleted: number): void {
    this.left -= read
    this.counts.removed[collection.collectionName as RecordCollection] += deleted
    this.opts.onDocuments?.(collection.collectionName, deleted)
  }

  /** Removes every object under `prefix`, a listed batch at a time (objects are not documents: no budget). */
  async deletePrefix(bucket: string, prefix: string): Promise<void> {
    for (;;) {
      this.opts.beforeBatch?.()
      const batch = await listBatch(this.opts.s3, bucket, prefix, this.opts.batchSize)
      if (batch.length === 0) return
      await this.removeObjects(bucket, batch)
    }
  }

  /** Removes the documents' objects (grouped by bucket); an object already gone counts as removed. */
  private async removeNamedObjects(docs: Document[]): Promise<void> {
    const byBucket = new Map<string, { key: string; size: number }[]>()
    for (const d of docs) {
      if (typeof d.bucket !== 'string' || typeof d.key !== 'string') continue
      const size = typeof d.size === 'number' ? d.size : 0
      byBucket.set(d.bucket, [...(byBucket.get(d.bucket) ?? []), { key: d.key, size }])
    }
    for (const [bucket, list] of byBucket) await this.removeObjects(bucket, list)
  }

  private async removeObjects(bucket: string, list: { key: string; size: number }[]): Promise<void> {
    const results = await this.opts.s3.removeObjects(
      bucket,
      list.map((o) => o.key),
    )
    // Quiet mode: the answer lists only the keys that failed (the client's type says { Error },
    // its parser returns the Error elements themselves; both are read).
    const failed = results
      .map((r) => ((r as { Error?: unknown } | null)?.Error ?? r) as { Code?: string; Key?: string } | null | undefined)
      .filter((e) => e?.Code && e.Code !== 'NoSuchKey')
    if (failed.length > 0) {
      // The documents stay, so running again tries these objects again.
      throw new ObjectDeleteError(`could not delete ${failed.length} object(s) in ${bucket}: ${failed[0]!.Code} (${failed[0]!.Key})`)
    }
    const bytes = list.reduce((sum, o) => sum + o.size, 0)
    this.counts.objects += list.length
    this.counts.bytes += bytes
    this.opts.onObjects?.(list.length, bytes)
  }

  result(): DeletionCounts {
    return { removed: { ...this.counts.removed }, objects: this.counts.objects, bytes: this.counts.bytes }
  }
}

/** Up to `max` objects under `prefix` (keys and sizes). */
function listBatch(s3: S3Client, bucket: string, prefix: string, max: number): Promise<{ key: string; size: number }[]> {
  return new Promise((resolve, reject) => {
    const out: { key: string; size: number }[] = []
    const stream = s3.listObjectsV2(bucket, prefix, true)
    let done = false
    const finish = () => {
      if (done) return
      done = true
      stream.destroy()
      resolve(out)
    }
    stream.on('data', (o: { name?: string; size?: number }) => {
      if (done || !o.name) return
      out.push({ key: o.name, size: o.size ?? 0 })
      if (out.length >= max) finish()
    })
    stream.once('error', (err) => {
      if (!done) {
        done = true
        reject(err)
      }
    })
    stream.once('end', finish)
  })
}
