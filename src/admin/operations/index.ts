/** The operator's operations, by concern; the admin API, the CLI and the demo call them through this index. */

export { addToken, createChannel, listChannels, listModels, putModel, setModelRoutes, updateToken } from './catalog.js';
export { type AdminDeps, rowIdFrom } from './common.js';
export { createKey, getKey, listUserKeys, revokeKey, updateKey } from './keys.js';
export { adjustUser, createRedemptionCodes, createUser, creditUser, getUser, listUsage, listUsers } from './users.js';
