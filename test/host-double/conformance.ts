/**
 * Compile-time check: the host double's `xo` object offers every member the plugin declares it
 * uses from xo-server's app (`src/plugin/xo.ts`). A member the plugin starts relying on and the
 * host double lacks fails the build here.
 */
import type { XoApp as PluginXoApp, XoPluginOptions } from '../../src/plugin/xo.js'
import type { XoApp } from './app.js'
import type { PluginFactoryOptions } from './plugins.js'

export type HostOffersPluginSurface = XoApp extends PluginXoApp ? true : never
export const hostOffersPluginSurface: HostOffersPluginSurface = true

export type FactoryOptionsFit = PluginFactoryOptions<XoApp> extends XoPluginOptions ? true : never
export const factoryOptionsFit: FactoryOptionsFit = true
