// `npm run cli -- <command>`: token and workspace administration. See cli/args.ts for the commands.
import { runCli } from './run.ts'

const code = await runCli(process.argv.slice(2))
// runCli has closed MongoDB and Redis. We still exit explicitly: after a refused Redis connection,
// ioredis leaves its connect-timeout timer armed on the dead socket, which would hold the process
// for connectTimeout. Output is flushed first so that nothing printed is lost.
await Promise.all([process.stdout, process.stderr].map((s) => new Promise<void>((resolve) => s.write('', () => resolve()))))
process.exit(code)
