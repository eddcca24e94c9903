"""modyard's module model: the canonical manifest, the format adapters that normalise uploads into
it, and the safe reading of untrusted archives. Used by the registry (publishing), the SDK
(``modyard pack`` validates locally) and every service that reads manifests."""
