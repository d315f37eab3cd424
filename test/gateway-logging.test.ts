// Tokens never appear in logs: every line the gateway writes, at the most verbose level, for
// accepted, refused, failed and unknown-route requests, is searched for the token.
import t from 'tap'
import pino from 'pino'
import { Writable } from 'node:stream'
import { buildGateway } from '../gateway/app.ts'
import { loggerOptions } from '../shared/logger.ts'
import { asRole, testConfig } from './helpers/env.ts'
import { seedToken } from '../testing/seed.ts'

const config = testConfig()
const seeded = await seedToken(config, { permissions: ['test_session'] })
const lines: string[] = []
const sink = new Writable({
  write(chunk, _enc, cb) {
    lines.push(String(chunk))
    cb()
  },
})
const logger = pino(loggerOptions('trace', 'gateway'), sink)
const app = await buildGateway({ config: asRole(config, 'gateway'), logger })
t.teardown(() => app.close())

t.test('no log line contains the DSN token', async (t) => {
  const b = `/ingest/${seeded.token}`
  const results = await Promise.all([
    app.inject({ method: 'PUT', url: `${b}/test_session/s1/`, payload: '{"state":"QUEUED"}' }),
    app.inject({ method: 'PUT', url: `${b}/test_session/s1/`, payload: '{"state":"QUEUED"}' }),
    app.inject({ method: 'PUT', url: `${b}/test_session/s2`, payload: 'nope' }),
    app.inject({ method: 'PUT', url: `${b}/test_session/s3/logs`, payload: '{}' }),
    app.inject({ method: 'PUT', url: `${b}/test_session/bad.id`, payload: '{}' }),
    app.inject({ method: 'PUT', url: `${b}/unknown/route`, payload: '{}' }),
    app.inject({ method: 'GET', url: `${b}/test_session/s1?x=${seeded.token}` }),
  ])
  t.same(results.map((r) => r.statusCode).sort(), [201, 400, 400, 403, 404, 404, 409].sort())
  for (const r of results) t.notOk(r.body.includes(seeded.token), 'no response body echoes the token')
  t.ok(lines.length >= results.length, `captured ${lines.length} log lines`)
  const leaked = lines.filter((l) => l.includes(seeded.token) || l.includes(seeded.token.slice(4, 30)))
  t.same(leaked, [], 'no line carries the token')
  t.ok(
    lines.some((l) => l.includes('/ingest/[dsn]/test_session/s1')),
    'URLs are logged with the DSN redacted',
  )
})
