// Every example in examples/ runs to completion and prints what it promises.
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { spawnSync } from 'node:child_process'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'

const examples = path.join(path.dirname(path.dirname(fileURLToPath(import.meta.url))), 'examples')

function run(file: string, args: string[] = [], env: Record<string, string> = {}) {
  const r = spawnSync(process.execPath, [path.join(examples, file), ...args], { encoding: 'utf8', timeout: 60_000, env: { ...process.env, ...env } })
  assert.is(r.status, 0, `${file} exited ${r.status}: ${r.stderr}`)
  return r.stdout
}

test('every example has a test here', () => {
  const files = fs.readdirSync(examples).filter(f => f.endsWith('.js')).sort()
  assert.equal(files, ['counter-page.js', 'main.js'])
})

test('main: writes, reads, prints VDL and every segment with its AZ, and reopens its directory', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'hexad-main-'))
  try {
    const first = run('main.js', [dir], { HEXAD_SECONDS: '0.5' })
    assert.match(first, /recovered VDL 0/)
    assert.match(first, /durable MTRs/)
    for (let id = 0; id < 6; id++) assert.match(first, new RegExp(`segment ${id}  AZ ${Math.floor(id / 2)}  up`))
    const vdl = Number(/VDL (\d+)/.exec(first.split('\n').find(l => l.startsWith('VDL'))!)![1])
    assert.ok(vdl > 0)
    // A second run recovers what the first one acknowledged.
    const second = run('main.js', [dir], { HEXAD_SECONDS: '0.2' })
    const recovered = Number(/recovered VDL (\d+)/.exec(second)![1])
    assert.ok(recovered >= vdl, `recovered VDL ${recovered} < ${vdl}`)
  } finally {
    fs.rmSync(dir, { recursive: true, force: true })
  }
})

test('counter-page: a read at an older read point sees the older value', () => {
  const out = run('counter-page.js')
  assert.match(out, /counter 0 now 15, at LSN \d+ it was 5; counter 1 now 1/)
})

test.run()
