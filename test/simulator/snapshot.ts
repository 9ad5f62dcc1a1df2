/**
 * Snapshots: `VM.snapshot` copies a VM, its disks (content included) and VIFs at one instant;
 * `VDI.snapshot` copies one disk. Snapshot records carry `is_a_snapshot`, `snapshot_of` and
 * `snapshot_time`, and get their own uuids.
 */
import { cbtOf } from './cbt.js'
import { asRefs, type PoolModel, withRef } from './pool-model.js'
import { createVtpm, vtpmContents } from './vm-methods.js'
import { xapiDate } from './xapi-date.js'
import { XapiFault } from './xapi-fault.js'
import { NULL_REF, type Fields } from './xapi-types.js'

/**
 * `VM.snapshot`: a halted copy of the VM whose disks show the VM's disks as they are at this
 * instant (copy-on-write; those in `ignoreVdis` left out), with copies of its VIFs.
 */
export async function snapshotVm(model: PoolModel, vm: string, nameLabel: string, ignoreVdis: readonly string[] = []): Promise<string> {
  const source = model.store.snapshot('VM', vm)
  if (source.is_a_snapshot === true || source.is_a_template === true) {
    throw new XapiFault('OPERATION_NOT_ALLOWED', ['snapshotting a snapshot or a template'])
  }
  for (const ref of ignoreVdis) model.store.get('VDI', ref)
  const now = xapiDate()

  // copy the disks first: the snapshot VM is added once its disks exist, like XAPI does
  const vbdCopies: Fields[] = []
  for (const vbdRef of asRefs(source.VBDs)) {
    const vbd = model.store.snapshot('VBD', vbdRef)
    const vdi = String(vbd.VDI)
    if (vbd.type === 'Disk' && vdi !== NULL_REF) {
      if (ignoreVdis.includes(vdi)) continue
      vbdCopies.push({ ...vbd, VDI: await snapshotVdi(model, vdi, now) })
    } else {
      vbdCopies.push(vbd)
    }
  }

  const snapshot = model.createVm({
    ...source,
    uuid: undefined,
    name_label: nameLabel,
    power_state: 'Halted',
    resident_on: NULL_REF,
    domid: -1,
    guest_metrics: NULL_REF,
    is_a_snapshot: true,
    snapshot_of: vm,
    snapshot_time: now,
    snapshots: [],
    parent: source.parent,
    children: [],
    current_operations: {},
    allowed_operations: ['destroy', 'export', 'clone', 'copy', 'revert'],
  })
  for (const vbd of vbdCopies) {
    const { uuid: _uuid, ...rest } = vbd
    model.createVbd({ ...rest, VM: snapshot, currently_attached: false, device: '' })
  }
  for (const vifRef of asRefs(source.VIFs)) {
    const { uuid: _uuid, ...vif } = model.store.snapshot('VIF', vifRef)
    model.createVif({ ...vif, VM: snapshot, currently_attached: false })
  }
  // the vTPM goes with the snapshot, its contents copied
  for (const vtpmRef of model.store.has(vm) ? asRefs(source.VTPMs) : []) {
    if (model.store.has(vtpmRef)) createVtpm(model, snapshot, model.store.get('VTPM', vtpmRef).is_unique === true, vtpmContents(model, vtpmRef))
  }
  model.store.update('VM', vm, { snapshots: [...asRefs(source.snapshots), snapshot], parent: snapshot })
  return snapshot
}

/** `VDI.snapshot`: the disk as it is now (copy-on-write: nothing copied), linked to it through `snapshot_of`. */
export async function snapshotVdi(model: PoolModel, vdi: string, now: string = xapiDate()): Promise<string> {
  const source = model.store.snapshot('VDI', vdi)
  const { uuid: sourceUuid, ...fields } = source
  const copy = model.createVdi({
    ...fields,
    is_a_snapshot: true,
    snapshot_of: vdi,
    snapshot_time: now,
    current_operations: {},
  })
  await model.files.snapshot(String(sourceUuid), String(model.store.get('VDI', copy).uuid))
  model.snapshotsTaken.set(String(sourceUuid), (model.snapshotsTaken.get(String(sourceUuid)) ?? 0) + 1)
  model.store.edit('VDI', vdi, 'snapshots', withRef(copy))
  cbtOf(model).snapshotTaken(vdi, copy)
  return copy
}
