// The comparison at the heart of every scenario: what the gateway answered 201 (or 409) against
// what is stored: documents in MongoDB, and photos in S3 byte for byte. "Lost" is an accepted
// upload whose data is not stored once the system has drained; "duplicated" is any record
// stored more than once (two documents for one session id or media id, a log batch or entry
// twice, a replay recorded as a conflict).
import type { Document } from 'mongodb'
import { collections } from '../../shared/mongo.ts'
import { readObject } from '../../testing/media.ts'
import type { Cluster } from './cluster.ts'
import type { Upload } from './load.ts'

export interface Figures {
  /** Uploads (session, logs or photo), each counted once however often it was retried. */
  sent: number
  /** Final answers. */
  ok201: number
  ok409: number
  /** Answers seen along the way (each was retried). */
  answers503: number
  connErrors: number
  /** Any other status seen (400, 403, 500 …): none is expected. */
  otherStatuses: Record<string, number>
  /** Uploads whose retry bound ran out without a 201/409. */
  gaveUp: number
  /**
   * Uploads answered 201 or 409 whose data is stored: the device deletes its copy on either. A
   * 409 counts when its body is the stored one, or is kept in test_session_conflicts.
   */
  stored: number
  lost: number
  duplicated: number
  lostUploads: Upload[]
  details: string[]
  conflictsKept: number
  queues: { pending: number; active: number; failed: number }
  /**
   * Uploads not settled: pending/ markers, objects staged by the earlier layout, and uploads no
   * document names (a retried upload's copy must be removed once its job ran); ones S3 can stat
   * (or fails to), so something could still read them.
   */
  unsettledLeft: number
  /** Such keys the listing returns but S3 says do not exist (statListed). */
  unsettledPhantoms: number
}

const key = (...parts: unknown[]) => parts.map(String).join('\u0000')

function groupCount<T>(items: T[], by: (x: T) => string): Map<string, T[]> {
  const m = new Map<string, T[]>()
  for (const x of items) {
    const k = by(x)
    const list = m.get(k)
    if (list) list.push(x)
    else m.set(k, [x])
  }
  return m
}

