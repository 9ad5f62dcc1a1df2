/**
 * The report of a run, sent through the transports XO has loaded, as XO's backup reports are:
 * `xo.sendEmail({ to, subject, markdown })` (transport-email), `xo.sendToXmppClient({ to,
 * message })` (transport-xmpp), `xo.sendSlackMessage({ message })` (transport-slack) and
 * `xo.sendIcinga2Status({ status, message })` (transport-icinga2). Each exists on `xo` only while
 * its plugin is loaded; a job's `reportWhen` (`never` when unset) says when to send, its
 * `reportRecipients` to whom (e-mail and XMPP). Markdown in the manner of XO's backup reports:
 * the job's global status, then per VM its status, duration, transferred size, speed, merges,
 * warnings and error.
 */
import type { HealthCheckResult, JobRunResult, VmRunResult } from '../lifecycle/job.js'
import { redactText } from './redact.js'
import type { XoReportTransports } from './xo.js'

export type ReportWhen = 'never' | 'failure' | 'always'

export interface ReportSettings {
  readonly reportWhen?: ReportWhen | undefined
  readonly reportRecipients?: readonly string[] | undefined
}

export interface RunOutcome {
  readonly jobName: string
  readonly start: number
  readonly end: number
  /** the lifecycle's result; absent when the run failed before any VM */
  readonly result?: JobRunResult
  readonly error?: string
}

export interface Report {
  readonly status: 'success' | 'failure' | 'partial'
  readonly subject: string
  readonly markdown: string
}

function size(bytes: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB']
  let value = bytes
  let unit = 0
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024
    unit++
  }
  return `${unit === 0 ? value.toFixed(0) : value.toFixed(2)} ${units[unit]}`
}

function duration(ms: number): string {
  const seconds = Math.round(ms / 1000)
  if (seconds < 60) return `${seconds} s`
  const minutes = Math.floor(seconds / 60)
  if (minutes < 60) return `${minutes} min ${seconds % 60} s`
  return `${Math.floor(minutes / 60)} h ${minutes % 60} min`
}

function speed(bytes: number, ms: number): string {
  return ms <= 0 ? '-' : `${size((bytes * 1000) / ms)}/s`
}

const ICON: Readonly<Record<string, string>> = { success: '✔', failure: '✖', partial: '⚠' }

/** one line: what a health check found */
function describeHealthCheck(check: HealthCheckResult): string {
  if (check.status === 'success') {
    return `passed ${ICON.success}: restored to SR ${check.sr}, started, guest tools ${check.guestTools ?? '?'} reported after ${duration(check.bootMs ?? 0)}; the copy was destroyed`
  }
  return `failed ${ICON.failure}: ${check.code === undefined ? '' : `${check.code}: `}${check.error ?? 'failed'}`
}

function vmSection(vm: VmRunResult): string[] {
  const transferred = vm.disks.reduce((total, disk) => total + disk.size, 0)
  const transferMs = vm.disks.reduce((total, disk) => total + disk.durationMs, 0)
  const merged = (vm.merges ?? []).reduce((total, merge) => total + merge.blocks, 0)
  const lines = [
    `### ${vm.name ?? vm.vm}`,
    '',
    `- **UUID**: ${vm.vm}`,
    `- **Status**: ${vm.status} ${ICON[vm.status] ?? ''}`.trimEnd(),
    ...(vm.start === undefined || vm.end === undefined ? [] : [`- **Duration**: ${duration(vm.end - vm.start)}`]),
    `- **Transfer size**: ${size(transferred)}`,
    `- **Transfer speed**: ${speed(transferred, transferMs)}`,
    ...vm.disks.map(disk => `  - disk \`${disk.name}\` (${disk.mode}): ${size(disk.size)} in ${duration(disk.durationMs)}, ${speed(disk.size, disk.durationMs)}`),
    `- **Merges**: ${vm.merges?.length ?? 0}${merged === 0 ? '' : ` (${merged} blocks)`}`,
    ...vm.excluded.map(disk => `- **Not backed up**: \`${disk.name}\`: ${disk.reason}`),
    ...(vm.healthCheck === undefined ? [] : [`- **Health check**: ${describeHealthCheck(vm.healthCheck)}`]),
    ...vm.warnings.map(warning => `- **Warning**: ${warning}`),
    ...(vm.error === undefined
      ? []
      : [
          `- **Error**: ${
            vm.failureDetail === undefined
              ? vm.error
              : `${vm.failureDetail.code}${[vm.failureDetail.step === undefined ? '' : ` at step ${vm.failureDetail.step}`, vm.failureDetail.disk === undefined ? '' : `, disk \`${vm.failureDetail.disk}\``].join('')}: ${vm.failureDetail.message}`
          }`,
        ]),
    '',
  ]
  return lines
}

