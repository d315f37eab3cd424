// The object-storage client's idle timeout (shared/s3.ts). The servers here are fakes for one
// narrow reason: a real S3 server cannot be made to hold a request unanswered, or to trickle a
// body, on demand. That every ordinary call still works through this client is covered by every
// test that uses the stack's real S3 server.
import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import t from 'tap'
import { createS3 } from '../shared/s3.ts'

async function listen(server: Server): Promise<string> {
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`
}

const settings = (endpoint: string) => ({ endpoint, accessKey: 'k', secretKey: 's', bucket: 'rdt-media', region: 'us-east-1' })

t.test('a request the server never answers fails instead of waiting for ever', async (t) => {
  const held: import('node:http').ServerResponse[] = []
  const server = createServer((_req, res) => void held.push(res)) // reads the request, never answers
  const endpoint = await listen(server)
  t.teardown(() => {
    for (const res of held) res.destroy()
    server.close()
  })
  const s3 = createS3(settings(endpoint), 200)
  // Without the timeout this call never settles, and tap's own timeout fails the test.
  await t.rejects(s3.statObject('rdt-media', 'pending/w/s/cropped/u'), /idle for 200 ms/)
  t.equal(held.length, 1, 'the request did reach the server')
})

t.test('a body that keeps flowing is not cut, however long it takes in all', async (t) => {
  const chunks = 8
  const server = createServer((_req, res) => {
    res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': String(chunks) })
    let sent = 0
    // One byte every 100 ms: 800 ms in all, four times the idle timeout, never idle for 200 ms.
    const timer = setInterval(() => {
      res.write(Buffer.from([sent]))
      if (++sent === chunks) {
        clearInterval(timer)
        res.end()
      }
    }, 100)
    res.on('close', () => clearInterval(timer))
  })
  const endpoint = await listen(server)
  t.teardown(() => server.close())
  const s3 = createS3(settings(endpoint), 200)
  const body = await s3.getObject('rdt-media', 'media/w/s/cropped/u')
  const parts: Buffer[] = []
  for await (const c of body) parts.push(c as Buffer)
  t.same([...Buffer.concat(parts)], [0, 1, 2, 3, 4, 5, 6, 7], 'every byte arrived')
})
