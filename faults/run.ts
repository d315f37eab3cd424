// `npm run test:faults`: the fault-injection suite. Runs every
// faults/*.faults.ts file with tap, one at a time (each scenario starts its own stack and kills
// real processes; two at once on a 2-core machine would mostly measure each other), then prints
// the table of every scenario and writes it to faults/last-run.md. Extra arguments are passed
// to tap, e.g. `npm run test:faults -- faults/redis.faults.ts` to run one file.
import { spawn } from 'node:child_process'
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { basename, join } from 'node:path'
import { ensureBinaries, s3ServerFromEnv } from '../stack/install.ts'
import { repoRoot } from '../stack/paths.ts'
import { exitCodeFor } from '../stack/signals.ts'
import { formatRow, HEADER, readRows } from './lib/report.ts'

const here = join(repoRoot, 'faults')
// The table reads from the workers outwards: workers, Redis, storage, gateway, memory, shutdown, then
// the distributed topology's own (Redis Cluster).
const ORDER = ['worker', 'redis', 'storage', 'gateway', 'maxmemory', 'shutdown', 'redis-cluster']
const rank = (file: string) => {
  const i = ORDER.indexOf(basename(file).replace(/\.faults\.ts.*$/, ''))
  return i < 0 ? ORDER.length : i
}
const args = process.argv.slice(2)
const files = args.some((a) => a.endsWith('.faults.ts'))
  ? []
  : readdirSync(here)
      .filter((f) => f.endsWith('.faults.ts'))
      .sort((a, b) => rank(a) - rank(b) || a.localeCompare(b))
      .map((f) => join('faults', f))

// Build or find the service binaries once, before any scenario starts its stack.
const s3Server = s3ServerFromEnv()
await ensureBinaries(s3Server)

const results = mkdtempSync(join(tmpdir(), 'rdt-faults-'))
const started = Date.now()
const tap = spawn(join(repoRoot, 'node_modules', '.bin', 'tap'), ['--jobs=1', '--timeout=900', ...files, ...args], {
  cwd: repoRoot,
  stdio: 'inherit',
  env: { ...process.env, FAULTS_RESULTS_DIR: results },
})
for (const sig of ['SIGINT', 'SIGTERM'] as const) process.on(sig, () => tap.kill(sig))
const code = await new Promise<number>((resolve) => tap.once('exit', (c, s) => resolve(exitCodeFor(c, s))))

const rows = readRows(results).sort((a, b) => rank(a.order) - rank(b.order) || a.order.localeCompare(b.order))
rmSync(results, { recursive: true, force: true })
const minutes = ((Date.now() - started) / 60_000).toFixed(1)
const bullmq = (JSON.parse(readFileSync(join(repoRoot, 'node_modules', 'bullmq', 'package.json'), 'utf8')) as { version: string }).version
const table = [HEADER, ...rows.map(formatRow)].join('\n')
const legend = `
- **sent**: uploads (a session, a logs batch or a photo), each counted once however often it was retried.
- **201 / 409**: final answers. A 409 here is a retry of an upload whose first attempt was queued
  but whose answer was lost in the fault (its data is stored), or a concurrent duplicate.
- **503**: 503 answers received along the way (each was retried, as the real client does).
- **stored**: uploads answered 201 or 409 whose data is stored (the device deletes its copy on
  either): documents in MongoDB, photos in S3 compared byte for byte; a 409 counts when its body
  is the stored one or is kept in test_session_conflicts.
- **lost**: an upload answered 201 or 409 whose data is not stored once the system has drained
  (the AOF everysec crash row may lose writes acknowledged in the 2 s before the crash, and says
  so). **duplicated**: a record
  stored more than once (two documents for one id, a log batch or entry twice, a replay stored
  as a conflict).
- **conn. errors**: attempts that got no HTTP answer (refused, reset); retried.
- **gave up**: uploads with no 201/409 within the retry bound (200 attempts, 150 s).`

const md = `# Fault-injection suite: last run

${new Date().toISOString()}, ${minutes} min, node ${process.version}, BullMQ ${bullmq}, S3 server ${s3Server}, exit code ${code}${
  rows.length ? '' : '\n\nNo scenario reported a row.'
}

${table}
${legend}
`
// One table per S3 server, so CI's second run (STACK_S3=versity) does not overwrite MinIO's.
const tableFile = s3Server === 'minio' ? 'last-run.md' : `last-run-${s3Server}.md`
writeFileSync(join(here, tableFile), md)
console.log(`\n${table}\n${legend}\n\nfault suite: ${rows.length} scenarios in ${minutes} min; table written to faults/${tableFile}`)
process.exit(code)
