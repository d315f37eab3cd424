// B1-B5: what the same machine and the same servers do without our code in the way, measured in
// the same run, so that every project figure can be read as a ratio.
import { Queue } from 'bullmq'
import { randomUUID } from 'node:crypto'
import { connectMongo, ensureIndexes } from '../shared/mongo.ts'
import { jobIds } from '../shared/keys.ts'
import { defaultJobOptions } from '../shared/queue-settings.ts'
import type { Bench } from './context.ts'
import { PREFIX } from './context.ts'
import { photoSizes } from './bodies.ts'
import { sessionDocument, sessionJob } from './jobs.ts'
import { runLoad } from './load.ts'
import type { AutocannonSummary } from './load-child.ts'
import { cpuOf, cpuWindow, formatCpuShare, idleRss, pidCpu, startHello } from './procs.ts'
import { mb, median } from './stats.ts'
import type { UploadResult } from './uploads.ts'

export interface Baselines {
  fastify_hello_rps: number
  queue_add_per_s: number
  insertmany_docs_per_s: number
  s3_put_mb_s: number
  fastify_idle_rss_mb: number
  /** C-B1: the same hello process taking T1's session PUTs with only the unavoidable work (hello-server.mjs). */
  fastify_parse_put_rps: number
  /** B1's CPU per request: the hello process and the generator (microseconds). */
  hello_cpu_us_per_req: { server: number; generator: number }[]
  /** B3's CPU per document in FerretDB (microseconds), to compare with the worker's batches. */
  insertmany_ferretdb_cpu_us_per_doc: number[]
  rounds: Record<string, number[]>
  notes: string[]
}

/** B4 once: T3's photo set PUT straight to the S3 server with the minio client; MB/s. */
export async function directS3PutMbS(b: Pick<Bench, 'dir' | 's3Config'>, photos: number, concurrency: number): Promise<number> {
  const res = await runLoad<UploadResult>(b.dir, {
    mode: 's3put',
    s3: b.s3Config,
    prefix: `bench-b4/${randomUUID()}`,
    sizes: photoSizes(photos),
    concurrency,
  })
  return mb(res.bytes) / ((res.endedAt - res.startedAt) / 1000)
}

/** B3's shape: the best of a few we tried on FerretDB (1000 x 2 beat 100 x 1/4/8 and 500 x 4). */
export const INSERT_BATCH = 1000
export const INSERT_PARALLEL = 2
/** B2: adds in flight at once (one connection, so they pipeline), like a busy producer. */
export const ADD_PARALLEL = 64

