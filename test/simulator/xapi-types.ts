/** Shapes shared by the simulator's modules. */

export const NULL_REF = 'OpaqueRef:NULL'

/** The fields of one XAPI object, exactly as they travel on the wire. */
export type Fields = Record<string, unknown>

/** A class of the XenAPI data model: its wire name and the full field set with defaults. */
export interface ClassSpec {
  /** Name as used in method names (`VM`, `pool`, `VM_metrics`). */
  readonly name: string
  /** A fresh record holding every field of the class, set to its default. */
  defaults(): Fields
}

/** A record handed to tests: a detached copy of the fields plus its reference and class. */
export type SimRecord = Readonly<Fields> & { readonly uuid: string; readonly $ref: string; readonly $type: string }
