export { NbdConnection, type NbdConnectOptions, type NbdExportInfo } from './client.js'
export { NbdDisk, type NbdDiskOptions } from './disk.js'
export { NbdError, isRetriedNbdError, type NbdErrorCode } from './errors.js'
