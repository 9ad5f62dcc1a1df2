/**
 * A guest's state as an administrator or its own life leaves it, for tests: firmware and
 * platform fields, a vTPM with contents, VLAN networks. What a real pool would have after an
 * install, a first boot (`bios_strings` filled) or a `xe network-create` + `xe vlan-create`.
 */
import type { PoolModel } from './pool-model.js'
import { asRefs, withRef } from './pool-model.js'
import { createVtpm } from './vm-methods.js'
import { XapiFault } from './xapi-fault.js'
import type { Fields } from './xapi-types.js'

/** Sets fields of a VM as its life would have (only fields the pool's version has). */
export function setVmState(model: PoolModel, vm: string, fields: Fields): void {
  for (const field of Object.keys(fields)) {
    if (!model.store.hasField('VM', field)) throw new XapiFault('MESSAGE_METHOD_UNKNOWN', [`VM.set_${field}`])
  }
  model.store.update('VM', vm, fields)
}

/** A vTPM holding `contents` (base64), as one created while the VM was halted and used since. */
export function addVtpm(model: PoolModel, vm: string, contents: string): string {
  return createVtpm(model, vm, false, contents)
}

/** A network on the master, on a VLAN PIF of tag `vlan` (-1: an untagged one). */
export function addNetwork(model: PoolModel, name: string, vlan: number): string {
  const { store, infra } = model
  const network = store.create('network', { name_label: name, bridge: `xapi${store.refs('network').length}` })
  const pif = store.create('PIF', { device: 'eth0', network, host: infra.host, VLAN: vlan, physical: vlan === -1 })
  store.update('network', network, { PIFs: [pif] })
  store.edit('host', infra.host, 'PIFs', withRef(pif))
  return network
}

/** Removes a network, its PIFs and the VIFs on it (what `xe network-destroy` leaves). */
export function removeNetwork(model: PoolModel, network: string): void {
  const { store } = model
  const record = store.snapshot('network', network)
  for (const vif of asRefs(record.VIFs)) model.destroyVif(vif)
  for (const pif of asRefs(record.PIFs)) {
    const host = String(store.get('PIF', pif).host)
    if (store.has(host)) store.edit<string[]>('host', host, 'PIFs', refs => refs.filter(ref => ref !== pif))
    store.destroy('PIF', pif)
  }
  store.destroy('network', network)
}
