// Server-rendered SVG charts. Only numbers and escaped labels go in; no script, no inline
// style (the CSP forbids it): colours come from classes in admin.css, hover text from <title>.
import { escapeHtml, raw, type SafeHtml } from './html.ts'

export interface Series {
  label: string
  /** CSS class: bar, bar2 … bar5 */
  cls: string
  values: number[]
}

const e = escapeHtml
const n = (x: number) => (Number.isInteger(x) ? String(x) : x.toFixed(1))

/** Vertical bars, stacked when several series are given; `labels` name each column. */
export function columnChart(labels: string[], series: Series[], opts: { height?: number; labelEvery?: number; title: string }): SafeHtml {
  const W = 520
  const H = opts.height ?? 220
  const left = 40
  const bottom = 28
  const top = 8
  const plotH = H - bottom - top
  const count = labels.length
  const totals = labels.map((_, i) => series.reduce((s, se) => s + (se.values[i] ?? 0), 0))
  const max = Math.max(1, ...totals)
  const step = (W - left - 4) / Math.max(1, count)
  const barW = Math.max(1, step * 0.8)
  const every = opts.labelEvery ?? Math.max(1, Math.ceil(count / 12))
  const parts: string[] = []
  parts.push(`<svg class="chart" viewBox="0 0 ${W} ${H}" role="img" aria-label="${e(opts.title)}" xmlns="http://www.w3.org/2000/svg">`)
  // y axis: 0, half, max
  for (const f of [0, 0.5, 1]) {
    const y = top + plotH - f * plotH
    parts.push(`<line class="axis" x1="${left}" x2="${W}" y1="${y}" y2="${y}"/>`)
    parts.push(`<text x="${left - 6}" y="${y + 4}" text-anchor="end">${n(Math.round(max * f * 10) / 10)}</text>`)
  }
  labels.forEach((label, i) => {
    const x = left + i * step + (step - barW) / 2
    let y = top + plotH
    for (const se of series) {
      const v = se.values[i] ?? 0
      if (v <= 0) continue
      const h = (v / max) * plotH
      y -= h
      parts.push(
        `<rect class="${e(se.cls)}" x="${x.toFixed(1)}" y="${y.toFixed(1)}" width="${barW.toFixed(1)}" height="${h.toFixed(1)}"><title>${e(label)}: ${e(se.label)} ${v}</title></rect>`,
      )
    }
    if (i % every === 0) parts.push(`<text x="${(x + barW / 2).toFixed(1)}" y="${H - 10}" text-anchor="middle">${e(label)}</text>`)
  })
  parts.push('</svg>')
  return raw(parts.join(''))
}

export interface HBar {
  label: string
  /** 0..1 */
  fraction: number
  text: string
  cls?: string
}

/** Horizontal bars of fractions (rates), one row per label. */
export function rateChart(rows: HBar[], opts: { title: string }): SafeHtml {
  const W = 520
  const rowH = 26
  const labelW = 130
  const textW = 130
  const H = Math.max(1, rows.length) * rowH + 8
  const plotW = W - labelW - textW
  const parts = [`<svg class="chart" viewBox="0 0 ${W} ${H}" role="img" aria-label="${e(opts.title)}" xmlns="http://www.w3.org/2000/svg">`]
  rows.forEach((r, i) => {
    const y = 4 + i * rowH
    const w = Math.max(0, Math.min(1, r.fraction)) * plotW
    parts.push(
      `<text x="${labelW - 8}" y="${y + 16}" text-anchor="end">${e(r.label.length > 26 ? r.label.slice(0, 25) + '…' : r.label)}</text>`,
    )
    parts.push(`<rect class="axis" fill="none" x="${labelW}" y="${y + 3}" width="${plotW}" height="${rowH - 8}"/>`)
    parts.push(
      `<rect class="${e(r.cls ?? 'bar')}" x="${labelW}" y="${y + 3}" width="${w.toFixed(1)}" height="${rowH - 8}"><title>${e(r.label)}: ${e(r.text)}</title></rect>`,
    )
    parts.push(`<text x="${labelW + plotW + 8}" y="${y + 16}">${e(r.text)}</text>`)
  })
  parts.push('</svg>')
  return raw(parts.join(''))
}

/** One horizontal bar split into parts (for example too early / on time / too late). */
export function splitBar(partsIn: { label: string; value: number; cls: string }[], opts: { title: string }): SafeHtml {
  const W = 520
  const H = 34
  const total = partsIn.reduce((s, p) => s + p.value, 0)
  const parts = [`<svg class="chart" viewBox="0 0 ${W} ${H}" role="img" aria-label="${e(opts.title)}" xmlns="http://www.w3.org/2000/svg">`]
  if (total === 0) {
    parts.push(`<rect class="axis" fill="none" x="0" y="4" width="${W}" height="26"/><text x="8" y="21">no data</text>`)
  } else {
    let x = 0
    for (const p of partsIn) {
      if (p.value <= 0) continue
      const w = (p.value / total) * W
      parts.push(
        `<rect class="${e(p.cls)}" x="${x.toFixed(1)}" y="4" width="${w.toFixed(1)}" height="26"><title>${e(p.label)}: ${p.value} (${Math.round((p.value / total) * 100)}%)</title></rect>`,
      )
      x += w
    }
  }
  parts.push('</svg>')
  return raw(parts.join(''))
}