export async function measureBaselines(b: Bench): Promise<Baselines> {
  const { opts } = b
  const rounds: Record<string, number[]> = { b1: [], b2: [], b3: [], b4: [], b5: [], c1: [] }
  const helloCpu: Baselines['hello_cpu_us_per_req'] = []
  const ferretCpu: number[] = []

  // B5 first, on a fresh process that has served nothing; B1 then warms it up.
  b.log('B5/B1: bare Fastify hello world')
  const hello = await startHello(b.dir)
  // T1's closed-loop settings, against the hello process: GET / (B1) or T1's session PUTs (C-B1).
  const closedLoop = (kind: 'hello' | 'sessions') =>
    runLoad<AutocannonSummary>(b.dir, {
      mode: 'autocannon',
      target: { host: '127.0.0.1', port: hello.port },
      kind,
      connections: opts.connections,
      pipelining: opts.pipelining,
      durationS: opts.closedSeconds,
      warmupS: opts.warmupSeconds,
      tokensFile: kind === 'sessions' ? b.tokensFile : undefined,
    })
  try {
    rounds.b5!.push(mb(await idleRss(hello)))
    for (let r = 0; r < opts.rounds; r++) {
      const cpuBefore = hello.cpu()
      const res = await closedLoop('hello')
      rounds.b1!.push(res.rps)
      helloCpu.push({
        server: ((hello.cpu() - cpuBefore) / res.totalAnswers) * 1e6,
        generator: (res.generatorCpuS / res.totalAnswers) * 1e6,
      })
      b.log(
        `  B1 round ${r + 1}: ${Math.round(res.rps)} req/s (p99 ${res.p99} ms); CPU us/req: server ${helloCpu.at(-1)!.server.toFixed(1)}, generator ${helloCpu.at(-1)!.generator.toFixed(1)}`,
      )
      // C-B1 right after, on the same process and the same generator settings as T1.
      const cpuParse = hello.cpu()
      const parse = await closedLoop('sessions')
      rounds.c1!.push(parse.rps)
      const serverUs = ((hello.cpu() - cpuParse) / parse.totalAnswers) * 1e6
      b.log(
        `  C-B1 round ${r + 1}: ${Math.round(parse.rps)} session PUTs/s read, hashed and parsed, nothing else (${(parse.rps / res.rps).toFixed(3)} x B1); ` +
          `CPU us/req: server ${serverUs.toFixed(1)}, generator ${((parse.generatorCpuS / parse.totalAnswers) * 1e6).toFixed(1)}`,
      )
    }
  } finally {
    await hello.stop()
  }
  // A second fresh process, for a second B5 reading.
  for (let r = 1; r < Math.min(opts.rounds, 3); r++) {
    const h = await startHello(b.dir)
    rounds.b5!.push(mb(await idleRss(h)))
    await h.stop()
  }

  b.log('B2: queue.add loop on the same Redis')
  for (let r = 0; r < opts.rounds; r++) {
    await b.resetRedis()
    rounds.b2!.push(await queueAddLoop(b, opts.addSeconds))
    b.log(`  B2 round ${r + 1}: ${Math.round(rounds.b2!.at(-1)!)} adds/s`)
  }
  await b.resetRedis()

  b.log('B3: insertMany (ordered: false) of session documents into the same FerretDB')
  for (let r = 0; r < opts.rounds; r++) {
    const res = await insertManyRate(b, opts.insertDocs)
    rounds.b3!.push(res.rate)
    ferretCpu.push(res.ferretCpuUsPerDoc)
    b.log(`  B3 round ${r + 1}: ${Math.round(res.rate)} docs/s; FerretDB CPU ${res.ferretCpuUsPerDoc.toFixed(0)} us/doc`)
  }

  rounds.b4 = await measureDirectS3(b)

  return {
    fastify_hello_rps: median(rounds.b1!),
    queue_add_per_s: median(rounds.b2!),
    insertmany_docs_per_s: median(rounds.b3!),
    s3_put_mb_s: median(rounds.b4!),
    fastify_idle_rss_mb: median(rounds.b5!),
    fastify_parse_put_rps: median(rounds.c1!),
    hello_cpu_us_per_req: helloCpu,
    insertmany_ferretdb_cpu_us_per_doc: ferretCpu,
    rounds,
    notes: [
      `B1: GET / on a bare Fastify 5 (no logger), autocannon -c ${opts.connections} -p ${opts.pipelining}, ${opts.closedSeconds} s after ${opts.warmupSeconds} s warm-up`,
      `B2: queue.add of a gateway-identical session job (3.4 KB median body), ${ADD_PARALLEL} in flight on one connection, ${opts.addSeconds} s`,
      `B3: insertMany ordered:false of worker-identical session documents, batches of ${INSERT_BATCH}, ${INSERT_PARALLEL} in flight, write concern majority, same indexes as the worker`,
      `B4: minio putObject from a separate process, 1-5 MiB objects, concurrency ${opts.photoConcurrency}`,
      'B5: VmRSS of a fresh bare Fastify process, 3 s after it is ready',
      "C-B1: T1's session PUTs (same bodies, generator and settings) against the hello process's PUT route, which only reads, hashes and parses the body: the ceiling for T1 and T1b on this machine before any Redis work",
    ],
  }
}

