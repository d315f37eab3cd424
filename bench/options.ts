// Command-line options of `npm run bench` and the sizes of each figure in full and quick mode.

// `shards` and `dist-media` run on a second, distributed stack (bench/distributed.ts), started
// when either is asked for; `revocation` (T5) and `cpu` (T6) on the single stack like the rest.
export const PHASES = ['baselines', 'json', 'worker', 'e2e', 'media', 'scaling', 'revocation', 'cpu', 'shards', 'dist-media'] as const
export type Phase = (typeof PHASES)[number]

export interface BenchOptions {
  quick: boolean
  /** Rounds per figure; the median is reported. */
  rounds: number
  phases: Set<Phase>
  /** Run the gateway and workers under `node --cpu-prof` and summarise where the time went. */
  profile: boolean
  /** Keep the stack directory (data and logs) afterwards. */
  keep: boolean
  /** Seconds of each closed-loop autocannon run (B1, T1, T1b), after `warmupSeconds`. */
  closedSeconds: number
  warmupSeconds: number
  /** Seconds of each open-loop run (T1a). */
  openSeconds: number
  connections: number
  pipelining: number
  /** Seconds of the queue.add loop (B2). */
  addSeconds: number
  /** Documents per insertMany round (B3). */
  insertDocs: number
  /** Sessions pre-filled for the drain (T2, T4a). */
  drainSessions: number
  /** Seconds of the end-to-end run at 50% of the T1 maximum (T2a). */
  e2eSeconds: number
  e2eRounds: number
  /**
   * `--e2e-rate N`: T2a's method at N req/s instead of 50% of T2, so that two builds or settings
   * are compared at one load (T2a's own rate moves with T2). Its rounds are printed, not reported as T2a.
   */
  e2eRate?: number
  /** Photos per media round (B4, T3) and their concurrency. */
  photos: number
  photoConcurrency: number
  /** Tokens the load is spread over (the per-token rate limit stays on, as in production). */
  tokens: number
  /** T5: tokens revoked one after another with the CLI, each watched at 2 gateways. */
  revocations: number
  /** T6: seconds of open-loop load with a worker draining, before waiting for the backlog to empty. */
  cpuSeconds: number
  /** T6's rate when the run has no T2 figure to take half of (`--only cpu`). */
  cpuDefaultRate: number
}

export function parseOptions(argv: string[]): BenchOptions {
  const has = (f: string) => argv.includes(f)
  const value = (f: string) => {
    const i = argv.findIndex((a) => a === f || a.startsWith(`${f}=`))
    if (i < 0) return undefined
    return argv[i]!.includes('=') ? argv[i]!.slice(f.length + 1) : argv[i + 1]
  }
  for (const a of argv) {
    if (
      a.startsWith('--') &&
      !['--quick', '--profile', '--keep', '--rounds', '--only', '--e2e-rate', '--help'].includes(a.split('=')[0]!)
    ) {
      throw new Error(`unknown option ${a} (see bench/README.md)`)
    }
  }
  const quick = has('--quick')
  const only = value('--only')
  const phases = new Set<Phase>(only !== undefined ? (only.split(',').filter(Boolean) as Phase[]) : PHASES)
  for (const p of phases) if (!PHASES.includes(p)) throw new Error(`--only: unknown phase "${p}" (one of ${PHASES.join(', ')})`)
  const rounds = value('--rounds') ? Number(value('--rounds')) : quick ? 1 : 3
  if (!Number.isInteger(rounds) || rounds < 1 || rounds > 20) throw new Error('--rounds must be 1-20')
  const drainSessions = quick ? 3_000 : 100_000
  const e2eRate = value('--e2e-rate') === undefined ? undefined : Number(value('--e2e-rate'))
  if (e2eRate !== undefined && !(Number.isInteger(e2eRate) && e2eRate > 0)) throw new Error('--e2e-rate must be a positive integer (req/s)')
  return {
    quick,
    rounds,
    phases,
    profile: has('--profile'),
    keep: has('--keep'),
    closedSeconds: quick ? 3 : 10,
    warmupSeconds: quick ? 1 : 3,
    openSeconds: quick ? 4 : 20,
    connections: 100,
    pipelining: 10,
    addSeconds: quick ? 2 : 5,
    // B3 inserts as many documents as T2 drains, into an empty collection as T2 does: FerretDB's
    // cost per document grows with the collection, so a smaller B3 would flatter the baseline.
    insertDocs: drainSessions,
    drainSessions,
    e2eSeconds: quick ? 10 : 120,
    e2eRounds: quick ? 1 : rounds,
    e2eRate,
    photos: quick ? 16 : 256,
    photoConcurrency: 16,
    tokens: quick ? 500 : 4000,
    revocations: quick ? 10 : 50,
    cpuSeconds: quick ? 10 : 30,
    cpuDefaultRate: 300,
  }
}
