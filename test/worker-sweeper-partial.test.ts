// The upload sweeper and partial uploads. When a photo's PUT to S3 is cut mid-body (the phone
// lost its network, the gateway was stopped or killed), some S3 servers keep the bytes that
// arrived: the local stack's Versity gateway does (a PUT of 400 kB cut after 100 kB left a
// 100 kB object). Such an
// object was never acknowledged, and the device retries the photo. The sweeper used to "finish"
// it: a truncated photo was stored, and the device's own retry then got 409, so the real photo
// was lost (found by faults/shutdown.faults.ts). The gateway now records the length the object
// must have (metadata `size`), and the sweeper discards an object of any other length (with its
// pending/ marker), under the current layout and for objects staged by the earlier one.
import t from 'tap'
import { jobIds, objectKeys } from '../shared/keys.ts'
import { randomId, stageMedia, startTestWorker, uploadMedia } from './helpers/worker-harness.ts'

const stack = await startTestWorker(t, { STAGING_GRACE_MS: '0' })
const bucket = stack.config.s3.bucket
const media = stack.db.collection('test_session_media')
const jpeg = (n: number) => Buffer.concat([Buffer.from([0xff, 0xd8, 0xff, 0xe0, 0x00, 0x10]), Buffer.from('JFIF\0'), Buffer.alloc(n, 7)])

const exists = (key: string) =>
  stack.s3.statObject(bucket, key).then(
    () => true,
    () => false,
  )

for (const layout of ['upload', 'staged (earlier layout)'] as const) {
  t.test(`the sweeper discards a partial upload and finishes a complete one: ${layout}`, async (t) => {
    const put = layout === 'upload' ? uploadMedia : stageMedia
    const ws = randomId('w')
    // Partial: 30 kB arrived of the 100 kB the gateway declared.
    const partial = await put(stack, { ws, session: 's1', media: 'cropped', bytes: jpeg(30_000), metadata: { size: '100000' } })
    // Complete: its length is the declared one.
    const bytes = jpeg(50_000)
    const complete = await put(stack, { ws, session: 's1', media: 'raw', bytes })

    await stack.app.sweeper!.sweepOnce()

    t.notOk(await exists(partial.staging_key), 'the partial object is removed')
    if (layout === 'upload') t.notOk(await exists(objectKeys.pendingOf(partial.staging_key)!), 'and its marker')
    t.equal(
      await stack.queues.media.getJob(jobIds.media(ws, 's1', 'cropped')),
      undefined,
      'no job for it: the device retry is not answered 409',
    )
    t.ok(
      stack.lines.some((l) => /is a partial upload; discarded$/.test(l.msg) && l.key === partial.staging_key),
      'logged for operators',
    )

    const { state } = await stack.settled('media', jobIds.media(ws, 's1', 'raw'))
    t.equal(state, 'completed', 'the complete orphan was enqueued and processed')
    const doc = await media.findOne({ workspace_id: ws, media_id: 'raw' })
    t.equal(doc?.size, bytes.length)
    t.equal(doc?.sha256, complete.sha256)
    t.equal(await media.countDocuments({ workspace_id: ws, media_id: 'cropped' }), 0, 'no truncated photo stored')
  })
}
