// Starts the gateway. The process itself is gateway/run.ts; the app is gateway/app.ts.
import { runGateway } from './run.ts'

await runGateway()
