/** XAPI's date form on the wire: `YYYYMMDDTHH:MM:SSZ` (ISO strings are read as null by clients). */
export function xapiDate(date: Date = new Date()): string {
  const iso = date.toISOString() // 2026-11-26T07:02:37.123Z
  return `${iso.slice(0, 4)}${iso.slice(5, 7)}${iso.slice(8, 10)}T${iso.slice(11, 19)}Z`
}

/** The epoch as XAPI writes an unset date. */
export const XAPI_EPOCH = '19700101T00:00:00Z'
