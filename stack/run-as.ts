// `npm run gateway|worker|admin|cli`: runs one process next to `npm run stack` or `npm start`
// with only its own role's credentials from `.stack/env` (stack/roles.ts), as `npm start` gives
// them. Variables already set in the environment win over the file, as in shared/config.ts.
//   tsx stack/run-as.ts <role> <entry.ts> [args...]
import { join, resolve } from 'node:path'
import { pathToFileURL } from 'node:url'
import { defaultStackDir, repoRoot } from './paths.ts'
import { roleEnv, type Role } from './roles.ts'
import { readEnvFile } from './stack-dir.ts'

const [role, entry, ...args] = process.argv.slice(2)
if (!role || !entry || !['gateway', 'worker', 'admin', 'cli'].includes(role)) {
  console.error('usage: tsx stack/run-as.ts gateway|worker|admin|cli <entry.ts> [args...]')
  process.exit(2)
}

const env = roleEnv({ ...(await readEnvFile(join(defaultStackDir, 'env'))), ...process.env }, role as Role)
for (const k of Object.keys(process.env)) if (!(k in env)) delete process.env[k]
Object.assign(process.env, env)
process.argv = [process.argv[0]!, resolve(repoRoot, entry), ...args]
await import(pathToFileURL(resolve(repoRoot, entry)).href)
