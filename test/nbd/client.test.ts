/**
 * The NBD client against the simulated pool's NBD server (the one `VDI.get_nbd_info` announces):
 * TLS with the announced certificate, plain TCP, a foreign certificate refused, a connection cut
 * in the middle of a read (retried on another connection, within a bound), a refused export name.
 */
import assert from 'node:assert/strict'
import { open } from 'node:fs/promises'

import { generate } from 'selfsigned'

import { NbdConnection, NbdDisk, NbdError, type NbdExportInfo } from '../../src/nbd/index.js'
import { connectXapi, startSimulatedPool, type SimulatedPool, type Xapi } from '../helpers/pool.js'

const MiB = 1024 * 1024

async function rawBytes(path: string, offset: number, length: number): Promise<Buffer> {
  const file = await open(path, 'r')
  try {
    const buffer = Buffer.alloc(length)
    await file.read(buffer, 0, length, offset)
    return buffer
  } finally {
    await file.close()
  }
}

describe('NBD client (against the simulated pool)', () => {
  let pool: SimulatedPool
  let xapi: Xapi
  let disk: { uuid: string; $ref: string }
  let path: string

  const nbdInfo = async (): Promise<NbdExportInfo[]> => xapi.call<NbdExportInfo[]>('VDI.get_nbd_info', disk.$ref)

  before(async () => {
    pool = await startSimulatedPool({ profile: 'xcp-ng-8.3-nbd' })
    xapi = await connectXapi(pool)
    const [first] = pool.sim.vdisOf(pool.sim.findVm('vm2').uuid)
    disk = first!
    path = pool.sim.vdiPath(disk.uuid)
  })
  after(async () => {
    await xapi.disconnect()
    await pool.close()
  })
  afterEach(() => {
    pool.sim.faults.reset()
    pool.sim.setNetworkPurpose(['nbd'])
  })

  it('TLS (purpose nbd): reads of any offset and length over several connections are the disk bytes', async () => {
    const infos = await nbdInfo()
    assert.equal(infos.length, 1)
    assert.match(infos[0]!.cert!, /BEGIN CERTIFICATE/)
    const opened = pool.sim.nbd.opened
    const nbd = await NbdDisk.open(infos, { connections: 3 })
    try {
      assert.equal(nbd.size, 32 * MiB)
      assert.equal(pool.sim.nbd.opened - opened, 3)
      const ranges: [number, number][] = [[0, 64 * 1024], [5 * MiB + 4096 - 7, 300_000], [32 * MiB - 1, 1], [2 * MiB, 2 * MiB]]
      const reads = await Promise.all(ranges.map(([offset, length]) => nbd.read(offset, length)))
      for (const [index, [offset, length]] of ranges.entries()) {
        assert.ok(reads[index]!.equals(await rawBytes(path, offset, length)), `bytes at ${offset}`)
      }
      await assert.rejects(nbd.read(32 * MiB - 1, 2), RangeError)
    } finally {
      await nbd.close()
    }
  })

  it('plain TCP (purpose insecure_nbd): no certificate, the same bytes', async () => {
    pool.sim.setNetworkPurpose(['insecure_nbd'])
    const infos = await nbdInfo()
    assert.equal(infos[0]!.cert, '')
    const connection = await NbdConnection.open(infos[0]!)
    try {
      assert.ok((await connection.read(5 * MiB, 8192)).equals(await rawBytes(path, 5 * MiB, 8192)))
    } finally {
      await connection.close()
    }
  })

  it('no NBD purpose on any network: get_nbd_info is empty and the server closes connections', async () => {
    const [info] = await nbdInfo()
    pool.sim.setNetworkPurpose([])
    assert.deepEqual(await nbdInfo(), [])
    await assert.rejects(NbdConnection.open(info!), (error: unknown) => error instanceof NbdError && error.code === 'NBD_CONNECTION_LOST')
  })

  it('a certificate other than the one XAPI announced is refused, and so is another subject', async () => {
    const [info] = await nbdInfo()
    const other = await generate([{ name: 'commonName', value: 'sim-host' }], {
      keyType: 'ec',
      curve: 'P-256',
      extensions: [{ name: 'subjectAltName', altNames: [{ type: 2, value: 'sim-host' }] }],
    })
    const tlsFailed = (error: unknown): boolean => error instanceof NbdError && error.code === 'NBD_TLS_FAILED'
    await assert.rejects(NbdConnection.open({ ...info!, cert: other.cert }), tlsFailed)
    await assert.rejects(NbdConnection.open({ ...info!, subject: 'another-host' }), tlsFailed)
    // a client that skips STARTTLS is told TLS is required
    await assert.rejects(NbdConnection.open({ ...info!, cert: '' }), tlsFailed)
  })

  it('a refused export name is NBD_EXPORT_REFUSED, with the reason the server gave', async () => {
    const [info] = await nbdInfo()
    const refused = (pattern: RegExp) => (error: unknown) => error instanceof NbdError && error.code === 'NBD_EXPORT_REFUSED' && pattern.test(error.message)
    pool.sim.faults.refuseNextNbdExport('no such export today')
    await assert.rejects(NbdConnection.open(info!), refused(/no such export today/))
    await assert.rejects(NbdConnection.open({ ...info!, exportname: info!.exportname.replace(/session_id=.*/, 'session_id=OpaqueRef:lost') }), refused(/SESSION_INVALID/))
    await assert.rejects(NbdConnection.open({ ...info!, exportname: info!.exportname.replace(disk.uuid, '00000000-0000-0000-0000-000000000000') }), refused(/no VDI/))
  })

  it('a connection cut in the middle of a read: the read fails on it, NbdDisk sends it again on another one (bounded)', async () => {
    const infos = await nbdInfo()
    const expected = await rawBytes(path, 0, 256 * 1024)

    const single = await NbdConnection.open(infos[0]!)
    pool.sim.faults.cutNbdReadAfter(1000)
    await assert.rejects(single.read(0, 256 * 1024), (error: unknown) => error instanceof NbdError && error.code === 'NBD_CONNECTION_LOST')
    assert.equal(single.alive, false)
    await single.close()

    const retries: number[] = []
    const nbd = await NbdDisk.open(infos, { connections: 2, onRetry: event => retries.push(event.attempt) })
    try {
      pool.sim.faults.cutNbdReadAfter(1000)
      assert.ok((await nbd.read(0, 256 * 1024)).equals(expected))
      assert.deepEqual(retries, [1])
      await nbd.replaced()
      assert.equal(nbd.connections, 2, 'the cut connection was replaced')
    } finally {
      await nbd.close()
    }

    const bounded = await NbdDisk.open(infos, { connections: 1, retries: 0 })
    try {
      pool.sim.faults.cutNbdReadAfter(10)
      await assert.rejects(bounded.read(0, 4096), (error: unknown) => error instanceof NbdError && error.code === 'NBD_CONNECTION_LOST')
      // the next read goes on a new connection
      assert.ok((await bounded.read(0, 4096)).equals(expected.subarray(0, 4096)))
    } finally {
      await bounded.close()
    }
  })
})
