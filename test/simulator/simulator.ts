/**
 * A simulated XenServer/XCP-ng pool served over HTTP on 127.0.0.1: the XAPI JSON-RPC protocol as
 * the `xen-api` client speaks it, plus the disk export/import endpoints, with disk contents kept
 * in sparse files. Tests drive it through this object (guest writes, faults, call log).
 */
import type { Server } from 'node:http'
import type { AddressInfo } from 'node:net'

import type { Faults } from './faults.js'
import { bytesOnSr, migrateVdi, type NbdEndpoint } from './cbt.js'
import { ArmedFaults } from './faults.js'
import { GuestBoot } from './guest-boot.js'
import { createXapiServer } from './http-server.js'
import { createGuest, seedDefaultVms, seedInfrastructure, softwareVersion, type GuestSpec, type SoftwareVersion } from './inventory.js'
import { ObjectStore } from './object-store.js'
import { DatabaseSaver, loadDatabase } from './persistence.js'
import { PoolModel } from './pool-model.js'
import { DEFAULT_PROFILE, profileNamed, withQuirks, type PoolProfile, type PoolQuirks, type ProfileName } from './profiles.js'
import { NbdServer, type NbdMode } from './nbd-server.js'
import { holdOperation, RpcDispatcher, type CallRecord } from './rpc.js'
import { Tasks } from './tasks.js'
import { VdiFiles } from './vdi-files.js'
import { addNetwork, addVtpm, removeNetwork, setVmState } from './vm-state.js'
import { vtpmContents } from './vm-methods.js'
import { NULL_REF, type SimRecord } from './xapi-types.js'

export interface SimulatorOptions {
  /** Folder holding `vdis/<uuid>.raw`. */
  dataDir: string
  user?: string
  password?: string
  /**
   * The version the pool plays, with every behaviour of that version (profiles.ts). Default:
   * the oldest supported, XenServer 6.5.
   */
  profile?: ProfileName
  /** Quirks made to last longer than the profile's own (never shorter). */
  quirks?: Partial<PoolQuirks>
  inventory?: 'default' | 'empty'
  /** 0 (default) picks a free port. */
  port?: number
  /**
   * Keep the pool database in `<dataDir>/pool.json` (default false): a restart finds the saved
   * pool instead of seeding one; the version reported still comes from the profile.
   */
  persist?: boolean
}

/** the name the host's certificate is issued to */
const NBD_SUBJECT = 'sim-host'

let credentials: Promise<{ key: string; cert: string }> | undefined

/** a self-signed certificate for the host, as XAPI generates one at install (one per process) */
function hostCredentials(): Promise<{ key: string; cert: string }> {
  credentials ??= generateCredentials()
  return credentials
}

async function generateCredentials(): Promise<{ key: string; cert: string }> {
  const { generate } = await import('selfsigned')
  const pems = await generate([{ name: 'commonName', value: NBD_SUBJECT }], {
    keyType: 'ec',
    curve: 'P-256',
    extensions: [{ name: 'subjectAltName', altNames: [{ type: 2, value: NBD_SUBJECT }] }],
  })
  return { key: pems.private, cert: pems.cert }
}

export class Simulator {
  readonly dataDir: string
  readonly user: string
  readonly password: string
  /** The version this pool plays. */
  readonly profile: PoolProfile
  readonly faults: Faults
  /** The guests booting: when their tools report after `VM.start`, and which never do (guest-boot.ts). */
  readonly guests: GuestBoot

  readonly #store: ObjectStore
  readonly #files: VdiFiles
  readonly #model: PoolModel
  readonly #tasks: Tasks
  readonly #armed = new ArmedFaults()
  readonly #rpc: RpcDispatcher
  readonly #server: Server
  /** the host's NBD server, on the profiles with CBT */
  readonly #nbd: NbdServer | undefined
  #url = ''
  #saver: DatabaseSaver | undefined

