// Renders the Kubernetes manifests with kustomize and validates them offline, since no cluster runs
// in CI: strict decoding into the Kubernetes API's own types plus this project's rules
// (deploy/kubernetes/validate/main.go). Both tools are built from pinned sources on first use.
//   npm run check:k8s
import { spawnSync } from 'node:child_process'
import { join } from 'node:path'
import { ensureK8sTools } from '../../stack/install.ts'
import { repoRoot } from '../../stack/paths.ts'

const { kustomize, validate } = await ensureK8sTools()
let failed = false
for (const dir of ['base', 'overlays/production']) {
  const rendered = spawnSync(kustomize, ['build', join(repoRoot, 'deploy', 'kubernetes', dir)], { encoding: 'utf8' })
  if (rendered.status !== 0) {
    console.error(`check-k8s: kustomize build ${dir} failed:\n${rendered.stderr}`)
    failed = true
    continue
  }
  const checked = spawnSync(validate, [], { input: rendered.stdout, encoding: 'utf8' })
  console.log(`check-k8s: ${dir}\n${checked.stdout.trimEnd()}`)
  if (checked.status !== 0) {
    console.error(checked.stderr.trimEnd())
    failed = true
  }
}
process.exit(failed ? 1 : 0)
