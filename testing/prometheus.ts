// Reads figures out of Prometheus text exposition (what /metrics serves), for the metrics tests and the benchmark.

export interface Sample {
  name: string
  labels: Record<string, string>
  value: number
}

/** Every sample line of the text, with its labels parsed (label order does not matter). */
export function parseMetrics(text: string): Sample[] {
  const out: Sample[] = []
  for (const line of text.split('\n')) {
    if (!line || line.startsWith('#')) continue
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)$/.exec(line)
    if (!m) continue
    const labels: Record<string, string> = {}
    for (const l of (m[2] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) labels[l[1]!] = l[2]!
    out.push({ name: m[1]!, labels, value: Number(m[3]) })
  }
  return out
}

/** Sum of the samples named `name` whose labels include `labels` (0 when there are none). */
export function sumOf(samples: Sample[], name: string, labels: Record<string, string> = {}): number {
  return samples
    .filter((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v))
    .reduce((a, s) => a + s.value, 0)
}

export async function scrape(port: number): Promise<{ text: string; samples: Sample[]; contentType: string | null }> {
  const res = await fetch(`http://127.0.0.1:${port}/metrics`)
  if (!res.ok) throw new Error(`/metrics answered ${res.status}`)
  const text = await res.text()
  return { text, samples: parseMetrics(text), contentType: res.headers.get('content-type') }
}
