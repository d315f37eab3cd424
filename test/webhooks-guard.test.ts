// The pieces of outbound webhooks that need no queue: the address guard (SSRF), the HTTP send's
// limits (no redirects, one deadline, a bounded read), the signature and the retry schedule.
// Real sockets throughout: a node http server on 127.0.0.1 plays the receiver.
import http from 'node:http'
import { createServer, type AddressInfo, type Socket } from 'node:net'
import t, { type Test } from 'tap'
import { blockedReason, BlockedAddressError, guardedLookup } from '../webhooks/address-guard.ts'
import { deliveryAttempts, deliveryDelay } from '../webhooks/retry-schedule.ts'
import { sendDelivery } from '../webhooks/send.ts'
import { signature, verifySignature } from '../webhooks/signing.ts'

t.test('non-public addresses are refused, in every spelling; public ones pass', async (t) => {
  const refused = [
    '127.0.0.1',
    '127.255.255.254',
    '0.0.0.0',
    '10.1.2.3',
    '172.16.0.1',
    '172.31.255.255',
    '192.168.1.1',
    '169.254.169.254', // cloud metadata
    '100.64.0.1', // CGNAT
    '100.127.255.255',
    '224.0.0.1', // multicast
    '239.255.255.250',
    '255.255.255.255',
    '198.18.0.1',
    '::',
    '::1',
    'fe80::1',
    'fe80::1%eth0',
    'fc00::1',
    'fd12:3456::1', // unique local
    'ff02::1', // multicast
    '::ffff:127.0.0.1', // IPv4-mapped loopback
    '::ffff:7f00:1', // the same, in hex
    '::ffff:10.0.0.1',
    '::ffff:169.254.169.254',
    '::127.0.0.1', // IPv4-compatible
    '64:ff9b::a00:1', // NAT64 of 10.0.0.1
    '2002:c0a8:0101::1', // 6to4 of 192.168.1.1
    '2001:db8::1',
  ]
  for (const a of refused) t.ok(blockedReason(a), `${a} is refused`)
  const allowed = ['8.8.8.8', '1.1.1.1', '172.32.0.1', '100.128.0.1', '2606:4700:4700::1111', '::ffff:8.8.8.8', '64:ff9b::808:808']
  for (const a of allowed) t.equal(blockedReason(a), null, `${a} is allowed`)
  t.ok(blockedReason('not-an-ip'), 'a name is not an address')
})

t.test('the lookup refuses a name when any of its addresses is not public', async (t) => {
  // A narrow fake resolver, because a test cannot make real DNS answer a private address for a
  // public name (DNS rebinding, or a name that mixes addresses): it answers the given list.
  const resolver = (answers: { address: string; family: number }[]) =>
    ((_host: string, _opts: unknown, cb: (err: Error | null, addresses: unknown) => void) => cb(null, answers)) as never
  const run = (answers: { address: string; family: number }[], all: boolean) =>
    new Promise<unknown>((resolve, reject) =>
      guardedLookup(resolver(answers))('hook.example', { all }, (err, address, family) =>
        err ? reject(err) : resolve(all ? address : { address, family }),
      ),
    )
  await t.rejects(run([{ address: '10.0.0.7', family: 4 }], false), BlockedAddressError, 'a private answer')
  await t.rejects(
    run(
      [
        { address: '93.184.215.14', family: 4 },
        { address: '::ffff:127.0.0.1', family: 6 },
      ],
      true,
    ),
    BlockedAddressError,
    'a public and a loopback answer together',
  )
  t.same(
    await run([{ address: '93.184.215.14', family: 4 }], false),
    { address: '93.184.215.14', family: 4 },
    'a public answer, one address',
  )
  t.same(
    await run([{ address: '2606:4700::1', family: 6 }], true),
    [{ address: '2606:4700::1', family: 6 }],
    'a public answer, all addresses (autoSelectFamily asks for all)',
  )
})

/** A receiver on 127.0.0.1 that answers with `handler`; counts requests. */
async function server(t: Test, handler: http.RequestListener) {
  let requests = 0
  const srv = http.createServer((req, res) => {
    requests++
    handler(req, res)
  })
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r))
  t.teardown(() => {
    srv.closeAllConnections()
    srv.close()
  })
  const port = (srv.address() as AddressInfo).port
  return { port, requests: () => requests }
}

const post = (url: string, opts: { allowPrivate?: boolean; timeoutMs?: number } = {}) =>
  sendDelivery({
    url,
    headers: { 'content-type': 'application/json' },
    body: '{}',
    timeoutMs: opts.timeoutMs ?? 5000,
    allowPrivate: opts.allowPrivate ?? false,
  })

t.test('without WEBHOOK_ALLOW_PRIVATE no request reaches a local receiver, however it is named', async (t) => {
  const s = await server(t, (_req, res) => res.end('ok'))
  for (const host of ['127.0.0.1', 'localhost', '[::1]', '[::ffff:127.0.0.1]', '[::ffff:7f00:1]', '0.0.0.0'])
    await t.rejects(post(`http://${host}:${s.port}/hook`), BlockedAddressError, `http://${host}:${s.port}/ is refused`)
  t.equal(s.requests(), 0, 'the receiver saw nothing')
  const ok = await post(`http://127.0.0.1:${s.port}/hook`, { allowPrivate: true })
  t.equal(ok.status, 200, 'with WEBHOOK_ALLOW_PRIVATE=1 it is reached')
})

t.test('a redirect is a failed attempt, never followed', async (t) => {
  const target = await server(t, (_req, res) => res.end('ok'))
  const s = await server(t, (_req, res) => res.writeHead(307, { location: `http://127.0.0.1:${target.port}/` }).end())
  await t.rejects(post(`http://127.0.0.1:${s.port}/`, { allowPrivate: true }), { code: 'redirect' })
  t.equal(target.requests(), 0, 'the redirect target was never asked')
})

