'use strict'
// Local stand-in for xo-remote-parser 0.10 (the reachable registry only has 0.5.0, which does not
// know s3:// URLs). Written for this project from the URL forms Xen Orchestra documents:
//   file:///abs/path                         local folder
//   nfs://host[:port]:/export/path           NFS export
//   smb://user:password@domain\\host\share   SMB share
//   s3://key:secret@host[:port]/bucket/dir   S3 over https; s3+http:// for plain http
// Options ride in the query string (useVhdDirectory, region, allowUnauthorized, ...).
// A user installing from the public registry gets the real package instead (see the README).

const BOOLEAN_OPTIONS = new Set(['useVhdDirectory', 'allowUnauthorized', 'immutable'])

function parseQuery(query) {
  const options = {}
  if (!query) return options
  for (const [key, raw] of new URLSearchParams(query)) {
    options[key] = BOOLEAN_OPTIONS.has(key) ? raw === 'true' || raw === '' : raw
  }
  return options
}

function formatQuery(remote) {
  const params = new URLSearchParams()
  for (const key of ['useVhdDirectory', 'region', 'allowUnauthorized', 'immutable']) {
    if (remote[key] !== undefined) params.set(key, String(remote[key]))
  }
  const text = params.toString()
  return text === '' ? '' : '?' + text
}

function splitCredentials(authority) {
  const at = authority.lastIndexOf('@')
  if (at === -1) return { host: authority }
  const credentials = authority.slice(0, at)
  const colon = credentials.indexOf(':')
  return {
    username: decodeURIComponent(colon === -1 ? credentials : credentials.slice(0, colon)),
    password: colon === -1 ? undefined : decodeURIComponent(credentials.slice(colon + 1)),
    host: authority.slice(at + 1),
  }
}

function parse(url) {
  if (typeof url !== 'string') throw new TypeError('remote URL must be a string')
  const schemeEnd = url.indexOf('://')
  if (schemeEnd === -1) throw new Error(`invalid remote URL (no scheme): ${url.split('@').pop()}`)
  const scheme = url.slice(0, schemeEnd)
  let rest = url.slice(schemeEnd + 3)
  const q = rest.indexOf('?')
  const options = q === -1 ? {} : parseQuery(rest.slice(q + 1))
  if (q !== -1) rest = rest.slice(0, q)

  if (scheme === 'file') {
    return { ...options, type: 'file', path: '/' + rest.replace(/^\/+/, '') }
  }
  if (scheme === 'nfs') {
    const match = /^([^:/]+)(?::(\d+))?:(\/.*)$/.exec(rest)
    if (match === null) throw new Error('invalid NFS remote URL, expected nfs://host[:port]:/path')
    const [, host, port, path] = match
    return { ...options, type: 'nfs', host, port: port === undefined ? undefined : Number(port), path }
  }
  if (scheme === 'smb') {
    const { username, password, host: location } = splitCredentials(rest)
    const parts = location.split('\\')
    const domain = parts.length > 1 && parts[0] !== '' ? parts.shift() : undefined
    const host = parts.shift()
    return { ...options, type: 'smb', username, password, domain, host, path: '\\' + parts.join('\\') }
  }
  if (scheme === 's3' || scheme === 's3+http' || scheme === 's3+https') {
    const slash = rest.indexOf('/')
    if (slash === -1) throw new Error('invalid S3 remote URL, expected s3://key:secret@host/bucket[/dir]')
    const { username, password, host } = splitCredentials(rest.slice(0, slash))
    return {
      ...options,
      type: 's3',
      protocol: scheme === 's3+http' ? 'http' : 'https',
      username,
      password,
      host,
      path: rest.slice(slash),
    }
  }
  throw new Error(`unsupported remote type: ${scheme}`)
}

function credentials(remote) {
  if (remote.username === undefined) return ''
  const user = encodeURIComponent(remote.username)
  return remote.password === undefined ? user + '@' : user + ':' + encodeURIComponent(remote.password) + '@'
}

function format(remote) {
  const query = formatQuery(remote)
  switch (remote.type) {
    case 'file':
      return 'file://' + remote.path + query
    case 'nfs':
      return 'nfs://' + remote.host + (remote.port === undefined ? '' : ':' + remote.port) + ':' + remote.path + query
    case 'smb':
      return 'smb://' + credentials(remote) + (remote.domain ? remote.domain + '\\' : '') + remote.host + remote.path + query
    case 's3':
      return (remote.protocol === 'http' ? 's3+http://' : 's3://') + credentials(remote) + remote.host + remote.path + query
    default:
      throw new Error(`unsupported remote type: ${remote.type}`)
  }
}

module.exports = { parse, format }
