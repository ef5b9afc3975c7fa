#!/usr/bin/env node
// Type-checks every ```ts block of README.md, so the examples a user copies compile without
// casts (issue 8, DESIGN 2.2). Each block becomes its own module in .readme-check/ (git-ignored),
// with `ringstate` and its subpaths mapped to the sources, and `tsc --noEmit` runs over them with
// the project's own compiler options. A block must therefore be self-contained: context it takes
// for granted is written into it with `declare const ...`.
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { spawnSync } from 'node:child_process'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

const root = join(dirname(fileURLToPath(import.meta.url)), '..')
const out = join(root, '.readme-check')
const readme = readFileSync(join(root, 'README.md'), 'utf8')

const blocks = []
const fence = /^```ts\n([\s\S]*?)^```$/gm
for (const match of readme.matchAll(fence)) {
  const line = readme.slice(0, match.index).split('\n').length
  blocks.push({ line, code: match[1] })
}

rmSync(out, { recursive: true, force: true })
mkdirSync(out, { recursive: true })
for (const [i, block] of blocks.entries()) {
  // `export {}` makes every block a module (top-level await, no clashes between blocks).
  writeFileSync(join(out, `readme-line-${block.line}.ts`), `${block.code}\nexport {}\n`)
}
writeFileSync(join(out, 'tsconfig.json'), JSON.stringify({
  extends: '../tsconfig.json',
  compilerOptions: {
    noUnusedLocals: false,
    paths: { ringstate: ['../ts/index.ts'], 'ringstate/*': ['../ts/*/index.ts'] },
  },
  include: ['*.ts'],
}, null, 2))

const tsc = join(root, 'node_modules', '.bin', 'tsc')
const result = spawnSync(tsc, ['--noEmit', '-p', out], { cwd: root, encoding: 'utf8' })
// Errors inside ts/ itself are the main type-check's to report; here only the blocks count.
const errors = `${result.stdout}${result.stderr}`.split('\n').filter((line) => line.startsWith('.readme-check/'))
const failedFiles = new Set(errors.map((line) => line.match(/readme-line-(\d+)\.ts/)?.[1]))
for (const line of errors) console.log(line.replace('.readme-check/readme-line-', 'README.md block at line '))
if (result.error) console.log(String(result.error))
const failed = result.error ? blocks.length : failedFiles.size
console.log(`readme: ${blocks.length - failed} passed, ${failed} failed`)
process.exit(failed === 0 ? 0 : 1)
