// shared/redis-command-closures.ts gives ioredis commands shared resolve/reject functions instead
// of closures over each command. Against a Redis of this test's own (it flushes the script cache):
// the commands carry no closures of their own, and everything ioredis did with them still works:
// replies are transformed, error replies reject, script commands go as EVAL then EVALSHA and
// reload after NOSCRIPT, and timeouts still fail a command Redis never answers.
import t from 'tap'
import { Command, ReplyError } from 'ioredis'
import { createProducerRedis } from '../shared/redis.ts'
import { waitFor } from '../testing/wait.ts'
import { privateRedis } from './helpers/private-redis.ts'

const server = await privateRedis(t)
const redis = createProducerRedis(server.url, { commandTimeout: 500 })
t.teardown(() => redis.disconnect())
// The producer client has no offline queue: the first command must wait until it is connected.
await waitFor(async () => (await redis.ping().catch(() => '')) === 'PONG', { timeoutMs: 20_000, what: 'the test Redis to answer' })

type Settlers = { resolve: unknown; reject: unknown; isResolved: boolean; isSettled: boolean }

t.test('commands share their resolve and reject functions instead of carrying closures', async (t) => {
  const a = new Command('set', ['a', '1'])
  const b = new Command('get', ['a'])
  void redis.sendCommand(a)
  void redis.sendCommand(b)
  t.equal(String(await a.promise), 'OK')
  t.equal(((await b.promise) as Buffer).toString(), '1')
  const sa = a as unknown as Settlers
  const sb = b as unknown as Settlers
  t.equal(sa.resolve, sb.resolve, 'one resolve function for both commands')
  t.equal(sa.reject, sb.reject, 'one reject function for both commands')
  t.ok(sa.isResolved && sa.isSettled, 'the command is marked resolved and settled, as ioredis does')
})

t.test('replies are transformed and error replies reject, as before', async (t) => {
  await redis.hset('h', { x: '1', y: '2' })
  t.same(await redis.hgetall('h'), { x: '1', y: '2' }, 'HGETALL reply transformed to an object')
  await redis.set('s', 'v')
  const err = await redis.hget('s', 'x').catch((e: unknown) => e)
  t.ok(err instanceof ReplyError && /WRONGTYPE/.test((err as Error).message), 'a WRONGTYPE reply rejects with a ReplyError')
  t.equal(await redis.get('s'), 'v', 'the connection is still usable after the error')
})

t.test('script commands: EVAL first, EVALSHA after, reloaded after the cache is flushed', async (t) => {
  redis.defineCommand('echoArg', { numberOfKeys: 0, lua: 'return ARGV[1]' })
  const echo = (v: string) => (redis as unknown as { echoArg(v: string): Promise<string> }).echoArg(v)
  const before = await commandCounts()
  t.equal(await echo('one'), 'one')
  t.equal(await echo('two'), 'two')
  const after = await commandCounts()
  t.equal(after.eval - before.eval, 1, 'sent as EVAL once')
  t.equal(after.evalsha - before.evalsha, 1, 'then as EVALSHA')

  // Redis forgets the script: the next EVALSHA gets NOSCRIPT, ioredis forgets that this
  // connection had the script (the shared reject does that now) and resends it as EVAL.
  await redis.script('FLUSH')
  t.equal(await echo('three'), 'three', 'answered after NOSCRIPT')
  t.equal(await echo('four'), 'four')
  const last = await commandCounts()
  t.equal(last.eval - after.eval, 1, 'reloaded with one EVAL')
  t.equal(last.evalsha - after.evalsha, 2, 'the failed EVALSHA and the next one')

  const ScriptCommand = (redis as unknown as { scriptsSet: Record<string, { Command: typeof Command }> }).scriptsSet.echoArg!.Command
  const s1 = new ScriptCommand('evalsha', ['x', 0, 'y'])
  const s2 = new ScriptCommand('evalsha', ['x', 0, 'z'])
  const socket = {} // toWritable only uses the socket as a key
  s1.toWritable(socket as never)
  s2.toWritable(socket as never)
  t.equal((s1 as unknown as Settlers).reject, (s2 as unknown as Settlers).reject, 'written script commands share one reject')
})

t.test('a command Redis never answers still times out', async (t) => {
  await server.kill('SIGSTOP')
  t.teardown(() => server.kill('SIGCONT'))
  const err = await redis.get('s').catch((e: Error) => e)
  t.match(err, { message: 'Command timed out' })
  await server.kill('SIGCONT')
  t.equal(await redis.get('s'), 'v', 'answers again once Redis does')
})

async function commandCounts(): Promise<{ eval: number; evalsha: number }> {
  const info = await redis.info('commandstats')
  const calls = (name: string) => Number(new RegExp(`cmdstat_${name}:calls=(\\d+)`).exec(info)?.[1] ?? 0)
  return { eval: calls('eval'), evalsha: calls('evalsha') }
}
