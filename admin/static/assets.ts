// The panel's stylesheet and script, served from /static/. Kept as strings in a module so that
// the compiled build (dist/) carries them without a copy step.

export const ADMIN_CSS = String.raw`/* The admin panel's only stylesheet. No inline styles anywhere: the CSP forbids them. */
:root { --fg: #1d2330; --muted: #667085; --line: #e3e6ec; --bg: #f6f7f9; --accent: #1f6feb; --bad: #c62828; --good: #2e7d32; --warn: #b26a00; }
* { box-sizing: border-box; }
body { margin: 0; font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: var(--fg); background: var(--bg); }
a { color: var(--accent); text-decoration: none; }
a:hover { text-decoration: underline; }
header.top { display: flex; align-items: center; gap: 24px; padding: 10px 24px; background: #18202e; color: #fff; }
header.top a, header.top .link { color: #cfd8e6; }
header.top .brand { font-weight: 600; color: #fff; }
header.top nav a { margin-right: 16px; }
header.top nav a.on { color: #fff; font-weight: 600; }
header.top .who { margin-left: auto; color: #cfd8e6; }
main { padding: 20px 24px 48px; max-width: 1280px; }
h1 { font-size: 22px; margin: 0 0 12px; }
h1 small { color: var(--muted); font-weight: 400; font-size: 14px; }
h2 { font-size: 17px; margin: 24px 0 8px; }
.wshead { margin-bottom: 16px; }
.tabs { display: flex; gap: 4px; border-bottom: 1px solid var(--line); }
.tabs a { padding: 6px 12px; border: 1px solid transparent; border-bottom: none; border-radius: 6px 6px 0 0; color: var(--muted); }
.tabs a.on { background: #fff; border-color: var(--line); color: var(--fg); font-weight: 600; margin-bottom: -1px; }
table { border-collapse: collapse; width: 100%; background: #fff; border: 1px solid var(--line); }
th, td { text-align: left; padding: 6px 10px; border-bottom: 1px solid var(--line); vertical-align: top; }
th { background: #fafbfc; font-weight: 600; color: #344054; white-space: nowrap; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
tr.flagged td { background: #fff6f6; }
code, pre, .mono { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; font-size: 12.5px; }
pre { background: #fff; border: 1px solid var(--line); padding: 10px; overflow: auto; max-height: 480px; margin: 0; }
.card { background: #fff; border: 1px solid var(--line); border-radius: 8px; padding: 14px 16px; margin-bottom: 16px; }
.grid { display: grid; grid-template-columns: repeat(auto-fit, minmax(420px, 1fr)); gap: 16px; }
.grid .card { margin: 0; }
.stats { display: flex; gap: 16px; flex-wrap: wrap; margin-bottom: 16px; }
.stat { background: #fff; border: 1px solid var(--line); border-radius: 8px; padding: 10px 16px; min-width: 150px; }
.stat b { display: block; font-size: 22px; }
.stat span { color: var(--muted); }
form.filters { display: flex; flex-wrap: wrap; gap: 10px; align-items: end; margin-bottom: 12px; }
form.filters label, form.stack label { display: flex; flex-direction: column; font-size: 12px; color: var(--muted); gap: 2px; }
form.stack { display: flex; flex-direction: column; gap: 10px; max-width: 420px; }
form.row { display: flex; flex-wrap: wrap; gap: 10px; align-items: end; }
form.row label { display: flex; flex-direction: column; font-size: 12px; color: var(--muted); gap: 2px; }
form.inline { display: inline; margin: 0; }
input, select, button { font: inherit; padding: 5px 8px; border: 1px solid #c9ced8; border-radius: 6px; background: #fff; }
button { background: var(--accent); border-color: var(--accent); color: #fff; cursor: pointer; }
button.secondary { background: #fff; color: var(--fg); border-color: #c9ced8; }
button.danger { background: var(--bad); border-color: var(--bad); }
button.link { background: none; border: none; padding: 0; color: var(--accent); cursor: pointer; }
.badge { display: inline-block; padding: 1px 7px; border-radius: 10px; font-size: 12px; background: #eef1f5; color: #344054; }
.badge.good { background: #e7f4e8; color: var(--good); }
.badge.bad { background: #fdecec; color: var(--bad); }
.badge.warn { background: #fff4e0; color: var(--warn); }
.notice { background: #e7f4e8; border: 1px solid #b9dfbc; padding: 8px 12px; border-radius: 6px; }
.error { background: #fdecec; border: 1px solid #f3b7b7; padding: 8px 12px; border-radius: 6px; }
.muted { color: var(--muted); }
.pager { margin-top: 10px; display: flex; gap: 16px; }
.secret { background: #fffbe6; border: 1px solid #f0d27a; border-radius: 8px; padding: 14px 16px; margin-bottom: 16px; display: flex; gap: 20px; align-items: flex-start; }
.secret .dsn { word-break: break-all; font-size: 13px; padding: 6px 8px; background: #fff; border: 1px solid var(--line); border-radius: 4px; display: block; margin: 6px 0; }
.secret img.qr { width: 200px; height: 200px; image-rendering: pixelated; border: 1px solid var(--line); background: #fff; }
.gallery { display: flex; flex-wrap: wrap; gap: 12px; }
.gallery figure { margin: 0; background: #fff; border: 1px solid var(--line); border-radius: 6px; padding: 8px; }
.gallery img { display: block; max-width: 320px; max-height: 320px; }
.gallery figcaption { font-size: 12px; color: var(--muted); margin-top: 4px; }
.gallery .missing { width: 200px; height: 120px; display: flex; align-items: center; justify-content: center; background: #fafbfc; color: var(--bad); border: 1px dashed #f3b7b7; }
dl.fields { display: grid; grid-template-columns: max-content 1fr; gap: 4px 16px; margin: 0; }
dl.fields dt { color: var(--muted); }
dl.fields dd { margin: 0; }
.timeline { list-style: none; margin: 0; padding: 0; border-left: 2px solid var(--line); }
.timeline li { padding: 4px 0 8px 14px; position: relative; }
.timeline li::before { content: ""; position: absolute; left: -6px; top: 10px; width: 10px; height: 10px; border-radius: 50%; background: var(--accent); }
.timeline pre { max-height: 200px; margin-top: 4px; }
.sidebyside { display: grid; grid-template-columns: 1fr 1fr; gap: 12px; }
pre .diff { background: #fff3c4; display: inline-block; width: 100%; }
svg.chart { width: 100%; height: auto; display: block; }
svg.chart text { font: 11px system-ui, sans-serif; fill: #667085; }
svg.chart .bar { fill: #1f6feb; }
svg.chart .bar2 { fill: #e5534b; }
svg.chart .bar3 { fill: #2da44e; }
svg.chart .bar4 { fill: #bf8700; }
svg.chart .bar5 { fill: #8c959f; }
svg.chart .axis { stroke: #d0d7de; }
.legend { display: flex; gap: 14px; font-size: 12px; color: var(--muted); margin-top: 4px; flex-wrap: wrap; }
.legend i { display: inline-block; width: 10px; height: 10px; border-radius: 2px; margin-right: 4px; vertical-align: middle; }
.legend .c1 { background: #1f6feb; } .legend .c2 { background: #e5534b; } .legend .c3 { background: #2da44e; } .legend .c4 { background: #bf8700; } .legend .c5 { background: #8c959f; }
.login { max-width: 360px; margin: 60px auto; }
.card > h2:first-child { margin-top: 0; }
form.row { margin-bottom: 12px; }
fieldset.row { border: 1px solid var(--line); border-radius: 6px; padding: 4px 10px 8px; margin: 0; display: flex; gap: 10px; }
fieldset.row label { flex-direction: row; align-items: center; gap: 4px; color: var(--fg); font-size: 13px; }
.wshead h1 .badge { vertical-align: middle; }
h2.mono { font-size: 15px; }
`

export const ADMIN_JS = String.raw`// The panel's only script (loaded from 'self', so the CSP allows it): copy buttons and
// confirmation prompts. Every page works without it.
document.addEventListener('click', (event) => {
  const button = event.target instanceof Element ? event.target.closest('[data-copy]') : null
  if (!button) return
  const source = document.getElementById(button.getAttribute('data-copy') || '')
  if (!source) return
  const text = source.textContent || ''
  const done = () => {
    button.textContent = 'Copied'
    setTimeout(() => (button.textContent = 'Copy'), 2000)
  }
  if (navigator.clipboard) navigator.clipboard.writeText(text).then(done, () => selectText(source))
  else selectText(source)
})

function selectText(el) {
  const range = document.createRange()
  range.selectNodeContents(el)
  const sel = window.getSelection()
  if (sel) {
    sel.removeAllRanges()
    sel.addRange(range)
  }
}

document.addEventListener('submit', (event) => {
  const form = event.target
  if (form instanceof HTMLFormElement && form.dataset.confirm && !window.confirm(form.dataset.confirm)) event.preventDefault()
})
`
