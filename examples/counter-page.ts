// A custom compute node in a few lines: a page that holds 64-bit counters.
// Every increment is one mini-transaction (redo only: the compute never
// writes pages), and a read at an older read point sees the older value.
import { openVolume } from 'hexad'
import os from 'node:os'
import path from 'node:path'
import fs from 'node:fs'

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'hexad-counter-'))
const vol = await openVolume({ dir })
try {
  const PAGE = 7
  async function add(slot: number, delta: bigint): Promise<number> {
    const page = Buffer.from(await vol.readPage(PAGE))
    const next = page.readBigInt64LE(slot * 8) + delta
    const bytes = Buffer.alloc(8)
    bytes.writeBigInt64LE(next)
    const { lsn } = await vol.write([{ pageId: PAGE, ops: [{ op: 'write', offset: slot * 8, bytes }] }])
    return lsn
  }
  const first = await add(0, 5n)
  const pin = vol.pinReadPoint(first)           // keep the state as of `first` readable
  await add(0, 10n)
  await add(1, 1n)
  const now = Buffer.from(await vol.readPage(PAGE))
  const then = Buffer.from(await vol.readPage(PAGE, { at: pin.lsn }))
  console.log(`counter 0 now ${now.readBigInt64LE(0)}, at LSN ${pin.lsn} it was ${then.readBigInt64LE(0)}; counter 1 now ${now.readBigInt64LE(8)}`)
  pin.release()
} finally {
  await vol.close()
  fs.rmSync(dir, { recursive: true, force: true })
}
