/**
 * Starts the xo-server host double (see test/host-double/README.md): the built plugin loaded as
 * xo-server 5.207 loads it, its API served over WebSocket JSON-RPC.
 */
export { startHostDouble, REPO_ROOT } from '../host-double/start.js'
export type { HostDouble, StartHostOptions, XoClient } from '../host-double/start.js'
export type { XoApp } from '../host-double/app.js'
