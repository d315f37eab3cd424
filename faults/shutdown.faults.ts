// Graceful shutdown: on SIGTERM every process stops taking work, finishes or hands
// back what it holds within a bounded time, and exits 0. The bound is each process's own
// backstop (shared/process.ts exits 1 when closing takes too long), so "exit code 0" is the
// assertion; the time taken is reported.
import t from 'tap'
import { request, Agent } from 'node:http'
import { startCluster } from './lib/cluster.ts'
import { newUpload, put, startLoad } from './lib/load.ts'
import { report, rowOf } from './lib/report.ts'
import { assertIntact } from './lib/scenario.ts'
import { drain } from './lib/verify.ts'
import { fakeJpeg } from '../testing/media.ts'
import { waitFor } from '../testing/wait.ts'

/** A photo upload that trickles in (like a phone on a poor network): resolves with the status or 'error'. */
function slowUpload(url: string, bytes: Buffer, bytesPerTick: number, tickMs: number) {
  const u = new URL(url)
  let sent = 0
  const done = new Promise<number | 'error'>((resolve) => {
    const req = request(
      {
        host: u.hostname,
        port: u.port,
        path: u.pathname,
        method: 'PUT',
        headers: { 'content-type': 'image/jpeg', 'content-length': bytes.length },
        agent: false,
      },
      (res) => {
        res.resume()
        res.on('end', () => resolve(res.statusCode ?? 0))
        res.on('error', () => resolve('error'))
      },
    )
    req.on('error', () => resolve('error'))
    const tick = () => {
      if (req.destroyed) return
      if (sent >= bytes.length) return void req.end()
      req.write(bytes.subarray(sent, sent + bytesPerTick))
      sent += bytesPerTick
      setTimeout(tick, tickMs)
    }
    tick()
  })
  return { done, sent: () => sent }
}

t.test('gateway: SIGTERM under load, with a slow upload in flight and idle keep-alive connections', async (t) => {
  const c = await startCluster(t, 'gateway-sigterm')
  const gw = await c.gateway()
  await c.worker()
  const load = startLoad({ dsn: c.dsn, devices: 40, concurrency: 6, thinkMs: 50 })
  // An idle keep-alive connection (a phone between uploads) must not hold the shutdown open.
  const agent = new Agent({ keepAlive: true })
  await new Promise<void>((resolve, reject) =>
    request(`${c.gatewayUrl}/healthz`, { agent }, (res) => res.resume().on('end', resolve))
      .on('error', reject)
      .end(),
  )
  // A 600 kB photo at 20 kB per 100 ms: 3 s of upload, under way when SIGTERM arrives.
  const slow = slowUpload(`${c.dsn}/test_session/slow-0001/media/cropped/`, fakeJpeg(600_000), 20_000, 100)
  await load.reached(40)
  await waitFor(() => slow.sent() > 100_000, { what: 'the slow upload to be under way' })
  const exit = await gw.terminate(60_000)
  t.equal(exit.code, 0, `the gateway exits 0 (after ${exit.ms} ms)\n${gw.output().slice(-1500)}`)
  const slowStatus = await slow.done
  // Finished (201) or handed back (the device sees an error or 503 and retries): never lost.
  t.ok(slowStatus === 201 || slowStatus === 'error' || slowStatus === 503, `the slow upload was finished or handed back (${slowStatus})`)
  await t.rejects(fetch(`${c.gatewayUrl}/healthz`), 'the port is closed')
  agent.destroy()
  // A new gateway takes over on the same port; the devices' retries go there.
  await c.gateway()
  await load.done
  const f = await drain(c, load.uploads)
  report(
    t,
    rowOf('gateway SIGTERM under load (then a new gateway)', f, [
      `exit ${exit.code} after ${exit.ms} ms; slow upload in flight: ${slowStatus}`,
    ]),
  )
  assertIntact(t, f)
})

