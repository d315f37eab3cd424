// Lists paged by time, newest first: one page, and whether older entries follow.
import type { Db, Document, Filter } from 'mongodb'

export async function newestFirst(
  db: Db,
  collection: string,
  filter: Filter<Document>,
  opts: { field: string; size: number },
): Promise<{ rows: Document[]; more: boolean }> {
  const list = await db
    .collection(collection)
    .find(filter)
    .sort({ [opts.field]: -1 })
    .limit(opts.size + 1)
    .toArray()
  return { rows: list.slice(0, opts.size), more: list.length > opts.size }
}