/** One pass over the stored data. `bytes` also reads every photo back from S3 and compares it. */
export async function check(cluster: Cluster, uploads: Upload[], { bytes = true } = {}): Promise<Figures> {
  const ws = cluster.seeded.workspaceId
  const c = collections(cluster.db)
  const q = { workspace_id: ws }
  const [sessions, conflicts, batches, entries, media] = await Promise.all([
    c.sessions.find(q, { projection: { session_id: 1, raw_sha256: 1 } }).toArray(),
    c.conflicts.find(q, { projection: { session_id: 1, media_id: 1, sha256: 1, key: 1 } }).toArray(),
    c.logBatches.find(q, { projection: { session_id: 1, sha256: 1 } }).toArray(),
    c.logs.find(q, { projection: { session_id: 1, batch_sha256: 1, batch_index: 1 } }).toArray(),
    c.media.find(q, { projection: { session_id: 1, media_id: 1, sha256: 1, bucket: 1, key: 1, size: 1 } }).toArray(),
  ])
  const sessionsBy = groupCount(sessions, (d) => d.session_id)
  const conflictsBy = groupCount(conflicts, (d) => key(d.session_id, d.media_id ?? '', d.sha256))
  const batchesBy = groupCount(batches, (d) => key(d.session_id, d.sha256))
  const entriesBy = groupCount(entries, (d) => key(d.session_id, d.batch_sha256))
  const mediaBy = groupCount(media, (d) => key(d.session_id, d.media_id))

  const f: Figures = {
    sent: uploads.length,
    ok201: 0,
    ok409: 0,
    answers503: 0,
    connErrors: 0,
    otherStatuses: {},
    gaveUp: 0,
    stored: 0,
    lost: 0,
    duplicated: 0,
    lostUploads: [],
    details: [],
    conflictsKept: 0,
    queues: { pending: 0, active: 0, failed: 0 },
    unsettledLeft: 0,
    unsettledPhantoms: 0,
  }
  const lose = (u: Upload, why: string) => {
    f.lost++
    f.lostUploads.push(u)
    if (f.details.length < 10) f.details.push(`lost ${u.kind} ${u.guid}${u.mediaId ? '/' + u.mediaId : ''}: ${why}`)
  }
  const isConflict = (guid: string, mediaId: string, sha: string) => (conflictsBy.get(key(guid, mediaId, sha))?.length ?? 0) > 0

  for (const u of uploads) {
    for (const [status, n] of Object.entries(u.answers)) {
      if (status === '503') f.answers503 += n
      else if (status === 'error') f.connErrors += n
      else if (!['200', '201', '409'].includes(status)) f.otherStatuses[status] = (f.otherStatuses[status] ?? 0) + n
    }
    if (u.final === 'gave-up' || u.final === 'pending') f.gaveUp++
    if (u.final === 201) f.ok201++
    if (u.final === 409) f.ok409++
    if (u.final !== 201 && u.final !== 409) continue

    if (u.kind === 'session') {
      const docs = sessionsBy.get(u.guid) ?? []
      const same = docs.some((d) => d.raw_sha256 === u.sha256)
      if (same)
        f.stored++ // for a 409 too: the device drops what it got 409 for
      else if (u.final === 201) lose(u, docs.length ? 'another body is stored under this id' : 'no document')
      else {
        // 409 with a different body: the body must be kept in test_session_conflicts.
        if (isConflict(u.guid, '', u.sha256)) {
          f.conflictsKept++
          f.stored++
        } else lose(u, '409 but the body is in neither test_sessions nor test_session_conflicts')
      }
    } else if (u.kind === 'logs') {
      const batch = batchesBy.get(key(u.guid, u.sha256)) ?? []
      const got = new Set((entriesBy.get(key(u.guid, u.sha256)) ?? []).map((d) => d.batch_index))
      if (batch.length > 0 && got.size === u.entries) f.stored++
      else lose(u, `batch ${batch.length ? 'stored' : 'missing'}, ${got.size}/${u.entries} entries`)
    } else {
      const docs = mediaBy.get(key(u.guid, u.mediaId)) ?? []
      const doc = docs.find((d) => d.sha256 === u.sha256)
      if (!doc) {
        if (u.final === 409 && isConflict(u.guid, u.mediaId!, u.sha256)) {
          f.conflictsKept++
          f.stored++
        } else lose(u, docs.length ? 'other bytes stored under this media id, and no conflict record' : 'no document')
        continue
      }
      // A 409 for these very bytes counts too: the device drops a photo once it got 409.
      if (!bytes) {
        f.stored++
        continue
      }
      try {
        const obj = await readObject(cluster.s3, String(doc.bucket), String(doc.key))
        if (obj.equals(u.body)) f.stored++
        else lose(u, `object is ${obj.length} bytes and differs from the ${u.body.length} sent`)
      } catch (err) {
        lose(u, `object unreadable: ${(err as Error).message}`)
      }
    }
  }

  // Duplicates: anything stored more than once for one identity.
  const dup = (what: string, groups: Map<string, Document[]>) => {
    for (const [k, docs] of groups) {
      if (docs.length > 1) {
        f.duplicated += docs.length - 1
        if (f.details.length < 20) f.details.push(`duplicated ${what} ${k.replaceAll('\u0000', '/')}: ${docs.length} documents`)
      }
    }
  }
  dup('session', sessionsBy)
  dup('conflict', conflictsBy)
  dup('log batch', batchesBy)
  dup(
    'log entry',
    groupCount(entries, (d) => key(d.session_id, d.batch_sha256, d.batch_index)),
  )
  dup('media', mediaBy)
  // A replay must never be recorded as a conflict of itself.
  for (const cdoc of conflicts) {
    const original = cdoc.media_id
      ? mediaBy.get(key(cdoc.session_id, cdoc.media_id))?.[0]?.sha256
      : sessionsBy.get(cdoc.session_id)?.[0]?.raw_sha256
    if (original === cdoc.sha256) {
      f.duplicated++
      f.details.push(`duplicated: a replay of ${cdoc.session_id}${cdoc.media_id ? '/' + cdoc.media_id : ''} stored as a conflict`)
    }
  }

  const counts = await cluster.queueCounts()
  f.queues = { pending: counts.pending, active: counts.active, failed: counts.failed }
  if (bytes) {
    const named = new Set([...media, ...conflicts].map((d) => String(d.key)))
    for (const prefix of ['pending', 'staging', 'media']) {
      const stream = cluster.s3.listObjectsV2(cluster.config.s3.bucket, `${prefix}/${ws}/`, true)
      for await (const obj of stream as AsyncIterable<{ name: string; size: number }>) {
        if (prefix === 'media' && named.has(obj.name)) continue
        const seen = await statListed(cluster, obj.name)
        if (seen === 'phantom') f.unsettledPhantoms++
        else f.unsettledLeft++
        if (f.details.length < 20)
          f.details.push(`unsettled ${seen === 'phantom' ? 'listing entry (no object)' : 'object'} left: ${obj.name}, ${seen}`)
      }
    }
  }
  return f
}

