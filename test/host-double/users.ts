/**
 * The fixed user accounts of the host double (xo-server keeps users in its database; two
 * are enough to exercise permissions).
 */
import { timingSafeEqual } from 'node:crypto'
import { invalidCredentials, noSuchObject } from './api-errors.js'

export type UserPermission = 'admin' | 'none'

export interface User {
  readonly id: string
  readonly email: string
  readonly permission: UserPermission
}

interface Account extends User {
  readonly password: string
}

const ACCOUNTS: readonly Account[] = [
  { id: 'admin-0000', email: 'admin@admin.net', password: 'admin', permission: 'admin' },
  { id: 'user-0001', email: 'user@example.net', password: 'user', permission: 'none' },
]

function publicUser({ id, email, permission }: Account): User {
  return { id, email, permission }
}

function sameText(a: string, b: string): boolean {
  const left = Buffer.from(a)
  const right = Buffer.from(b)
  return left.length === right.length && timingSafeEqual(left, right)
}

export class Users {
  authenticate(email: string, password: string): User {
    const account = ACCOUNTS.find(_ => _.email === email)
    if (account === undefined || !sameText(account.password, password)) throw invalidCredentials()
    return publicUser(account)
  }

  get(id: string): User {
    const account = ACCOUNTS.find(_ => _.id === id)
    if (account === undefined) throw noSuchObject(id, 'user')
    return publicUser(account)
  }

  getAll(): User[] {
    return ACCOUNTS.map(publicUser)
  }
}