/** B4: the same photo sizes PUT straight to the same S3 server, MB/s per round. */
export async function measureDirectS3(b: Bench): Promise<number[]> {
  const opts = b.opts
  const out: number[] = []
  b.log(`B4: S3 PUT with the minio client, ${opts.photos} photos of 1-5 MB, concurrency ${opts.photoConcurrency}`)
  for (let r = 0; r < opts.rounds; r++) {
    // Where the CPU goes, to set T3's rounds against (the minio client is in "everything else").
    const endWindow = cpuWindow({ MinIO: pidCpu(b.stack.s3.pid) })
    out.push(await directS3PutMbS(b, opts.photos, opts.photoConcurrency))
    b.log(`  B4 round ${r + 1}: ${out.at(-1)!.toFixed(1)} MB/s; ${formatCpuShare(endWindow())}`)
  }
  return out
}

/** B4 alone, for a run of the media phase without the baselines phase: T3 is read as a ratio to it. */
export function directS3Only(b4: number[], photoConcurrency: number): Baselines {
  return {
    fastify_hello_rps: NaN,
    queue_add_per_s: NaN,
    insertmany_docs_per_s: NaN,
    s3_put_mb_s: median(b4),
    fastify_idle_rss_mb: NaN,
    fastify_parse_put_rps: NaN,
    hello_cpu_us_per_req: [],
    insertmany_ferretdb_cpu_us_per_doc: [],
    rounds: { b4 },
    notes: [`B4: minio putObject from a separate process, 1-5 MiB objects, concurrency ${photoConcurrency}`],
  }
}

async function queueAddLoop(b: Bench, seconds: number): Promise<number> {
  const queue = new Queue('bench-b2', { connection: b.redis, prefix: PREFIX })
  const jobs = Array.from({ length: 200 }, (_, i) => sessionJob(b.workspaceId, i))
  let added = 0
  const until = performance.now() + seconds * 1000
  const started = performance.now()
  await Promise.all(
    Array.from({ length: ADD_PARALLEL }, async () => {
      while (performance.now() < until) {
        const data = { ...jobs[added % jobs.length]!, session_id: randomUUID() }
        await queue.add('session', data, { ...defaultJobOptions, jobId: jobIds.session(data.workspace_id, data.session_id) })
        added++
      }
    }),
  )
  const rate = added / ((performance.now() - started) / 1000)
  await queue.close()
  return rate
}

async function insertManyRate(b: Bench, count: number): Promise<{ rate: number; ferretCpuUsPerDoc: number }> {
  const url = new URL(b.stack.env.MONGODB_URL!)
  url.pathname = '/bench_b3'
  const { client, db } = await connectMongo(url.toString(), 'majority')
  try {
    await db.dropDatabase()
    await ensureIndexes(db)
    // Built a batch at a time (100k documents at once would be ~1 GB of heap); the build of one
    // batch overlaps the server's write of the other in flight.
    const batchOf = (start: number) =>
      Array.from({ length: Math.min(INSERT_BATCH, count - start) }, (_, i) => sessionDocument(sessionJob(b.workspaceId, start + i)))
    const sessions = db.collection('test_sessions')
    let next = 0
    const ferretPid = b.stack.mongo.pid
    const cpuBefore = ferretPid ? cpuOf(ferretPid) : NaN
    const started = performance.now()
    await Promise.all(
      Array.from({ length: INSERT_PARALLEL }, async () => {
        while (next < count) {
          const start = next
          next += INSERT_BATCH
          await sessions.insertMany(batchOf(start), { ordered: false })
        }
      }),
    )
    const rate = count / ((performance.now() - started) / 1000)
    return { rate, ferretCpuUsPerDoc: ferretPid ? ((cpuOf(ferretPid) - cpuBefore) / count) * 1e6 : NaN }
  } finally {
    await db.dropDatabase().catch(() => {})
    await client.close()
  }
}
