import { homedir } from 'node:os'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'

/** Repository root, found from this file's location so that cwd never matters. */
export const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '..')

/** Default persistent stack directory (git-ignored). */
export const defaultStackDir = join(repoRoot, '.stack')

/**
 * Built binaries live outside the work tree so that a fresh clone or a new
 * worktree on the same machine reuses them instead of spending minutes on Go
 * builds again.
 */
export const binCacheDir = join(process.env.XDG_CACHE_HOME || join(homedir(), '.cache'), 'rdt-ingest', 'bin')
