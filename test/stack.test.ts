// The local stack itself: a second stack in a temp dir (so it coexists with
// the one with-stack.ts started), real answers from each service, restart
// on the same port with data kept, and a clean stop.
import { mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { Client as MinioClient } from 'minio';
import { MongoClient } from 'mongodb';
import t from 'tap';
import { startStack } from '../stack/launcher.ts';

const dir = await mkdtemp(join(tmpdir(), 'rdt-stack-test-'));
const stack = await startStack({ dir });
t.teardown(async () => {
  await stack.stop();
  await rm(dir, { recursive: true, force: true });
});
const { env } = stack;

t.test('env and env file', async (t) => {
  t.same(Object.keys(env).sort(), [
    'MONGODB_URL', 'REDIS_URL', 'S3_ACCESS_KEY', 'S3_BUCKET', 'S3_ENDPOINT', 'S3_REGION', 'S3_SECRET_KEY',
  ]);
  t.match(env.REDIS_URL, /^redis:\/\/127\.0\.0\.1:\d+$/);
  t.match(env.MONGODB_URL, /^mongodb:\/\/127\.0\.0\.1:\d+\/rdt$/);
  t.match(env.S3_ENDPOINT, /^http:\/\/127\.0\.0\.1:\d+$/);
  t.equal(env.S3_REGION, 'us-east-1');
  t.equal(env.S3_BUCKET, 'rdt-media');
  t.ok((env.S3_SECRET_KEY ?? '').length >= 32, 'random secret');

  const text = await readFile(join(dir, 'env'), 'utf8');
  const lines = Object.entries(env).map(([k, v]) => `${k}=${v}`);
  t.same(text.trimEnd().split('\n').sort(), lines.sort());
  t.equal((await stat(join(dir, 'env'))).mode & 0o777, 0o600);

  // Coexists with the stack with-stack.ts may have started for this run.
  for (const k of ['REDIS_URL', 'MONGODB_URL', 'S3_ENDPOINT']) {
    if (process.env[k]) t.not(env[k], process.env[k], `${k} differs from the outer stack`);
  }
  t.notOk([stack.redis.port, stack.mongo.port, stack.s3.port].includes(6379), 'never the default redis port');
});

t.test('a second launcher on the same dir is refused', async (t) => {
  await t.rejects(startStack({ dir }), /already running/);
});

t.test('redis answers', async (t) => {
  const r = new Redis(env.REDIS_URL!);
  t.teardown(() => r.disconnect());
  await r.set('stack-test', 'hello');
  t.equal(await r.get('stack-test'), 'hello');
  t.equal(await r.config('GET', 'maxmemory-policy').then((v) => (v as string[])[1]), 'noeviction');
});

t.test('mongo (FerretDB) answers', async (t) => {
  const client = new MongoClient(env.MONGODB_URL!);
  t.teardown(() => client.close());
  const col = client.db().collection('stack_test');
  await col.insertOne({ _id: 'a' as never, n: 1 });
  t.same(await col.find({}, { projection: { _id: 0 } }).toArray(), [{ n: 1 }]);
});

t.test('s3 answers and the bucket is private', async (t) => {
  const endpoint = new URL(env.S3_ENDPOINT!);
  const s3 = new MinioClient({
    endPoint: endpoint.hostname,
    port: Number(endpoint.port),
    useSSL: false,
    accessKey: env.S3_ACCESS_KEY!,
    secretKey: env.S3_SECRET_KEY!,
    region: env.S3_REGION!,
    pathStyle: true,
  });
  await s3.putObject(env.S3_BUCKET!, 'dir/hello.bin', Buffer.from([1, 2, 3, 4]));
  const chunks: Buffer[] = [];
  for await (const c of await s3.getObject(env.S3_BUCKET!, 'dir/hello.bin')) chunks.push(c as Buffer);
  t.same([...Buffer.concat(chunks)], [1, 2, 3, 4]);

  const anon = await fetch(`${env.S3_ENDPOINT}/${env.S3_BUCKET}/dir/hello.bin`);
  await anon.arrayBuffer();
  t.equal(anon.status, 403, 'anonymous GET refused');
});

t.test('redis restarts on the same port with its data (AOF)', async (t) => {
  const port = stack.redis.port;
  const oldPid = stack.redis.pid;
  await stack.redis.stop();
  t.equal(stack.redis.pid, undefined);
  t.notOk(await accepts(port), 'port closed while stopped');
  await stack.redis.start();
  t.equal(stack.redis.port, port);
  t.not(stack.redis.pid, oldPid);
  const r = new Redis(env.REDIS_URL!);
  t.teardown(() => r.disconnect());
  t.equal(await r.get('stack-test'), 'hello');
});

t.test('ferretdb survives SIGKILL and restarts with its data', async (t) => {
  await stack.mongo.kill('SIGKILL');
  t.notOk(await accepts(stack.mongo.port));
  await stack.mongo.start();
  const client = new MongoClient(env.MONGODB_URL!);
  t.teardown(() => client.close());
  t.equal(await client.db().collection('stack_test').countDocuments(), 1);
});

t.test('stop closes every port', async (t) => {
  const ports = [stack.redis.port, stack.mongo.port, stack.s3.port];
  await stack.stop();
  for (const p of ports) t.notOk(await accepts(p), `port ${p} closed`);
  t.equal(stack.redis.pid ?? stack.mongo.pid ?? stack.s3.pid, undefined, 'no process left');
  await t.rejects(stat(join(dir, 'stack.pid')), 'pid file removed');
  await stack.stop(); // twice is fine
});

function accepts(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const sock = connect({ host: '127.0.0.1', port });
    sock.once('connect', () => {
      sock.destroy();
      resolve(true);
    });
    sock.once('error', () => resolve(false));
  });
}
