// The main job (`npm start`): open a volume in ./data (or the directory given
// as the first argument), run a short durable write/read workload, print the
// VDL, each segment's SCL and AZ and the throughput, and close.
import { openVolume } from 'hexad'

const arg = process.argv[2]
if (arg?.startsWith('-')) {
  // `npm start -- --help`, or a flag: usage, and no directory made out of it
  console.log('usage: npm start [-- DIR]   (default ./data; HEXAD_SECONDS=S sets the run time, default 2)')
  process.exit(arg === '--help' || arg === '-h' ? 0 : 2)
}
const dir = arg ?? './data'
const seconds = Number(process.env.HEXAD_SECONDS ?? 2)
if (!(seconds > 0)) { console.error(`HEXAD_SECONDS must be a number of seconds above 0, got "${process.env.HEXAD_SECONDS}"`); process.exit(2) }
const concurrency = 32

const started = performance.now()
const vol = await openVolume({ dir })
console.log(`opened ${dir} in ${(performance.now() - started).toFixed(0)} ms: epoch ${vol.epoch}, recovered VDL ${vol.vdl}`)

// Each MTR writes a 100-byte row into one page and bumps a counter on page 0.
const rows = 1024
let mtrs = 0
let bytes = 0
const deadline = performance.now() + seconds * 1000
const t0 = performance.now()
await Promise.all(Array.from({ length: concurrency }, async (_, worker) => {
  for (let i = worker; performance.now() < deadline; i += concurrency) {
    const row = Buffer.alloc(100, i & 0xff)
    const page = 1 + (i % rows)
    const counter = Buffer.alloc(8)
    counter.writeBigUInt64LE(BigInt(i))
    await vol.write([
      { pageId: page, ops: [{ op: 'write', offset: (i % 40) * 100, bytes: row }] },
      { pageId: 0, ops: [{ op: 'write', offset: 8 * (worker % 512), bytes: counter }] },
    ])
    mtrs++
    bytes += row.length + counter.length
  }
}))
const writeSecs = (performance.now() - t0) / 1000

const r0 = performance.now()
let reads = 0
for (let p = 0; p <= 200; p++) { await vol.readPage(p); reads++ }
const readSecs = (performance.now() - r0) / 1000

const s = vol.stats()
console.log(`wrote ${mtrs} durable MTRs in ${writeSecs.toFixed(2)} s: ${(mtrs / writeSecs).toFixed(0)} MTRs/s, ${(bytes / writeSecs / 1e6).toFixed(2)} MB/s of redo payload (concurrency ${concurrency})`)
console.log(`read ${reads} pages in ${(readSecs * 1000).toFixed(0)} ms: ${(reads / readSecs).toFixed(0)} reads/s (one segment each, no quorum)`)
console.log(`VDL ${s.vdl}  VCL ${s.vcl}  epoch ${s.epoch}  protection groups ${s.groups}`)
for (const seg of s.segments) {
  console.log(`  segment ${seg.id}  AZ ${seg.az}  ${seg.up ? 'up  ' : 'DOWN'}  SCL ${seg.scl}  acked ${(seg.bytesWritten / 1e6).toFixed(2)} MB  read latency ${seg.readLatencyMs} ms`)
}
await vol.close()
console.log('closed')
