/** A task's `result` is an XML-RPC `<value>` string; this renders the values methods return. */
const escape = (text: string): string => text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;')

export function toXmlRpcValue(value: unknown): string {
  if (value === undefined || value === null) return ''
  if (typeof value === 'string') return `<value>${escape(value)}</value>`
  if (typeof value === 'boolean') return `<value><boolean>${value ? 1 : 0}</boolean></value>`
  if (typeof value === 'number') {
    return Number.isInteger(value) ? `<value><int>${value}</int></value>` : `<value><double>${value}</double></value>`
  }
  if (Array.isArray(value)) return `<value><array><data>${value.map(toXmlRpcValue).join('')}</data></array></value>`
  const members = Object.entries(value as Record<string, unknown>)
    .map(([name, member]) => `<member><name>${escape(name)}</name>${toXmlRpcValue(member)}</member>`)
    .join('')
  return `<value><struct>${members}</struct></value>`
}
