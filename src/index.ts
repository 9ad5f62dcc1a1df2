/**
 * xo-server-continuous-delta: xo-server imports this module and calls its default export with
 * `{ xo, staticConfig, getDataDir }`. Native ESM hides named exports from xo-server, so the
 * configuration schema rides on the factory itself.
 */
import { createPlugin } from './plugin/plugin.js'
import type { ContinuousDeltaPlugin } from './plugin/plugin.js'
import { configurationSchema, runNowSchema } from './plugin/schema.js'
import type { XoPluginOptions } from './plugin/xo.js'

function pluginFactory(options: XoPluginOptions): ContinuousDeltaPlugin {
  return createPlugin(options)
}
pluginFactory.configurationSchema = configurationSchema
pluginFactory.testSchema = runNowSchema

export default pluginFactory
