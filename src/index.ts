/**
 * effect-reservoir: a functional, Effect-native resource pool.
 *
 * @since 0.1.0
 */

/**
 * @since 0.1.0
 */
export * as ConnectionRecord from "./ConnectionRecord.js"

/**
 * @since 0.1.0
 */
export * as Driver from "./Driver.js"

/**
 * @since 0.3.0
 */
export * as Interaction from "./Interaction.js"

/**
 * @since 0.1.0
 */
export * as Policy from "./Policy.js"

/**
 * @since 0.1.0
 */
export * as Pool from "./Pool.js"

/**
 * @since 0.1.0
 */
export * as PoolError from "./PoolError.js"

/**
 * @since 0.1.0
 */
export * as PoolEvent from "./PoolEvent.js"

/**
 * @since 0.3.0
 */
export * as SessionPool from "./SessionPool.js"
