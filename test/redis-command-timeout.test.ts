// commandTimeout means "Redis did not answer", not "we were busy": against a Redis of this test's
// own (so that stopping it harms no other test), a command answered while the event loop was
// blocked past the timeout succeeds, and a command to a stopped Redis still times out.
import t from 'tap'
import { spawn } from 'node:child_process'
import { createProducerRedis } from '../shared/redis.ts'
import { freePort } from '../stack/ports.ts'
import { waitFor } from '../testing/wait.ts'

const port = await freePort()
const server = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], {
  stdio: 'ignore',
})
t.teardown(() => {
  server.kill('SIGCONT')
  server.kill('SIGKILL')
})
const TIMEOUT_MS = 300
const redis = createProducerRedis(`redis://127.0.0.1:${port}`, { commandTimeout: TIMEOUT_MS })
t.teardown(() => redis.disconnect())
// A poll: the server is another process, ready only when it answers.
await waitFor(async () => (await redis.ping().catch(() => '')) === 'PONG', { timeoutMs: 20_000, what: 'the test Redis to answer' })

/** Blocks the event loop, as a burst of work on a starved CPU does. */
function busy(ms: number): void {
  const until = Date.now() + ms
  while (Date.now() < until) {
    // spin
  }
}

t.test('a reply that arrived while the event loop was busy past the timeout is taken', async (t) => {
  for (let i = 0; i < 5; i++) {
    const set = redis.set(`k${i}`, 'v').then(
      (r) => r,
      (e: Error) => e.message,
    )
    busy(TIMEOUT_MS * 2)
    t.equal(await set, 'OK', `command ${i + 1}: answered, not timed out`)
  }
})

t.test('a Redis that does not answer still fails the command', async (t) => {
  server.kill('SIGSTOP')
  try {
    const err = await redis.get('k0').then(
      () => null,
      (e: Error) => e,
    )
    t.equal(err?.message, 'Command timed out')
  } finally {
    server.kill('SIGCONT')
  }
  t.equal(await redis.get('k0'), 'v', 'and it works again once Redis answers')
})