t.test('gateway: SIGTERM with an upload slower than the shutdown bound', async (t) => {
  const c = await startCluster(t, 'gateway-sigterm-slow')
  const gw = await c.gateway()
  const w = await c.worker()
  // 1 MB at 10 kB per 200 ms: 20 s, longer than the gateway's grace (10 s) and backstop (15 s).
  const slowBytes = fakeJpeg(1_000_000)
  const slow = slowUpload(`${c.dsn}/test_session/slow-0002/media/cropped/`, slowBytes, 10_000, 200)
  await waitFor(() => slow.sent() > 50_000, { what: 'the slow upload to be under way' })
  const exit = await gw.terminate(60_000)
  t.equal(exit.code, 0, `the gateway exits 0 within its bound, handing the upload back (after ${exit.ms} ms)\n${gw.output().slice(-1500)}`)
  const status = await slow.done
  t.not(status, 201, 'the cut upload is not acknowledged')
  // The device retries on the next gateway: accepted (not 409), and stored byte for byte; the
  // cut attempt leaves no upload (nor marker) behind.
  await c.gateway()
  const retry = newUpload('media', 'slow-0002', slowBytes, { mediaId: 'cropped' })
  await put(`${c.dsn}/test_session/slow-0002/media/cropped/`, retry, { 'content-type': 'image/jpeg' })
  t.equal(retry.final, 201, 'the retry is accepted')
  const f = await drain(c, [retry])
  report(
    t,
    rowOf('gateway SIGTERM with an upload slower than its grace (cut, then retried)', f, [
      `exit ${exit.code} after ${exit.ms} ms; the cut upload got ${status}, its retry ${retry.final}`,
      `${w.count(/partial upload; discarded/)} partial upload discarded by the sweeper`,
    ]),
  )
  assertIntact(t, f)
})

t.test('every process: SIGTERM while Redis is unreachable', async (t) => {
  const c = await startCluster(t, 'sigterm-redis-down')
  const procs = [await c.gateway(), await c.worker(), await c.admin()]
  await c.stack.redis.stop()
  // Let each notice the outage (connections dropped, reconnects scheduled) before the signal.
  await waitFor(() => procs[1]!.count(/ECONNREFUSED/) > 0, { timeoutMs: 30_000, what: 'the worker to notice the outage' })
  const exits = await Promise.all(procs.map((p) => p.terminate(60_000)))
  procs.forEach((p, i) => t.equal(exits[i]!.code, 0, `${p.role} exits 0 (after ${exits[i]!.ms} ms)\n${p.output().slice(-1200)}`))
  t.comment(`exits with Redis down: ${procs.map((p, i) => `${p.role} ${exits[i]!.code} in ${exits[i]!.ms} ms`).join(', ')}`)
})

t.test('admin: SIGTERM with an idle keep-alive connection and a request in flight', async (t) => {
  const c = await startCluster(t, 'admin-sigterm')
  const admin = await c.admin()
  const agent = new Agent({ keepAlive: true })
  const status = await new Promise<number>((resolve, reject) =>
    request(`${c.adminUrl}/healthz`, { agent }, (res) => res.resume().on('end', () => resolve(res.statusCode ?? 0)))
      .on('error', reject)
      .end(),
  )
  t.equal(status, 200)
  // A request the server is reading when the signal arrives: a log-in form trickling in.
  const form = Buffer.from('email=ops%40example.org&password=not-the-password&_csrf=x')
  const u = new URL(`${c.adminUrl}/login`)
  let written = 0
  const inFlight = new Promise<number | 'error'>((resolve) => {
    const req = request(
      {
        host: u.hostname,
        port: u.port,
        path: u.pathname,
        method: 'POST',
        agent: false,
        headers: { 'content-type': 'application/x-www-form-urlencoded', 'content-length': form.length },
      },
      (res) => res.resume().on('end', () => resolve(res.statusCode ?? 0)),
    )
    req.on('error', () => resolve('error'))
    const tick = () => {
      if (written >= form.length) return void req.end()
      req.write(form.subarray(written, written + 8))
      written += 8
      setTimeout(tick, 150)
    }
    tick()
  })
  await waitFor(() => written >= 16, { what: 'the request to be under way' })
  const exit = await admin.terminate(60_000)
  t.equal(exit.code, 0, `the admin panel exits 0 (after ${exit.ms} ms)\n${admin.output().slice(-1500)}`)
  const answered = await inFlight
  t.type(answered, 'number', `the request in flight was answered (${answered}), not cut`)
  agent.destroy()
})
