"""The edge node: a Litestar service answering prompts with playlists through the caches."""
