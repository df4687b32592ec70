// Package scheduler is the runtime plane: the global manager API, the
// local manager of each site, the node agents' job runner, data-aware
// placement over cache tiers, and the queue-depth signals that drive
// elasticity.
package scheduler
