"""Running flows: the work queue, delay tiers for retries, and the node worker."""
