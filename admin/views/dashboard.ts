// The workspace dashboard's HTML: the range form, the headline figures and one card per chart.
// The route (admin/routes/reports.ts) loads the figures (admin/data/dashboard.ts).
import type { Dashboard } from '../data/dashboard.ts'
import { dayString } from '../data/sessions.ts'
import { columnChart, rateChart, splitBar } from './charts.ts'
import { html, type SafeHtml } from './html.ts'

export const DASHBOARD_RANGES = [7, 30, 90]

const pct = (a: number, b: number) => (b === 0 ? '—' : `${Math.round((a / b) * 1000) / 10}%`)

export function dashboardBody(d: Dashboard, days: number): SafeHtml {
  const v = d.validity
  const judged = v.too_early + v.on_time + v.too_late
  const compared = d.diagnoses.reduce((s, x) => s + x.compared, 0)
  const agreed = d.diagnoses.reduce((s, x) => s + x.agreed, 0)
  return html`<form method="get" class="row">
      <label>Range <select name="days">${DASHBOARD_RANGES.map((r) => html`<option value="${r}" ${r === days ? 'selected' : ''}>last ${r} days</option>`)}</select></label>
      <button type="submit" class="secondary">Show</button>
      <span class="muted">${dayString(d.from)} to ${dayString(new Date(d.to.getTime() - 1))} (UTC), by the day each session was received</span>
    </form>
    ${d.truncated ? html`<p class="error">More than ${d.sessions} sessions in this range: the figures cover the first ${d.sessions} only. Choose a shorter range.</p>` : ''}
    <div class="stats">
      <div class="stat"><b>${d.sessions}</b><span>readings</span></div>
      <div class="stat"><b>${d.flagged}</b><span>flagged (schema)</span></div>
      <div class="stat"><b>${pct(agreed, compared)}</b><span>user = classifier</span></div>
      <div class="stat"><b>${pct(v.on_time, judged)}</b><span>read on time</span></div>
      ${d.byState.map((s) => html`<div class="stat"><b>${s.n}</b><span>${s.state}</span></div>`)}
    </div>
    <div class="grid">
      ${readingsCard(d)}
      ${positivityCard(d)}
      ${agreementCard(d)}
      ${validityCard(d)}
      ${uploadsCard(d)}
    </div>`
}

function readingsCard(d: Dashboard): SafeHtml {
  return html`<div class="card" id="fig-readings"><h2>Readings per day</h2>
    ${columnChart(
      d.days.map((x) => x.slice(5)),
      [
        { label: 'valid', cls: 'bar', values: d.perDay.total.map((t, i) => t - (d.perDay.flagged[i] ?? 0)) },
        { label: 'flagged', cls: 'bar2', values: d.perDay.flagged },
      ],
      { title: 'Readings per day' },
    )}
    <div class="legend"><span><i class="c1"></i>valid</span><span><i class="c2"></i>flagged by validation</span></div>
  </div>`
}

function positivityCard(d: Dashboard): SafeHtml {
  const rows = d.diagnoses.map((x) => ({
    label: x.key,
    fraction: x.positive + x.negative ? x.positive / (x.positive + x.negative) : 0,
    text: `${pct(x.positive, x.positive + x.negative)} of ${x.positive + x.negative}${x.other ? ` (+${x.other} other)` : ''}`,
    cls: 'bar2',
  }))
  return html`<div class="card" id="fig-positivity"><h2>Positivity per diagnosis</h2>
    ${rows.length ? rateChart(rows, { title: 'Positivity per diagnosis' }) : html`<p class="muted">No results in this range.</p>`}
    <p class="muted">Positive: a user result ending in <code>_pos</code> or equal to <code>positive</code>; rate = positive / (positive + negative).</p>
  </div>`
}

function agreementCard(d: Dashboard): SafeHtml {
  const rows = d.diagnoses
    .filter((x) => x.compared)
    .map((x) => ({
      label: x.key,
      fraction: x.agreed / x.compared,
      text: `${pct(x.agreed, x.compared)} agree of ${x.compared}`,
      cls: 'bar3',
    }))
  return html`<div class="card" id="fig-agreement"><h2>User versus classifier</h2>
    ${
      rows.length
        ? rateChart(rows, { title: 'Agreement per diagnosis' })
        : html`<p class="muted">No session with both user and classifier results in this range.</p>`
    }
  </div>`
}

function validityCard(d: Dashboard): SafeHtml {
  const v = d.validity
  return html`<div class="card" id="fig-validity"><h2>Read timing</h2>
    ${splitBar(
      [
        { label: 'too early', value: v.too_early, cls: 'bar4' },
        { label: 'on time', value: v.on_time, cls: 'bar3' },
        { label: 'too late', value: v.too_late, cls: 'bar2' },
        { label: 'unknown', value: v.unknown, cls: 'bar5' },
      ],
      { title: 'Read timing' },
    )}
    <div class="legend"><span><i class="c4"></i>too early ${v.too_early}</span><span><i class="c3"></i>on time ${v.on_time}</span><span><i class="c2"></i>too late ${v.too_late}</span><span><i class="c5"></i>unknown ${v.unknown}</span></div>
    <p class="muted"><code>result.time_read</code> before <code>time_resolved</code>: too early; up to <code>time_expired</code>: on time; after: too late.</p>
  </div>`
}

function uploadsCard(d: Dashboard): SafeHtml {
  return html`<div class="card" id="fig-uploads"><h2>Ingest health: uploads per hour (last 48 h)</h2>
    ${columnChart(
      d.hours,
      [
        { label: 'sessions', cls: 'bar', values: d.perHour.sessions },
        { label: 'log batches', cls: 'bar4', values: d.perHour.logs },
        { label: 'photos', cls: 'bar3', values: d.perHour.media },
      ],
      { title: 'Uploads per hour', labelEvery: 12 },
    )}
    <div class="legend"><span><i class="c1"></i>sessions</span><span><i class="c4"></i>log batches</span><span><i class="c3"></i>photos</span></div>
    <p class="muted">Accepted uploads, by the hour the gateway received them (UTC). Refused requests are not recorded in MongoDB; the gateway counts them by reason in its <code>rdt_gateway_refusals_total</code> metric, for all workspaces together (README, Metrics).</p>
  </div>`
}