/**
 * What S3 says of an unsettled key the listing returned: its stat (the sweeper's first step), or
 * 'phantom' when it answers that no such object exists. Distributed MinIO that lost a node while
 * it coordinated a DELETE can keep the object's metadata on fewer drives than a read needs but
 * more than a listing ignores: the key is listed for ever, while stat, GET and DELETE all answer
 * NotFound (reproduced directly: an object left on 3 of the 6 surviving drives). The sweeper
 * rightly skips such a key; it holds no bytes anyone can read.
 */
async function statListed(cluster: Cluster, key: string): Promise<string> {
  try {
    const stat = await cluster.s3.statObject(cluster.config.s3.bucket, key)
    return `${stat.size} bytes, metadata ${JSON.stringify(stat.metaData)}`
  } catch (err) {
    const e = err as { code?: string; message?: string }
    if (e.code === 'NotFound' || e.code === 'NoSuchKey') return 'phantom'
    return `stat failed: ${e.code ?? ''} ${e.message?.slice(0, 200) ?? ''}`
  }
}

/**
 * Gives the system time to finish what it accepted: polls until nothing accepted is missing and
 * the queues are idle (or `timeoutMs` passes), then takes the final figures with every photo
 * compared byte for byte. If uploads are still unsettled then, it waits up to `settleMs` more
 * for the sweeper, re-checking every second.
 */
export async function drain(
  cluster: Cluster,
  uploads: Upload[],
  { timeoutMs = 120_000, settleMs = 20_000 }: { timeoutMs?: number; settleMs?: number } = {},
): Promise<Figures> {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    let f: Figures | null = null
    try {
      f = await check(cluster, uploads, { bytes: false })
    } catch {
      // A service may still be coming back; keep polling until the deadline.
    }
    if (f && f.lost === 0 && f.queues.pending === 0 && f.queues.active === 0) break
    if (Date.now() > deadline) break
    await new Promise((r) => setTimeout(r, 500))
  }
  // Uploads whose job was lost are finished by the sweeper after its grace period, and partial
  // ones removed: within `settleMs` once the queues are idle.
  const f = await check(cluster, uploads)
  if (f.unsettledLeft > 0) {
    const until = Date.now() + settleMs
    while (Date.now() < until) {
      await new Promise((r) => setTimeout(r, 1000))
      const again = await check(cluster, uploads)
      if (again.unsettledLeft === 0) return again
    }
  }
  return f
}