t.test('a kept-alive socket the receiver resets as it is reused: the delivery is sent again on a new one', async (t) => {
  // A raw TCP receiver, so that the race is exact: it answers the first request of a connection
  // and keeps the connection open, then resets it when the next request arrives on it, as a
  // server whose idle timeout fires just as the client reuses the socket does.
  const seen: string[] = []
  const sockets = new Set<Socket>()
  const srv = createServer((socket) => {
    sockets.add(socket)
    let served = 0
    socket.on('data', (chunk) => {
      if (!chunk.includes('\r\n\r\n')) return
      const conn = [...sockets].indexOf(socket) + 1
      if (served++ === 0) {
        seen.push(`conn ${conn}: answered`)
        socket.write('HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: keep-alive\r\n\r\nok')
      } else {
        seen.push(`conn ${conn}: reset`)
        socket.resetAndDestroy()
      }
    })
    socket.on('error', () => {})
  })
  await new Promise<void>((resolve) => srv.listen(0, '127.0.0.1', resolve))
  t.teardown(() => {
    for (const s of sockets) s.destroy()
    srv.close()
  })
  const url = `http://127.0.0.1:${(srv.address() as AddressInfo).port}/hook`
  t.equal((await post(url, { allowPrivate: true })).status, 200, 'first delivery')
  t.equal((await post(url, { allowPrivate: true })).status, 200, 'second delivery, although its kept-alive socket was reset')
  t.same(seen, ['conn 1: answered', 'conn 1: reset', 'conn 2: answered'], 'sent again once, on a new connection')
  // A reset on a new connection is the receiver's answer, not a stale socket: not sent again.
  const rude = createServer((socket) => socket.on('data', () => socket.resetAndDestroy()).on('error', () => {}))
  await new Promise<void>((resolve) => rude.listen(0, '127.0.0.1', resolve))
  t.teardown(() => rude.close())
  await t.rejects(post(`http://127.0.0.1:${(rude.address() as AddressInfo).port}/`, { allowPrivate: true }), { code: 'network' })
})

t.test('an answer that never comes is cut at the deadline', async (t) => {
  const s = await server(t, () => {}) // never answers
  await t.rejects(post(`http://127.0.0.1:${s.port}/`, { allowPrivate: true, timeoutMs: 300 }), { code: 'timeout' })
  // Headers at once, then a body that never ends: the deadline covers the whole exchange.
  const trickle = await server(t, (_req, res) => {
    res.writeHead(200)
    res.write('x')
  })
  await t.rejects(post(`http://127.0.0.1:${trickle.port}/`, { allowPrivate: true, timeoutMs: 300 }), { code: 'timeout' })
})

t.test('a huge answer is not read to its end', async (t) => {
  let dropped!: () => void
  const closed = new Promise<void>((resolve) => (dropped = resolve))
  const s = await server(t, (_req, res) => {
    res.writeHead(200)
    const chunk = Buffer.alloc(64 * 1024, 'a')
    // Writes for ever (until the client goes): only a bounded read lets the send finish.
    const pump = () => {
      while (!res.destroyed && res.write(chunk));
      if (!res.destroyed) res.once('drain', pump)
    }
    res.on('close', dropped)
    pump()
  })
  const res = await post(`http://127.0.0.1:${s.port}/`, { allowPrivate: true, timeoutMs: 10_000 })
  t.equal(res.status, 200, 'answered 200 before the deadline, without waiting for the end of the body')
  t.ok(res.snippet.length <= 200, 'only a snippet is kept')
  await closed
  t.pass('the client dropped the connection')
})

t.test('the signature is HMAC-SHA256 of "<timestamp>.<body>", as the README shows', async (t) => {
  // Computed with: printf '%s' '1700000000.{"a":1}' | openssl dgst -sha256 -hmac 'receiver-secret-0123456789'
  const expected = 'sha256=c04f4556d92725002373d0d6d4a4a66e1d7e66866ec1f2e6edd30cab25dd109d'
  t.equal(signature('receiver-secret-0123456789', '1700000000', '{"a":1}'), expected)
  t.ok(verifySignature('receiver-secret-0123456789', '1700000000', '{"a":1}', expected))
  t.notOk(verifySignature('receiver-secret-0123456789', '1700000001', '{"a":1}', expected), 'another timestamp does not verify')
  t.notOk(verifySignature('receiver-secret-0123456789', '1700000000', '{"a":2}', expected), 'another body does not verify')
  t.notOk(verifySignature('another-secret-0123456789', '1700000000', '{"a":1}', expected), 'another secret does not verify')
})

t.test('the default retry schedule runs for about 3 days, doubling from 10 s to an hour', async (t) => {
  const s = { backoffMs: 10_000, backoffCapMs: 3_600_000, retryForMs: 3 * 86_400_000 }
  const attempts = deliveryAttempts(s)
  const full = (n: number) => deliveryDelay(n, s, 1)
  let total = 0
  for (let n = 1; n < attempts; n++) total += full(n)
  t.ok(total <= s.retryForMs && total + full(attempts) > s.retryForMs, `${attempts} attempts span ${(total / 3_600_000).toFixed(1)} h`)
  t.equal(full(1), 10_000, 'first retry after 10 s')
  t.equal(full(2), 20_000, 'then 20 s')
  t.equal(full(40), 3_600_000, 'capped at an hour')
  t.equal(deliveryDelay(1, s, 0), 9000, 'jitter takes at most 10 % off')
})
