// `workspace retention` and the retention column of `workspace list`, through the real CLI (a child
// process with the CLI's own credentials) against the stack.
import { runCliProcess, type CliRun } from './helpers/cli-process.ts'
import { randomBytes } from 'node:crypto'
import t from 'tap'
import { collections, connectMongo } from '../shared/mongo.ts'
import { roleEnv } from '../stack/roles.ts'

if (!process.env.MONGODB_URL || !process.env.REDIS_URL) throw new Error('MONGODB_URL and REDIS_URL must be set (run through `npm test`)')
const mongoUrl = new URL(process.env.MONGODB_URL)
mongoUrl.pathname = `/t_cliret_${randomBytes(4).toString('hex')}`
const env = roleEnv(
  { ...process.env, MONGODB_URL: mongoUrl.toString(), REDIS_PREFIX: `{t-${randomBytes(5).toString('hex')}}`, PUBLIC_URL: 'https://x.test' },
  'cli',
)
const { client, db } = await connectMongo(mongoUrl.toString(), 1)
t.teardown(async () => {
  await db.dropDatabase().catch(() => {})
  await client.close()
})

const cli = (args: string[]): Promise<CliRun> => runCliProcess(args, env)

t.test('shows, sets and lists the periods; everything is kept by default', async (t) => {
  t.equal((await cli(['workspace', 'create', 'ret-a'])).code, 0)

  const shown = await cli(['workspace', 'retention', 'ret-a', '--json'])
  t.equal(shown.code, 0, shown.stderr)
  t.match(JSON.parse(shown.stdout), { slug: 'ret-a', retention: { photos: null, logs: null, sessions: null }, changed: false })

  const set = await cli(['workspace', 'retention', 'ret-a', '--photos', '30', '--sessions', '365', '--json'])
  t.equal(set.code, 0, set.stderr)
  t.match(JSON.parse(set.stdout), {
    retention: { photos: 30, logs: null, sessions: 365 },
    previous_retention: { photos: null, logs: null, sessions: null },
    changed: true,
  })
  const doc = await collections(db).workspaces.findOne({ slug: 'ret-a' })
  t.same(doc?.retention, { photos: 30, logs: null, sessions: 365 }, 'stored on the workspace document')
  const audit = await collections(db).audit.findOne({ action: 'workspace.set_retention' })
  t.match(audit, { actor: /^cli:/, target: { slug: 'ret-a', retention: { photos: 30 }, previous: { photos: null } } }, 'audited')

  const human = await cli(['workspace', 'retention', 'ret-a', '--photos', 'keep', '--logs', '7'])
  t.equal(human.code, 0, human.stderr)
  t.equal(
    human.stdout,
    'Workspace "ret-a" retention: photos keep, logs 7 days, sessions 365 days (was photos 30 days, logs keep, sessions 365 days).\n',
  )

  const list = await cli(['workspace', 'list'])
  t.match(list.stdout, /ret-a .* photos keep, logs 7d, sessions 365d\n/)
  const listed = JSON.parse((await cli(['workspace', 'list', '--json'])).stdout) as { slug: string; retention: unknown }[]
  t.same(listed.find((w) => w.slug === 'ret-a')?.retention, { photos: null, logs: 7, sessions: 365 })
})

t.test('refuses what is not a period, before changing anything', async (t) => {
  for (const bad of ['0', '-1', 'forever', '1.5', '36501']) {
    const r = await cli(['workspace', 'retention', 'ret-a', `--photos=${bad}`])
    t.not(r.code, 0, `--photos ${bad} is refused`)
    t.match(r.stderr, /--photos must be a number of days \(1 to 36500\) or "keep"|invalid photos retention 36501/, bad)
  }
  const unknown = await cli(['workspace', 'retention', 'no-such', '--logs', '3'])
  t.equal(unknown.code, 1)
  t.match(unknown.stderr, /unknown workspace/)
  const doc = await collections(db).workspaces.findOne({ slug: 'ret-a' })
  t.same(doc?.retention, { photos: null, logs: 7, sessions: 365 }, 'unchanged')
})
