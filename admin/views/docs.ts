// The gateway API page: the OpenAPI document (gateway/openapi.ts) as HTML, with the panel's own
// stylesheet and no script.
import { escapeHtml, html, raw, type SafeHtml } from './html.ts'

// The OpenAPI document is walked by key path; its shape is the generator's (gateway/openapi.ts) and test/openapi.test.ts checks it.
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type Json = Record<string, any>

/** Inline Markdown of the descriptions: `code`, **bold** and [links](https://…); everything else escaped. */
function inline(text: string): string {
  return text
    .split(/(`[^`]+`)/)
    .map((part) =>
      part.length > 1 && part.startsWith('`') && part.endsWith('`')
        ? `<code>${escapeHtml(part.slice(1, -1))}</code>`
        : escapeHtml(part)
            .replace(/\*\*(.+?)\*\*/g, '<strong>$1</strong>')
            .replace(/\[([^\]]+)\]\((https:\/\/[^)\s]+)\)/g, '<a href="$2" rel="noreferrer">$1</a>'),
    )
    .join('')
}

/** The little Markdown the descriptions use: paragraphs of inline Markdown. */
function markdown(text: string | undefined): SafeHtml {
  if (!text) return html``
  return raw(
    text
      .split(/\n{2,}/)
      .map((p) => `<p>${inline(p)}</p>`)
      .join('\n'),
  )
}

function operationHtml(path: string, method: string, op: Json): SafeHtml {
  const params = (op.parameters ?? []) as Json[]
  const body = op.requestBody as Json | undefined
  const responses = Object.entries((op.responses ?? {}) as Json)
  return html`<section class="card" id="${op.operationId}">
    <h2><span class="badge">${method.toUpperCase()}</span> <code>${path}</code></h2>
    <p><strong>${op.summary}</strong></p>
    ${markdown(op.description)}
    ${
      params.length
        ? html`<h3>Parameters</h3><table><thead><tr><th>Name</th><th>In</th><th>Required</th><th>Description</th></tr></thead><tbody>${params.map(
            (p) =>
              html`<tr><td class="mono">${p.name}</td><td>${p.in}</td><td>${p.required ? 'yes' : 'no'}</td><td>${markdown(p.description)}${p.schema?.pattern ? html`<p class="muted">pattern <code>${p.schema.pattern}</code></p>` : ''}</td></tr>`,
          )}</tbody></table>`
        : ''
    }
    ${
      body
        ? html`<h3>Request body</h3>${markdown(body.description)}<p class="muted">Content types: ${Object.keys(body.content ?? {}).map((c, i) => html`${i ? ', ' : ''}<code>${c}</code>`)}${Object.values(
            (body.content ?? {}) as Json,
          )
            .map((c) => c.schema?.$ref as string | undefined)
            .filter(Boolean)
            .map((ref) => html` · schema <a href="#schema-${ref!.split('/').pop()}">${ref!.split('/').pop()}</a>`)}</p>`
        : ''
    }
    <h3>Responses</h3>
    <table><thead><tr><th>Status</th><th>Body</th><th>Description</th></tr></thead><tbody>${responses.map(([status, res]) => {
      const schema = res.content?.['application/json']?.schema as Json | undefined
      const codes = (schema?.properties?.error?.examples ?? []) as string[]
      const fields = Object.keys(schema?.properties ?? {})
      return html`<tr><td class="num"><b>${status}</b></td>
        <td class="mono">${codes.length ? html`error: ${codes.map((c, i) => html`${i ? ' | ' : ''}${c}`)}` : fields.map((f) => html`${f} `)}</td>
        <td>${markdown(res.description)}${Object.keys(res.headers ?? {}).map((h) => html`<p class="muted">Header <code>${h}</code>: ${res.headers[h].description}</p>`)}</td></tr>`
    })}</tbody></table>
  </section>`
}

export function docsPage(doc: Json): SafeHtml {
  const ops = Object.entries(doc.paths as Json).flatMap(([path, item]) =>
    Object.entries(item as Json).map(([method, op]) => ({ path, method, op: op as Json })),
  )
  return html`<h1>${doc.info.title} <small>OpenAPI ${doc.openapi} · version ${doc.info.version} · <a href="/docs/openapi.json">openapi.json</a></small></h1>
    <div class="card">${markdown(doc.info.description)}
      <h3>Servers</h3>${(doc.servers as Json[]).map((s) => html`<p><code>${s.url}</code>: ${raw(inline(String(s.description ?? '')))}</p>`)}</div>
    <table id="operations"><thead><tr><th>Method</th><th>Path</th><th>Summary</th><th>Statuses</th></tr></thead><tbody>${ops.map(
      ({ path, method, op }) =>
        html`<tr><td>${method.toUpperCase()}</td><td class="mono"><a href="#${op.operationId}">${path}</a></td><td>${op.summary}</td><td class="mono">${Object.keys(op.responses).join(' ')}</td></tr>`,
    )}</tbody></table>
    ${ops.map(({ path, method, op }) => operationHtml(path, method, op))}
    <h2>Schemas</h2>
    ${Object.entries((doc.components?.schemas ?? {}) as Json).map(
      ([name, schema]) =>
        html`<section class="card" id="schema-${name}"><h3>${name}</h3>${markdown(schema.description)}<pre>${JSON.stringify(schema, null, 2)}</pre></section>`,
    )}`
}
