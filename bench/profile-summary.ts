// Summarises a V8 .cpuprofile (node --cpu-prof): where the process spent its CPU, by package
// (our code, each dependency, node internals, GC, idle) and by function (self time), plus the
// inclusive time of our own functions. `tsx bench/profile-summary.ts <file.cpuprofile>` prints it.
import { readFileSync } from 'node:fs'

interface ProfileNode {
  id: number
  callFrame: { functionName: string; url: string; lineNumber: number }
  hitCount?: number
  children?: number[]
}

export interface ProfileSummary {
  file: string
  totalMs: number
  /** Busy time: everything but "(idle)". */
  busyMs: number
  byArea: { area: string; ms: number; pct: number }[]
  topSelf: { fn: string; area: string; ms: number; pct: number }[]
  ourInclusive: { fn: string; ms: number; pct: number }[]
}

/** Which package a frame belongs to. dist/ and the source tree are "ours". */
export function areaOf(url: string, functionName: string): string {
  if (!url) return functionName.startsWith('(') ? functionName : '(native)'
  if (url.startsWith('node:')) return 'node:' + url.slice(5).split('/')[0]
  const nm = url.lastIndexOf('/node_modules/')
  if (nm >= 0) {
    const rest = url.slice(nm + '/node_modules/'.length).split('/')
    return rest[0]!.startsWith('@') ? `${rest[0]}/${rest[1]}` : rest[0]!
  }
  return 'ours'
}

function short(url: string): string {
  const i = url.indexOf('/dist/')
  if (i >= 0) return url.slice(i + 6)
  const nm = url.lastIndexOf('/node_modules/')
  if (nm >= 0) return url.slice(nm + 14)
  return url
    .replace(/^file:\/\//, '')
    .split('/')
    .slice(-2)
    .join('/')
}

export function summarise(file: string, top = 25): ProfileSummary {
  const profile = JSON.parse(readFileSync(file, 'utf8')) as { nodes: ProfileNode[]; startTime: number; endTime: number; samples: number[] }
  const totalMs = (profile.endTime - profile.startTime) / 1000
  const sampleMs = totalMs / Math.max(1, profile.samples.length)
  const byId = new Map(profile.nodes.map((n) => [n.id, n]))
  const self = new Map<number, number>()
  for (const id of profile.samples) self.set(id, (self.get(id) ?? 0) + sampleMs)

  const areas = new Map<string, number>()
  const fns = new Map<string, { area: string; ms: number }>()
  for (const n of profile.nodes) {
    const ms = self.get(n.id) ?? 0
    if (!ms) continue
    const area = areaOf(n.callFrame.url, n.callFrame.functionName)
    areas.set(area, (areas.get(area) ?? 0) + ms)
    const fn = `${n.callFrame.functionName || '(anonymous)'} ${short(n.callFrame.url)}:${n.callFrame.lineNumber + 1}`
    const f = fns.get(fn) ?? { area, ms: 0 }
    f.ms += ms
    fns.set(fn, f)
  }
  const idle = areas.get('(idle)') ?? 0
  const busyMs = totalMs - idle

  // Inclusive time of our functions: each sample counts once per distinct function on its stack.
  const parent = new Map<number, number>()
  for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id)
  const inclusive = new Map<string, number>()
  for (const [id, ms] of self) {
    const seen = new Set<string>()
    for (let cur: number | undefined = id; cur !== undefined; cur = parent.get(cur)) {
      const n = byId.get(cur)!
      if (areaOf(n.callFrame.url, n.callFrame.functionName) !== 'ours') continue
      const fn = `${n.callFrame.functionName || '(anonymous)'} ${short(n.callFrame.url)}:${n.callFrame.lineNumber + 1}`
      if (seen.has(fn)) continue
      seen.add(fn)
      inclusive.set(fn, (inclusive.get(fn) ?? 0) + ms)
    }
  }
  const pct = (ms: number) => Math.round((ms / busyMs) * 1000) / 10
  return {
    file,
    totalMs,
    busyMs,
    byArea: [...areas]
      .filter(([a]) => a !== '(idle)')
      .sort((a, b) => b[1] - a[1])
      .map(([area, ms]) => ({ area, ms: Math.round(ms), pct: pct(ms) })),
    topSelf: [...fns]
      .filter(([, f]) => f.area !== '(idle)')
      .sort((a, b) => b[1].ms - a[1].ms)
      .slice(0, top)
      .map(([fn, f]) => ({ fn, area: f.area, ms: Math.round(f.ms), pct: pct(f.ms) })),
    ourInclusive: [...inclusive]
      .sort((a, b) => b[1] - a[1])
      .slice(0, top)
      .map(([fn, ms]) => ({ fn, ms: Math.round(ms), pct: pct(ms) })),
  }
}

export function formatSummary(s: ProfileSummary): string {
  const lines = [
    `${s.file}: ${(s.totalMs / 1000).toFixed(1)} s profiled, ${(s.busyMs / 1000).toFixed(1)} s busy (shares below are of busy time)`,
    '  by package (self time):',
  ]
  for (const a of s.byArea.slice(0, 15)) lines.push(`    ${a.pct.toFixed(1).padStart(5)}%  ${a.area}`)
  lines.push('  top functions (self time):')
  for (const f of s.topSelf) lines.push(`    ${f.pct.toFixed(1).padStart(5)}%  ${f.fn}  [${f.area}]`)
  lines.push('  our functions (inclusive time):')
  for (const f of s.ourInclusive.slice(0, 15)) lines.push(`    ${f.pct.toFixed(1).padStart(5)}%  ${f.fn}`)
  return lines.join('\n')
}

if (import.meta.url === `file://${process.argv[1]}`) {
  for (const f of process.argv.slice(2)) console.log(formatSummary(summarise(f)))
}