export function buildReport({ jobName, start, end, result, error }: RunOutcome): Report {
  const status: Report['status'] = result === undefined ? 'failure' : result.status
  const vms = result?.vms ?? []
  const succeeded = vms.filter(vm => vm.status === 'success').length
  const transferred = vms.reduce((total, vm) => total + vm.disks.reduce((sum, disk) => sum + disk.size, 0), 0)
  const lines = [
    `##  Global status: ${status} ${ICON[status] ?? ''}`.trimEnd(),
    '',
    `- **Job**: ${jobName} (continuous delta backup)`,
    `- **Start time**: ${new Date(start).toISOString()}`,
    `- **End time**: ${new Date(end).toISOString()}`,
    `- **Duration**: ${duration(end - start)}`,
    `- **Successes**: ${succeeded} / ${vms.length}`,
    `- **Transfer size**: ${size(transferred)}`,
    ...(error === undefined ? [] : [`- **Error**: ${error}`]),
    '',
    '---',
    '',
  ]
  const failed = vms.filter(vm => vm.status !== 'success')
  if (failed.length > 0) lines.push(`## ${failed.length} Failure${failed.length === 1 ? '' : 's'}`, '', ...failed.flatMap(vmSection))
  const ok = vms.filter(vm => vm.status === 'success')
  if (ok.length > 0) lines.push(`## ${ok.length} Success${ok.length === 1 ? '' : 'es'}`, '', ...ok.flatMap(vmSection))
  lines.push('---', '', '*continuous-delta*')
  return {
    status,
    subject: `[Xen Orchestra] ${status} − Continuous delta backup report for ${jobName} ${ICON[status] ?? ''}`.trimEnd(),
    markdown: redactText(lines.join('\n')),
  }
}

export interface HealthCheckOutcome {
  readonly jobName: string
  readonly start: number
  readonly end: number
  /** absent when the check failed before it started (remote or SR unreachable) */
  readonly result?: HealthCheckResult
  readonly error?: string
}

/** the report of a health check asked for on its own, in the manner of a run's */
export function buildHealthCheckReport({ jobName, start, end, result, error }: HealthCheckOutcome): Report {
  const status: Report['status'] = result?.status ?? 'failure'
  const lines = [
    `##  Global status: ${status} ${ICON[status] ?? ''}`.trimEnd(),
    '',
    `- **Job**: ${jobName} (continuous delta backup, health check)`,
    `- **Start time**: ${new Date(start).toISOString()}`,
    `- **End time**: ${new Date(end).toISOString()}`,
    `- **Duration**: ${duration(end - start)}`,
    '',
    '---',
    '',
  ]
  if (result !== undefined) {
    lines.push(
      `### ${result.vmName ?? result.vm}`,
      '',
      `- **UUID**: ${result.vm}`,
      `- **Restore point**: ${result.restorePoint}`,
      `- **Health check**: ${describeHealthCheck(result)}`,
      ...(result.restoreMs === undefined ? [] : [`- **Restore duration**: ${duration(result.restoreMs)}`]),
      ''
    )
  } else if (error !== undefined) {
    lines.push(`- **Error**: ${error}`, '')
  }
  lines.push('---', '', '*continuous-delta*')
  return {
    status,
    subject: `[Xen Orchestra] ${status} − Continuous delta health check report for ${jobName} ${ICON[status] ?? ''}`.trimEnd(),
    markdown: redactText(lines.join('\n')),
  }
}

export function shouldReport(when: ReportWhen | undefined, status: Report['status']): boolean {
  return when === 'always' || (when === 'failure' && status !== 'success')
}

/**
 * Sends the report through every transport loaded now; a transport that fails is named in the
 * returned list and does not stop the others.
 */
export async function sendReport(xo: XoReportTransports, settings: ReportSettings, report: Report): Promise<string[]> {
  if (!shouldReport(settings.reportWhen, report.status)) return []
  const to = [...(settings.reportRecipients ?? [])]
  const sends: [string, (() => unknown) | undefined][] = [
    ['e-mail', to.length === 0 || xo.sendEmail === undefined ? undefined : () => xo.sendEmail?.({ to, subject: report.subject, markdown: report.markdown })],
    ['XMPP', to.length === 0 || xo.sendToXmppClient === undefined ? undefined : () => xo.sendToXmppClient?.({ to, message: `${report.subject}\n\n${report.markdown}` })],
    ['Slack', xo.sendSlackMessage === undefined ? undefined : () => xo.sendSlackMessage?.({ message: `${report.subject}\n\n${report.markdown}` })],
    [
      'Icinga2',
      xo.sendIcinga2Status === undefined
        ? undefined
        : () => xo.sendIcinga2Status?.({ status: report.status === 'success' ? 'OK' : report.status === 'partial' ? 'WARNING' : 'CRITICAL', message: report.subject }),
    ],
  ]
  const failures: string[] = []
  await Promise.all(
    sends.map(async ([name, send]) => {
      if (send === undefined) return
      try {
        await send()
      } catch (error) {
        failures.push(`${name}: ${redactText(error instanceof Error ? error.message : String(error))}`)
      }
    })
  )
  return failures
}
