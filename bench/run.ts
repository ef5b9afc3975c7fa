// `npm run bench`: runs every bench/*.bench.ts in its own Bun process, one after another (the
// machine has 2 cores; running them together would measure contention, not the code).
// Each benchmark prints mitata's report and then its own table of ratios against the baselines
// it names. Pass file-name fragments to run a subset: `npm run bench -- bus cache`.
import { readdirSync } from 'node:fs'
import { join } from 'node:path'

const dir = import.meta.dir
const filters = process.argv.slice(2)
const files = readdirSync(dir)
  .filter((name) => name.endsWith('.bench.ts'))
  .filter((name) => filters.length === 0 || filters.some((f) => name.includes(f)))
  .sort()

console.log(`ringstate benchmarks on ${process.platform}-${process.arch}, Bun ${Bun.version}`)
let failed = 0
for (const name of files) {
  console.log(`\n######## ${name}`)
  const child = Bun.spawn([process.execPath, join(dir, name)], { stdio: ['ignore', 'inherit', 'inherit'] })
  if ((await child.exited) !== 0) {
    failed++
    console.error(`${name} failed`)
  }
}
process.exit(failed === 0 ? 0 : 1)
