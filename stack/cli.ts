// `npm run stack`: run the local services in the foreground until Ctrl-C,
// for working on gateway/worker code with `source .stack/env`.
import { ensureBinaries } from './install.ts'
import { startStack, type Stack } from './launcher.ts'
import { onShutdownSignal } from './signals.ts'

let stack: Stack
try {
  stack = await startStack({ binaries: await ensureBinaries() })
} catch (err) {
  console.error(`stack: ${(err as Error).message}`)
  process.exit(1)
}

console.log(`stack running in ${stack.dir}`)
console.log(`  redis  ${stack.redis.url}`)
console.log(`  mongo  ${stack.env.MONGODB_URL}`)
console.log(`  s3     ${stack.s3.url}  (${stack.s3Server}, bucket ${stack.env.S3_BUCKET})`)
console.log('  users  per role (stack/roles.ts); TEST_INSPECTOR_* in the env file are root, for tests only')
console.log(`env file: ${stack.envFile}  (load it with: set -a; . ${stack.envFile}; set +a)`)
console.log('Ctrl-C to stop')

// The services are unref'd children, so something must keep us alive.
setInterval(() => {}, 1 << 30)

onShutdownSignal((signal) => {
  console.log(`\n${signal}: stopping stack`)
  stack.stop().then(
    () => process.exit(0),
    (err: unknown) => {
      console.error(err)
      process.exit(1)
    },
  )
})
