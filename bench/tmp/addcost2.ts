import { Queue, Job } from 'bullmq'
import { Redis } from 'ioredis'
import { readFileSync } from 'node:fs'
const body = readFileSync('/tmp/ceil/body.json', 'utf8')
const redis = new Redis('redis://127.0.0.1:7901', { maxRetriesPerRequest: 1, enableOfflineQueue: false })
await new Promise(r => redis.once('ready', r))
const q = new Queue('t', { connection: redis, prefix: 'x', defaultJobOptions: { removeOnComplete: 1000, attempts: 5 } })
const N = 40000
async function single() {
  let i = 0; const c0 = process.cpuUsage(); const t0 = performance.now()
  await Promise.all(Array.from({ length: 100 }, async () => { while (i < N) { const id = 's' + (i++); await q.add('session', { kind: 'session', workspace_id: 'ws', session_id: id, sha256: 'a'.repeat(64), body: new TextDecoder().decode(Buffer.from(body.replace('0b7c3f1e', id.slice(0,8).padEnd(8,'x')))) }, { jobId: id }) } }))
  const c = process.cpuUsage(c0); return { rate: N / ((performance.now() - t0) / 1000), cpuUs: (c.user + c.system) / N }
}
async function bulk(size: number) {
  let i = 0; const c0 = process.cpuUsage(); const t0 = performance.now()
  await Promise.all(Array.from({ length: 4 }, async () => { while (i < N) { const batch = []; for (let k = 0; k < size && i < N; k++) { const id = 'b' + size + '-' + (i++); batch.push({ name: 'session', data: { kind: 'session', workspace_id: 'ws', session_id: id, sha256: 'a'.repeat(64), body: new TextDecoder().decode(Buffer.from(body.replace('0b7c3f1e', id.slice(0,8).padEnd(8,'x')))) }, opts: { jobId: id } }) } await q.addBulk(batch) } }))
  const c = process.cpuUsage(c0); return { rate: N / ((performance.now() - t0) / 1000), cpuUs: (c.user + c.system) / N }
}
const info = async () => { const s = await redis.info('cpu'); const f = (n: string) => Number(new RegExp(`^${n}:([\\d.]+)`, 'm').exec(s)![1]); return f('used_cpu_sys') + f('used_cpu_user') }
for (const [name, fn] of [['single', single], ['bulk10', () => bulk(10)], ['bulk50', () => bulk(50)], ['single', single]] as const) {
  await redis.flushall(); const r0 = await info(); const res = await fn(); const r1 = await info()
  console.log(name, Math.round(res.rate), '/s; node CPU us/job', res.cpuUs.toFixed(1), '; redis us/job', ((r1 - r0) * 1e6 / N).toFixed(1))
}
await q.close(); redis.disconnect()
