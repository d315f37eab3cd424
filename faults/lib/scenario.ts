// What every scenario asserts once it has drained: nothing accepted lost, nothing stored twice,
// no upload left without a final answer, no unexpected status, no job stuck or failed.
import type { Test } from 'tap'
import type { Figures } from './verify.ts'

/**
 * `phantomsAllowed`: only where a storage node dies mid-request, which can leave listed keys that
 * S3 says do not exist (verify.ts, statListed); anywhere else one is a storage bug worth failing on.
 */
export function assertIntact(t: Test, f: Figures, { lostAllowed = 0, phantomsAllowed = false } = {}): void {
  const why = f.details.join('\n')
  if (lostAllowed === 0) t.equal(f.lost, 0, `nothing accepted is lost\n${why}`)
  t.equal(f.duplicated, 0, `nothing is stored twice\n${why}`)
  t.equal(f.gaveUp, 0, 'every upload got a final answer within the retry bound')
  t.same(f.otherStatuses, {}, 'no status other than 201, 409 and 503')
  t.equal(f.queues.failed, 0, 'no job failed')
  t.equal(f.queues.pending + f.queues.active, 0, 'the queues drained')
  t.equal(f.unsettledLeft, 0, `no upload left unsettled: no marker, no partial upload, no copy of a retried upload\n${why}`)
  if (!phantomsAllowed) t.equal(f.unsettledPhantoms, 0, `no upload key listed without an object\n${why}`)
}
