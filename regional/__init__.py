"""What a region shares: Redis connections (and, later, invalidation, warmers, event log)."""
