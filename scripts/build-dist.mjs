#!/usr/bin/env node
// `npm run build` (and prepack): the compiled build that Node and Deno load, dist/.
//   1. tsc -p tsconfig.build.json: ES modules and .d.ts from ts/, without tests and fixtures,
//      `.ts` import specifiers rewritten to `.js`;
//   2. the files a module reads beside itself (new URL('./x', import.meta.url)) that tsc does not
//      emit: every non-TypeScript file under ts/ (the page's index.html, app.js, style.css, ...)
//      except test material, copied to the same place under dist/.
// dist/ is emptied first so that no file of a deleted source survives. Exits with tsc's status
// (files are still written on type errors, as tsc does, so the failure can be looked at).
import { spawnSync } from 'node:child_process'
import { cpSync, readdirSync, rmSync } from 'node:fs'
import { dirname, join, relative } from 'node:path'
import { fileURLToPath } from 'node:url'

const root = join(dirname(fileURLToPath(import.meta.url)), '..')
const source = join(root, 'ts')
const dist = join(root, 'dist')

/** Test material that stays out of dist/ (the same as tsconfig.build.json's exclude and package.json's files). */
const testOnly = /(^|\/)(testing|testdata)(\/|$)|(^|\/)smoke[^/]*$|\.(test|case|fixture)\.[cm]?[jt]s$|\.d\.[cm]?ts$|\.tsbuildinfo$/

rmSync(dist, { recursive: true, force: true })
const tsc = spawnSync(process.execPath, [join(root, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', join(root, 'tsconfig.build.json')], { cwd: root, stdio: 'inherit' })
if (tsc.error) {
  console.error(`[build-dist] could not run tsc: ${tsc.error.message}`)
  process.exit(1)
}
for (const entry of readdirSync(source, { recursive: true, withFileTypes: true })) {
  if (!entry.isFile()) continue
  const path = relative(source, join(entry.parentPath, entry.name))
  if (/\.[cm]?ts$/.test(path) || testOnly.test(path)) continue
  cpSync(join(source, path), join(dist, path))
}
process.exit(tsc.status ?? 1)
