#!/usr/bin/env node
// Runs every compiled test file (dist/test/*.test.js) with uvu, one process
// per file so a file that crashes cannot hide the others, and ends with the
// line CI reads: "N passed, N failed, N skipped". Exits non-zero on any
// failure. Usage: node test/run.mjs [substring-filter]
import { spawnSync } from 'node:child_process'
import fs from 'node:fs'
import path from 'node:path'
import { fileURLToPath } from 'node:url'

const root = path.dirname(path.dirname(fileURLToPath(import.meta.url)))
const dir = path.join(root, 'dist', 'test')
const filter = process.argv[2] ?? ''
const files = fs.readdirSync(dir).filter(f => f.endsWith('.test.js') && f.includes(filter)).sort()
const uvu = path.join(root, 'node_modules', 'uvu', 'bin.js')
let passed = 0, failed = 0, skipped = 0
const broken = []
for (const f of files) {
  const started = Date.now()
  const r = spawnSync(process.execPath, [uvu, dir, `^${f.replace(/\./g, '\\.')}$`, '--no-color'], { cwd: root, encoding: 'utf8', maxBuffer: 64 << 20, timeout: 8 * 60_000 })
  const out = (r.stdout ?? '') + (r.stderr ?? '')
  process.stdout.write(out)
  const total = /Total:\s+(\d+)/.exec(out), pass = /Passed:\s+(\d+)/.exec(out), skip = /Skipped:\s+(\d+)/.exec(out)
  if (!total || !pass) {
    failed++
    broken.push(`${f}: no summary (exit ${r.status}${r.signal ? ', ' + r.signal : ''})`)
    continue
  }
  const t = Number(total[1]), p = Number(pass[1])
  passed += p
  failed += t - p
  skipped += skip ? Number(skip[1]) : 0
  if (t - p > 0 || r.status !== 0) { if (t === p) failed++; broken.push(`${f}: ${t - p} failed (exit ${r.status})`) }
  console.log(`# ${f}: ${p}/${t} in ${((Date.now() - started) / 1000).toFixed(1)} s`)
}
if (files.length === 0) { console.log('no test files found'); failed++ }
for (const b of broken) console.log(`FAILED ${b}`)
console.log(`${passed} passed, ${failed} failed, ${skipped} skipped`)
process.exit(failed ? 1 : 0)
