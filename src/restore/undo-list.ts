/**
 * What a restore created, to be destroyed again, newest first, if the restore fails. Every undo
 * is attempted; their own failures are reported, never thrown over the restore's error.
 */
export class UndoList {
  readonly #steps: { readonly what: string; readonly undo: () => Promise<unknown> }[] = []

  push(what: string, undo: () => Promise<unknown>): void {
    this.#steps.push({ what, undo })
  }

  /** undoes everything, newest first; resolves to the undos that failed */
  async run(): Promise<{ what: string; error: unknown }[]> {
    const failed: { what: string; error: unknown }[] = []
    for (const step of this.#steps.splice(0).reverse()) {
      try {
        await step.undo()
      } catch (error) {
        failed.push({ what: step.what, error })
      }
    }
    return failed
  }
}
