/** The class methods with behaviour beyond the generic field accessors. */
import { CBT_METHODS, type NbdEndpoint } from './cbt.js'
import { vmAllowedOperations } from './classes/vm.js'
import type { GuestBoot } from './guest-boot.js'
import type { PoolModel } from './pool-model.js'
import type { PoolProfile } from './profiles.js'
import { snapshotVdi, snapshotVm } from './snapshot.js'
import type { Tasks } from './tasks.js'
import { xapiDate } from './xapi-date.js'
import { XapiFault } from './xapi-fault.js'
import { destroyVtpms, VM_METHODS } from './vm-methods.js'
import { NULL_REF } from './xapi-types.js'

export interface MethodContext {
  readonly model: PoolModel
  readonly tasks: Tasks
  /** The version the pool plays: its method parameters, data model and quirks. */
  readonly profile: PoolProfile
  /** the session of the call (the first parameter), for the methods that hand it on */
  readonly session?: string
  /** the host's NBD server, on the profiles that have one */
  readonly nbd?: NbdEndpoint
  /** The guests booting: their tools report some time after `VM.start`. */
  readonly guests?: GuestBoot
}

export interface MethodSpec {
  /** Checks run before a task is created for `Async.*` (errors answered synchronously). */
  validate?(ctx: MethodContext, args: readonly unknown[]): void
  run(ctx: MethodContext, args: readonly unknown[]): unknown
}

const ref = (value: unknown, name = 'self'): string => {
  if (typeof value !== 'string') throw new XapiFault('FIELD_TYPE_ERROR', [name])
  return value
}

const arity =
  (method: string, ...counts: number[]) =>
  (_ctx: MethodContext, args: readonly unknown[]): void => {
    if (!counts.includes(args.length)) {
      throw new XapiFault('MESSAGE_PARAMETER_COUNT_MISMATCH', [method, Math.max(...counts), args.length])
    }
  }

function setPower(ctx: MethodContext, vm: string, running: boolean): void {
  const { store, infra } = ctx.model
  const current = store.get('VM', vm)
  if (current.is_a_snapshot === true || current.is_a_template === true) throw new XapiFault('OPERATION_NOT_ALLOWED', ['VM.start'])
  const expected = running ? 'Halted' : 'Running'
  if (current.power_state !== expected) {
    throw new XapiFault('VM_BAD_POWER_STATE', [vm, expected.toLowerCase(), String(current.power_state).toLowerCase()])
  }
  for (const vbd of current.VBDs as string[]) store.update('VBD', vbd, { currently_attached: running })
  for (const vif of current.VIFs as string[]) store.update('VIF', vif, { currently_attached: running })
  store.update('VM', vm, {
    power_state: running ? 'Running' : 'Halted',
    allowed_operations: vmAllowedOperations(running ? 'Running' : 'Halted'),
    resident_on: running ? infra.host : NULL_REF,
    domid: running ? 1 : -1,
  })
  if (running) ctx.guests?.onStart(vm)
  else ctx.guests?.onHalt(vm)
}

/** XAPI refuses an operation listed in a VM's `blocked_operations` with OPERATION_BLOCKED. */
function unlessBlocked(operation: string, spec: MethodSpec): MethodSpec {
  const check = (ctx: MethodContext, args: readonly unknown[]): void => {
    const vm = ref(args[0])
    const blocked = ctx.model.store.get('VM', vm).blocked_operations as Record<string, string>
    if (Object.hasOwn(blocked, operation)) throw new XapiFault('OPERATION_BLOCKED', [vm, blocked[operation]])
  }
  return {
    validate(ctx, args) {
      spec.validate?.(ctx, args)
      check(ctx, args)
    },
    run(ctx, args) {
      check(ctx, args)
      return spec.run(ctx, args)
    },
  }
}

export const METHODS: Readonly<Record<string, MethodSpec>> = {
  'VM.snapshot': unlessBlocked('snapshot', {
    validate(ctx, args) {
      if (ctx.profile.snapshotIgnoreVdis) arity('VM.snapshot', 2, 3)(ctx, args)
      else arity('VM.snapshot', 2)(ctx, args)
    },
    run: (ctx, [vm, name, ignore]) =>
      snapshotVm(ctx.model, ref(vm), String(name), Array.isArray(ignore) ? ignore.map(v => ref(v, 'ignore_vdis')) : []),
  }),
  'VDI.snapshot': { run: (ctx, [vdi]) => snapshotVdi(ctx.model, ref(vdi)) },
  'VDI.resize': { run: (ctx, [vdi, size]) => ctx.model.resizeVdi(ref(vdi), Number(size)) },
  'VM.destroy': unlessBlocked('destroy', {
    run: (ctx, [vm]) => {
      const vtpms = ctx.model.store.get('VM', ref(vm)).VTPMs
      ctx.model.destroyVm(ref(vm))
      destroyVtpms(ctx.model, vtpms)
    },
  }),
  'VDI.destroy': { run: (ctx, [vdi]) => ctx.model.destroyVdi(ref(vdi)) },
  'VBD.destroy': { run: (ctx, [vbd]) => ctx.model.destroyDetachedVbd(ref(vbd)) },
  'VBD.unplug': { run: (ctx, [vbd]) => ctx.model.unplugVbd(ref(vbd)) },
  'VIF.destroy': { run: (ctx, [vif]) => ctx.model.destroyVif(ref(vif)) },
  'VM.update_allowed_operations': {
    run: (ctx, [vm]) => {
      const record = ctx.model.store.get('VM', ref(vm))
      if (record.is_a_snapshot === true) return
      const blocked = record.blocked_operations as Record<string, string>
      const allowed = vmAllowedOperations(String(record.power_state)).filter(operation => !Object.hasOwn(blocked, operation))
      ctx.model.store.update('VM', ref(vm), { allowed_operations: allowed })
    },
  },
  'VM.get_allowed_VBD_devices': { run: (ctx, [vm]) => ctx.model.allowedVbdDevices(ref(vm)) },
  'VM.get_allowed_VIF_devices': { run: (ctx, [vm]) => ctx.model.allowedVifDevices(ref(vm)) },
  'VM.start': unlessBlocked('start', { run: (ctx, [vm]) => setPower(ctx, ref(vm), true) }),
  'VM.clean_shutdown': unlessBlocked('clean_shutdown', { run: (ctx, [vm]) => setPower(ctx, ref(vm), false) }),
  'VM.hard_shutdown': unlessBlocked('hard_shutdown', { run: (ctx, [vm]) => setPower(ctx, ref(vm), false) }),
  'host.get_servertime': { run: (ctx, [host]) => (ctx.model.store.get('host', ref(host)), xapiDate()) },
  'host.get_server_localtime': { run: (ctx, [host]) => (ctx.model.store.get('host', ref(host)), xapiDate()) },
  'task.create': { run: (ctx, [label, description]) => ctx.tasks.create(String(label ?? ''), String(description ?? '')) },
  'task.destroy': { run: (ctx, [task]) => ctx.tasks.destroy(ref(task)) },
  'task.cancel': { run: (ctx, [task]) => ctx.tasks.cancel(ref(task)) },
  ...VM_METHODS,
  ...CBT_METHODS,
}
