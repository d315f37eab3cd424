// Storage faults: the MongoDB-compatible server, then the S3 server, stopped and restarted while
// work flows. The gateway never talks to MongoDB, so a MongoDB outage only delays the workers;
// an S3 outage refuses photo uploads with 503 and delays the media jobs. Both recover by themselves.
// Then one node of distributed MinIO killed for good: the erasure set keeps serving, and the
// uploads that were on the dead node's connections are retried.
import t from 'tap'
import { startCluster } from './lib/cluster.ts'
import { hold } from './lib/hold.ts'
import { startLoad } from './lib/load.ts'
import { report, rowOf } from './lib/report.ts'
import { assertIntact } from './lib/scenario.ts'
import { drain } from './lib/verify.ts'
import { waitFor } from '../testing/wait.ts'

t.test('the MongoDB server stopped and restarted during processing', async (t) => {
  const c = await startCluster(t, 'mongo-restart')
  const gw = await c.gateway()
  const w = await c.worker()
  const load = startLoad({ dsn: c.dsn, devices: 60, concurrency: 6, thinkMs: 50 })
  await load.reached(40)
  await c.stack.mongo.stop()
  // More devices upload while it is down. On a quiet machine the first load can be answered and
  // stored in full while the server is still stopping, and then the outage meets no work: these
  // uploads are accepted (the gateway never needs MongoDB) and their jobs meet the outage.
  const during = startLoad({ dsn: c.dsn, devices: 10, concurrency: 2, thinkMs: 50 })
  // The outage must reach the worker's writes before it ends.
  await waitFor(() => w.count(/"msg":"job failed; will retry"/) > 0, { timeoutMs: 60_000, what: 'worker writes to fail' })
  await hold(8000)
  await c.stack.mongo.start()
  await Promise.all([load.done, during.done])
  const f = await drain(c, [...load.uploads, ...during.uploads], { timeoutMs: 180_000 })
  const retried = w.count(/"msg":"job failed; will retry"/)
  report(t, rowOf('MongoDB server stopped 8 s and restarted during processing', f, [`${retried} job attempts failed and were retried`]))
  assertIntact(t, f)
  t.ok(gw.alive() && w.alive(), 'no process was restarted')
})

t.test('the S3 server stopped and restarted while photos are uploaded and processed', async (t) => {
  const c = await startCluster(t, 's3-restart')
  const gw = await c.gateway()
  const w = await c.worker()
  const load = startLoad({ dsn: c.dsn, devices: 60, concurrency: 6, thinkMs: 50, mediaPerSession: 3 })
  await load.reached(40)
  await c.stack.s3.stop()
  const refused = () => load.uploads.filter((u) => u.kind === 'media' && (u.answers['503'] || u.answers.error)).length
  await waitFor(() => refused() > 0, { timeoutMs: 30_000, what: 'photo uploads to be refused' })
  await hold(5000)
  await c.stack.s3.start()
  await load.done
  const f = await drain(c, load.uploads, { timeoutMs: 180_000 })
  report(
    t,
    rowOf('S3 server stopped 5 s and restarted during photo uploads and processing', f, [
      `${refused()} photo uploads were refused and retried`,
      `${w.count(/"msg":"job failed; will retry"/)} job attempts retried`,
    ]),
  )
  assertIntact(t, f)
  t.ok(gw.alive() && w.alive(), 'no process was restarted')
})

t.test('one of four distributed MinIO nodes killed with SIGKILL while photos are uploaded', async (t) => {
  const c = await startCluster(t, 's3-node-kill', { topology: 'distributed' })
  t.equal(c.stack.s3Nodes.length, 4, 'four MinIO server processes behind one endpoint')
  const gw = await c.gateway()
  const w = await c.worker()
  const load = startLoad({ dsn: c.dsn, devices: 60, concurrency: 6, thinkMs: 50, mediaPerSession: 3 })
  await load.reached(40)
  const node = c.stack.s3Nodes[1]!
  await node.kill('SIGKILL')
  t.equal(node.pid, undefined, 'the node is gone, and stays gone')
  await load.done
  // A PUT or DELETE the dead node was coordinating leaves that key write-locked on the surviving
  // nodes until MinIO expires the lock: it is refreshed by its owner only, and each node drops
  // locks unrefreshed for 1 min at a check every 1 min (lockValidityDuration and
  // lockMaintenanceInterval in MinIO's cmd/lock-rest-server.go), so up to 2 min. Seen here with
  // MinIO's top-locks API: a marker's lock owned by the killed node, held 110 s. Every request
  // on such a key waits, cut by the S3 client's 30 s idle limit: the media job retries, and an
  // upload left by the device's cut PUT stays unsettled until a sweep after the lock is gone (this
  // scenario's failure in CI, and in 1 of 3 runs here before this window; 30 runs with it passed,
  // 4 of them after waiting about 2 min). So the sweeper is given the lock's 2 min, plus a 30 s
  // try under way when it goes, a sweep interval, and the job the sweep enqueues.
  const f = await drain(c, load.uploads, { timeoutMs: 180_000, settleMs: 180_000 })
  const retried = load.uploads.filter((u) => u.kind === 'media' && (u.answers['503'] || u.answers.error)).length
  report(
    t,
    rowOf('one of 4 distributed MinIO nodes killed (SIGKILL) during photo uploads', f, [
      `${retried} photo uploads saw a 503 or a cut connection and were retried`,
      `${w.count(/"msg":"job failed; will retry"/)} job attempts retried`,
    ]),
  )
  // A node killed while it coordinated the DELETE of a marker (or of a retry's copy) can leave
  // that key listed with no object behind it (verify.ts, statListed); the photo itself is checked
  // stored above.
  assertIntact(t, f, { phantomsAllowed: true })
  t.ok(gw.alive() && w.alive(), 'no process was restarted')
})
