// The gateway process with the fault suite's test hooks, given as dependencies: production code
// never reads them from its environment. RDT_FAULT_PAUSE_AFTER_CLAIM_MS (ms) makes the session
// route sleep between claiming the idempotency key and enqueueing, so a scenario can kill the
// gateway inside that window for real.
import { runGateway } from '../../gateway/run.ts'

const pause = Number(process.env.RDT_FAULT_PAUSE_AFTER_CLAIM_MS ?? 0)
if (!Number.isInteger(pause) || pause < 0) throw new Error('RDT_FAULT_PAUSE_AFTER_CLAIM_MS must be a whole number of ms')
await runGateway({ pauseAfterClaimMs: pause })