  private constructor(opts: SimulatorOptions) {
    this.dataDir = opts.dataDir
    this.user = opts.user ?? 'root'
    this.password = opts.password ?? 'secret'
    this.profile = withQuirks(profileNamed(opts.profile ?? DEFAULT_PROFILE), opts.quirks ?? {})
    this.#store = new ObjectStore(this.profile.absentFields)
    this.#files = new VdiFiles(opts.dataDir, { persist: opts.persist === true })
    this.#model = new PoolModel(this.#store, this.#files, this.profile.quirks.vdiInUseAfterExport)
    this.#tasks = new Tasks(this.#store, () => this.#model.infra.host)
    this.guests = new GuestBoot(this.#store)
    this.#nbd = this.profile.cbt ? this.#createNbdServer() : undefined
    const nbd = this.#nbd
    const endpoint: NbdEndpoint | undefined =
      nbd === undefined
        ? undefined
        : {
            address: '127.0.0.1',
            get port() {
              return nbd.port
            },
            cert: async () => (await this.#nbdCredentials()).cert,
            subject: NBD_SUBJECT,
          }
    this.#rpc = new RpcDispatcher(
      this.#store,
      { model: this.#model, tasks: this.#tasks, profile: this.profile, guests: this.guests, ...(endpoint === undefined ? {} : { nbd: endpoint }) },
      this.#armed,
      { user: this.user, password: this.password }
    )
    this.#server = createXapiServer({ model: this.#model, rpc: this.#rpc, tasks: this.#tasks, faults: this.#armed })
    this.faults = {
      cutExportAfter: bytes => this.#armed.armCut(bytes),
      stallExport: ms => this.#armed.armStall(ms),
      answerExportWithHtmlError: detail => this.#armed.armHtml(detail),
      failNextCall: (method, code, params) => this.#armed.armFailure(method, code, params),
      loseSession: () => this.#rpc.loseSessions(),
      destroyVdiBehindClient: uuid => this.#model.forgetVdi(this.#ref('VDI', uuid)),
      cutNbdReadAfter: (bytes, times) => this.#requireNbd().faults.cutReadAfter(bytes, times),
      refuseNextNbdExport: reason => this.#requireNbd().faults.refuseNextExport(reason),
      reset: () => {
        this.#armed.reset()
        this.#nbd?.faults.reset()
      },
    }
  }

  /** Seeds the inventory and starts serving on 127.0.0.1. */
  static async start(opts: SimulatorOptions): Promise<Simulator> {
    const sim = new Simulator(opts)
    const version = { product_version: sim.profile.productVersion, product_brand: sim.profile.productBrand }
    const saved = opts.persist === true ? await loadDatabase(opts.dataDir) : undefined
    await sim.#files.init({ resume: saved !== undefined })
    if (saved !== undefined) {
      for (const { cls, ref, fields } of saved) sim.#store.create(cls, fields, ref)
      sim.#model.recoverInfrastructure()
      sim.setSoftwareVersion(version)
    } else {
      seedInfrastructure(sim.#model, version)
      if (sim.profile.nbdPurpose !== undefined) sim.setNetworkPurpose([sim.profile.nbdPurpose])
      if ((opts.inventory ?? 'default') === 'default') await seedDefaultVms(sim.#model)
    }
    await sim.#nbd?.listen()
    if (opts.persist === true) {
      sim.#saver = new DatabaseSaver(sim.#store, opts.dataDir)
      await sim.#saver.saveNow()
    }
    await new Promise<void>((resolve, reject) => {
      sim.#server.once('error', reject)
      sim.#server.listen(opts.port ?? 0, '127.0.0.1', () => resolve())
    })
    sim.#url = `http://127.0.0.1:${(sim.#server.address() as AddressInfo).port}`
    return sim
  }

  /** `http://127.0.0.1:PORT` */
  get url(): string {
    return this.#url
  }

  /** Answers pending event polls, then stops serving (connections still busy after 250 ms are cut). */
  async close(): Promise<void> {
    this.guests.close()
    this.#rpc.close()
    await new Promise(resolve => setImmediate(resolve))
    await new Promise<void>(resolve => {
      const timer = setTimeout(() => this.#server.closeAllConnections(), 250)
      this.#server.close(() => {
        clearTimeout(timer)
        resolve()
      })
      this.#server.closeIdleConnections()
    })
    await this.#nbd?.close()
    await this.#saver?.close()
  }

  // --- CBT and NBD (profiles with CBT) ---------------------------------------------------------

  /**
   * Sets the purposes of the pool's network, as `xe network-param-add param-name=purpose
   * param-key=nbd uuid=...` does: `nbd` (TLS), `insecure_nbd` (plain), or none.
   */
  setNetworkPurpose(purposes: readonly ('nbd' | 'insecure_nbd')[]): void {
    if (!this.profile.cbt) throw new Error(`${this.profile.name} has no NBD`)
    this.#store.update('network', this.#model.infra.network, { purpose: [...purposes] })
  }

  /** The host's NBD server: its faults, and how many connections ever opened an export (`opened`). */
  get nbd(): NbdServer {
    return this.#requireNbd()
  }

  /** The host's TLS certificate (PEM), what `VDI.get_nbd_info` gives with a network of purpose `nbd`. */
  async nbdCertificate(): Promise<string> {
    return (await this.#nbdCredentials()).cert
  }

  /** Moves a disk to another SR (a storage migration): its CBT log starts anew. */
  migrateVdi(vdiUuid: string, srUuid: string): void {
    migrateVdi(this.#model, this.#ref('VDI', vdiUuid), this.#ref('SR', srUuid))
  }

  /** Bytes a VDI holds on its SR: its allocated data, or only its CBT log once its data was destroyed. */
  bytesOnSr(vdiUuid: string): Promise<number> {
    return bytesOnSr(this.#model, this.#ref('VDI', vdiUuid))
  }

  #requireNbd(): NbdServer {
    if (this.#nbd === undefined) throw new Error(`${this.profile.name} has no NBD server (no CBT before XenServer 7.3)`)
    return this.#nbd
  }

  #nbdCredentials(): Promise<{ key: string; cert: string }> {
    return hostCredentials()
  }

  #nbdMode(): NbdMode {
    const purposes = this.#store.refs('network').flatMap(ref => (this.#store.get('network', ref).purpose as string[] | undefined) ?? [])
    return purposes.includes('nbd') ? 'tls' : purposes.includes('insecure_nbd') ? 'plain' : 'off'
  }

  #createNbdServer(): NbdServer {
    return new NbdServer({
      mode: () => this.#nbdMode(),
      credentials: () => this.#nbdCredentials(),
      resolve: name => {
        const match = /^\/([0-9a-f-]{36})\?session_id=(.*)$/.exec(name)
        if (match === null) return { refused: `not an export name of this host: ${name}` }
        const [, uuid, session] = match
        if (!this.#rpc.isValidSession(session)) return { refused: 'SESSION_INVALID' }
        const ref = this.#store.resolve('VDI', uuid!)
        if (ref === undefined) return { refused: `no VDI ${uuid}` }
        const vdi = this.#store.get('VDI', ref)
        if (vdi.type === 'cbt_metadata') return { refused: `VDI ${uuid} holds only CBT metadata` }
        return {
          open: () => this.#files.reader(uuid!),
          size: Number(vdi.virtual_size),
          attach: () => {
            const vbd = this.#model.attachToControlDomain(ref)
            return () => this.#model.exportEnded(ref, vbd)
          },
        }
      },
    })
  }

  // --- inventory -------------------------------------------------------------------------------

  /** Creates a running VM with empty sparse disks on the default SR; returns uuids. */
  createVm(spec: GuestSpec): { vm: string; vdis: string[] } {
    const { vm, vdis } = createGuest(this.#model, spec)
    return { vm: this.#uuid('VM', vm), vdis: vdis.map(vdi => this.#uuid('VDI', vdi)) }
  }

  defaultSr(): string {
    return this.#uuid('SR', this.#model.infra.sr)
  }

  /** The uuid of the pool's other SR (not the default one). */
  secondSr(): string {
    const other = this.#store.refs('SR').find(ref => ref !== this.#model.infra.sr)
    if (other === undefined) throw new Error('the pool has one SR')
    return this.#uuid('SR', other)
  }

  defaultNetwork(): string {
    return this.#uuid('network', this.#model.infra.network)
  }

  /** A network on a VLAN (`vlan` -1: untagged); returns its uuid. */
  addNetwork(name: string, vlan: number): string {
    return this.#uuid('network', addNetwork(this.#model, name, vlan))
  }

  /** Destroys a network with its PIFs and the VIFs on it. */
  removeNetwork(uuid: string): void {
    removeNetwork(this.#model, this.#ref('network', uuid))
  }

  /** Sets VM fields as the VM's life would have (firmware, NVRAM, BIOS strings, platform...). */
  setVmState(uuid: string, fields: Record<string, unknown>): void {
    setVmState(this.#model, this.#ref('VM', uuid), fields)
  }

  /** Gives a VM a vTPM holding `contents` (base64); returns the vTPM's uuid. */
  addVtpm(vmUuid: string, contents: string): string {
    return this.#uuid('VTPM', addVtpm(this.#model, this.#ref('VM', vmUuid), contents))
  }

  /** The contents (base64) of a VM's vTPMs, as `VTPM.get_contents` answers them. */
  vtpmContentsOf(vmUuid: string): string[] {
    const vm = this.#store.get('VM', this.#ref('VM', vmUuid))
    return (vm.VTPMs as string[]).map(ref => vtpmContents(this.#model, ref))
  }

  /**
   * Changes what the master host reports (an update installed, as events show it); the pool's
   * behaviours stay those of its profile.
   */
  setSoftwareVersion(version: Partial<SoftwareVersion>): void {
    const host = this.#model.infra.host
    const current = this.#store.get('host', host).software_version as Record<string, string>
    this.#store.update('host', host, {
      software_version: softwareVersion({
        product_version: version.product_version ?? current.product_version!,
        product_brand: version.product_brand ?? current.product_brand!,
      }),
    })
  }

  /**
   * Another client's operation on an object (XO snapshotting a VM, an SR scan...): until the
   * returned function is called, a conflicting call answers OTHER_OPERATION_IN_PROGRESS.
   */
  holdOperation(cls: string, refOrUuid: string, operation: string): () => void {
    const task = this.#tasks.create(`another client: ${operation}`)
    const release = holdOperation(this.#store, cls, this.#ref(cls, refOrUuid), task, operation)
    return () => {
      release()
      this.#tasks.succeed(task, '')
    }
  }

  /**
   * Other clients' pending tasks fill the pool: every call that would create a task answers
   * TOO_MANY_PENDING_TASKS until the returned function ends them.
   */
  occupyPendingTasks(): () => void {
    return this.#tasks.occupy()
  }

  renameVdi(uuid: string, name: string): void {
    this.#store.update('VDI', this.#ref('VDI', uuid), { name_label: name })
  }

  /** Removes a VM with its snapshots and all their VBDs, VIFs and disk VDIs, whatever their state. */
  destroyVm(uuid: string): void {
    const vm = this.#ref('VM', uuid)
    for (const ref of [...(this.#store.get('VM', vm).snapshots as string[]), vm]) {
      const record = this.#store.get('VM', ref)
      const disks = (record.VBDs as string[]).map(vbd => this.#store.get('VBD', vbd)).filter(vbd => vbd.type === 'Disk')
      for (const vdi of new Set(disks.map(vbd => String(vbd.VDI)))) if (this.#store.has(vdi)) this.#model.forgetVdi(vdi)
      this.#store.update('VM', ref, { power_state: 'Halted' })
      this.#model.destroyVm(ref)
      const host = this.#model.infra.host
      this.#store.edit<string[]>('host', host, 'resident_VMs', refs => refs.filter(r => r !== ref))
    }
  }

  destroySr(uuid: string): void {
    this.#model.destroySr(this.#ref('SR', uuid))
  }

  // --- disks -----------------------------------------------------------------------------------

  /**
   * The sparse raw file of a VDI: a disk's holds its whole content; a snapshot's holds only the
   * chunks its disk overwrote since it was taken (copy-on-write: read a snapshot with `readVdi`).
   */
  vdiPath(vdiUuid: string): string {
    this.#ref('VDI', vdiUuid)
    return this.#files.path(vdiUuid)
  }

  /** `length` bytes of a VDI's content at `offset` (zeros past its end). */
  async readVdi(vdiUuid: string, offset: number, length: number): Promise<Buffer> {
    this.#ref('VDI', vdiUuid)
    const reader = await this.#files.reader(vdiUuid)
    try {
      const buffer = Buffer.alloc(length)
      await reader.read(buffer, 0, length, offset)
      return buffer
    } finally {
      await reader.close()
    }
  }

  /** Writes into a VDI as its guest would. */
  async writeGuest(vdiUuid: string, offset: number, data: Buffer): Promise<void> {
    const size = Number(this.#store.get('VDI', this.#ref('VDI', vdiUuid)).virtual_size)
    if (offset < 0 || offset + data.length > size) throw new RangeError(`write past the end of VDI ${vdiUuid}`)
    await this.#files.write(vdiUuid, offset, data)
  }

  /** How many snapshots were ever taken of a VDI (destroyed ones included): what they cost the SR. */
  snapshotsTakenOf(vdiUuid: string): number {
    return this.#model.snapshotsTaken.get(vdiUuid) ?? 0
  }

  /** sha256 (hex) of a VDI's whole raw content. */
  hashVdi(vdiUuid: string): Promise<string> {
    this.#ref('VDI', vdiUuid)
    return this.#files.hash(vdiUuid)
  }

  // --- reading records -------------------------------------------------------------------------

  /** A record by ref or uuid (throws if there is none). */
  record(cls: string, refOrUuid: string): SimRecord {
    return this.#record(cls, this.#ref(cls, refOrUuid))
  }

  all(cls: string): SimRecord[] {
    return this.#store.refs(cls).map(ref => this.#record(cls, ref))
  }

  /** A VM by uuid, or the guest VM (not a snapshot, template or control domain) with that name. */
  findVm(nameOrUuid: string): SimRecord {
    const byUuid = this.#store.resolve('VM', nameOrUuid)
    if (byUuid !== undefined) return this.#record('VM', byUuid)
    const found = this.all('VM').find(
      vm => vm.name_label === nameOrUuid && vm.is_a_snapshot !== true && vm.is_a_template !== true && vm.is_control_domain !== true
    )
    if (found === undefined) throw new Error(`no VM ${nameOrUuid}`)
    return found
  }

  /** The VDIs of a VM's disk VBDs, by userdevice. */
  vdisOf(vmUuid: string): SimRecord[] {
    const vm = this.#store.get('VM', this.#ref('VM', vmUuid))
    return (vm.VBDs as string[])
      .map(vbd => this.#store.get('VBD', vbd))
      .filter(vbd => vbd.type === 'Disk' && vbd.VDI !== NULL_REF)
      .sort((a, b) => Number(a.userdevice) - Number(b.userdevice))
      .map(vbd => this.#record('VDI', String(vbd.VDI)))
  }

  /** Calls received, oldest first. */
  get calls(): readonly CallRecord[] {
    return this.#rpc.calls
  }

  clearCalls(): void {
    this.#rpc.clearCalls()
  }

  #ref(cls: string, refOrUuid: string): string {
    const ref = this.#store.resolve(cls, refOrUuid)
    if (ref === undefined) throw new Error(`no ${cls} ${refOrUuid}`)
    return ref
  }

  #uuid(cls: string, ref: string): string {
    return String(this.#store.get(cls, ref).uuid)
  }

  #record(cls: string, ref: string): SimRecord {
    const spec = this.#store.snapshot(cls, ref)
    return { ...spec, uuid: String(spec.uuid), $ref: ref, $type: this.#store.classOf(ref)! }
  }
}
