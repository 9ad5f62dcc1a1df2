/** Where benchmark chains live on a remote: XO's layout, with fixed identifiers. */
export const BENCH_VM = '0b5e2c1a-6f0e-4c7e-9d1e-5a3b8c9d0e1f'
export const BENCH_JOB = '7c1d4e2f-3a5b-4c6d-8e9f-0a1b2c3d4e5f'
export const BENCH_VDI = 'd4e5f6a7-b8c9-4d0e-9f1a-2b3c4d5e6f70'

export const benchDiskDir = (vdi: string = BENCH_VDI): string => `xo-vm-backups/${BENCH_VM}/vdis/${BENCH_JOB}/${vdi}`
