"""Cache tiers behind the edge node: one contract, bytes with metadata, no playlist knowledge."""
