/**
 * XAPI records for building restore point metadata in tests: taken from the real metadata Xen
 * Orchestra wrote (test/fixtures/xo-*-metadata.example.json), turned back into the shape the
 * xen-api client hands out (`$ref` on each record, links as refs).
 */
import { randomUUID } from 'node:crypto'
import { readFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { buildMetadata, writeMetadata, type BackupMetadata, type XapiRecordInput } from '../../src/repository/metadata.js'
import { formatTimestamp, metadataPath } from '../../src/repository/layout.js'
import type { RemoteHandler } from '../../src/repository/remote-handler.js'

type Json = Record<string, unknown>

export function loadReference(kind: 'full' | 'delta'): Json {
  const url = new URL(`../../../test/fixtures/xo-${kind}-metadata.example.json`, import.meta.url)
  return JSON.parse(readFileSync(fileURLToPath(url), 'utf8')) as Json
}

function withRefs(records: Json): XapiRecordInput[] {
  return Object.entries(records).map(([ref, record]) => {
    const clean: Json = { $ref: ref }
    for (const [key, value] of Object.entries(record as Json)) if (!key.startsWith('$')) clean[key] = value
    return clean as XapiRecordInput
  })
}

export interface ReferenceInput {
  readonly vm: XapiRecordInput
  readonly vmSnapshot: XapiRecordInput
  readonly vbds: XapiRecordInput[]
  readonly vdis: XapiRecordInput[]
  readonly vifs: XapiRecordInput[]
  readonly networks: XapiRecordInput[]
  readonly srs: XapiRecordInput[]
  readonly sourceVdis: XapiRecordInput[]
}

/** the XAPI records behind a reference metadata file */
export function recordsOf(reference: Json): ReferenceInput {
  const vdis = reference.vdis as Record<string, Json>
  const vifs = reference.vifs as Record<string, Json>
  return {
    vm: reference.vm as XapiRecordInput,
    vmSnapshot: reference.vmSnapshot as XapiRecordInput,
    vbds: withRefs(reference.vbds as Json),
    vdis: withRefs(vdis),
    vifs: withRefs(vifs),
    networks: Object.values(vifs).map(vif => ({ $ref: vif.network, uuid: vif.$network$uuid, name_label: vif.$network$name_label }) as XapiRecordInput),
    srs: Object.values(vdis).map(vdi => ({ $ref: vdi.SR, uuid: vdi.$SR$uuid }) as XapiRecordInput),
    sourceVdis: Object.values(vdis).map(vdi => ({ $ref: vdi.snapshot_of, uuid: vdi.$snapshot_of$uuid }) as XapiRecordInput),
  }
}

export interface TestDisk {
  /** source VDI uuid */
  readonly vdi: string
  readonly name?: string
  readonly vhd: string
  readonly differencing: boolean
  /** digest of the VHD's block-checksum list (what writeVhd returned) */
  readonly checksum?: { checksum: string }
}

/** metadata of a VM `vm` with the given disks, built from the reference's records */
export function testMetadata(vm: string, jobId: string, date: Date, disks: readonly TestDisk[]): BackupMetadata {
  const records = recordsOf(loadReference('full'))
  const snapshotVm = 'OpaqueRef:' + randomUUID()
  const vdis: XapiRecordInput[] = []
  const vbds: XapiRecordInput[] = []
  const sourceVdis: XapiRecordInput[] = []
  const vhds: Record<string, string> = {}
  const differencing: Record<string, boolean> = {}
  const blockChecksums: Record<string, string> = {}
  const template = records.vdis[0]!
  disks.forEach((disk, i) => {
    const ref = 'OpaqueRef:' + randomUUID()
    const sourceRef = 'OpaqueRef:' + randomUUID()
    const vbdRef = 'OpaqueRef:' + randomUUID()
    vdis.push({ ...template, $ref: ref, uuid: randomUUID(), name_label: disk.name ?? `disk ${i}`, snapshot_of: sourceRef, VBDs: [vbdRef] })
    sourceVdis.push({ $ref: sourceRef, uuid: disk.vdi })
    vbds.push({ ...records.vbds[0]!, $ref: vbdRef, uuid: randomUUID(), VM: snapshotVm, VDI: ref, userdevice: String(i) })
    vhds[ref] = disk.vhd
    differencing[ref] = disk.differencing
    if (disk.checksum !== undefined) blockChecksums[ref] = disk.checksum.checksum
  })
  return buildMetadata({
    job: { id: jobId },
    scheduleId: 'sched-1',
    timestamp: date,
    vm: { ...records.vm, uuid: vm },
    vmSnapshot: { ...records.vmSnapshot, $ref: snapshotVm, uuid: randomUUID() },
    vbds,
    vdis,
    vifs: records.vifs,
    networks: records.networks,
    srs: records.srs,
    sourceVdis,
    vhds,
    differencing,
    size: 0,
    excluded: [],
    blockChecksums,
  })
}

/** writes a restore point's metadata named after `date`; returns its path */
export async function writeTestRestorePoint(handler: RemoteHandler, vm: string, jobId: string, date: Date, disks: readonly TestDisk[]): Promise<string> {
  const path = metadataPath(vm, formatTimestamp(date))
  await writeMetadata(handler, path, testMetadata(vm, jobId, date, disks))
  return path
}
