// Prometheus metrics of the retention run (worker/processors/retention.ts), on the worker's own
// registry (worker/metrics.ts). A run happens on one worker at a time, so the counters of one
// process count only its own runs: sum them over the workers. The "last run" gauges are set by
// the worker that ran it and stay 0 elsewhere: take their max over the workers.
import { Counter, Gauge, type Registry } from 'prom-client'

export interface RetentionRunSummary {
  startedAt: Date
  seconds: number
  /** 'done': nothing expired is left; 'budget': it stopped at RETENTION_MAX_PER_RUN, the next run goes on. */
  outcome: 'done' | 'budget'
}

export interface RetentionMetrics {
  /** Documents deleted from one collection. */
  removed(collection: string, n: number): void
  /** Objects removed from storage, and their bytes (from the documents' `size`). */
  objectsRemoved(n: number, bytes: number): void
  runFinished(run: RetentionRunSummary): void
  runFailed(): void
}

export function createRetentionMetrics(registry: Registry): RetentionMetrics {
  const removed = new Counter({
    name: 'rdt_retention_removed_total',
    help: 'Documents deleted by the retention run, by collection',
    labelNames: ['collection'],
    registers: [registry],
  })
  const objects = new Counter({
    name: 'rdt_retention_objects_removed_total',
    help: 'Objects (stored photos and conflicting photo uploads) deleted by the retention run',
    registers: [registry],
  })
  const bytes = new Counter({
    name: 'rdt_retention_bytes_removed_total',
    help: 'Bytes of the objects deleted by the retention run',
    registers: [registry],
  })
  const runs = new Counter({
    name: 'rdt_retention_runs_total',
    help: 'Retention runs by outcome: done (nothing expired left), budget (stopped at RETENTION_MAX_PER_RUN), failed',
    labelNames: ['outcome'],
    registers: [registry],
  })
  const lastRun = new Gauge({
    name: 'rdt_retention_last_run_timestamp_seconds',
    help: 'Start of the last retention run this worker finished (Unix seconds; 0 = none yet)',
    registers: [registry],
  })
  const lastDuration = new Gauge({
    name: 'rdt_retention_last_run_duration_seconds',
    help: 'Duration of the last retention run this worker finished',
    registers: [registry],
  })
  return {
    removed: (collection, n) => removed.inc({ collection }, n),
    objectsRemoved(n, b) {
      objects.inc(n)
      bytes.inc(b)
    },
    runFinished(run) {
      runs.inc({ outcome: run.outcome })
      lastRun.set(run.startedAt.getTime() / 1000)
      lastDuration.set(run.seconds)
    },
    runFailed: () => runs.inc({ outcome: 'failed' }),
  }
}
