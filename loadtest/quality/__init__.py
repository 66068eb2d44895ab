"""`python -m loadtest.bench quality`: listener playlist titles asked as prompts, each answer
scored against that playlist's own tracks, beside baselines computed in the same run.

Every method is asked once per title for `DEPTH` tracks; recall@k for every k ≤ DEPTH comes
from that one ranking, and `-n` only picks the table's k. Metrics are the RecSys Challenge
2018 ones at track level, averaged over playlists; the ground truth G of a playlist is its
tracks that are in the catalog (playlists with none are skipped and counted):

- recall@n = |G ∩ R[:n]| / |G|;
- R-precision = |G ∩ R[:|G|]| / |G|, with R cut at DEPTH when |G| > DEPTH;
- NDCG@n, binary relevance: DCG = Σ rel_i / log2(i + 1) over i = 1..n, IDCG over
  min(|G|, n) hits;
- feature distance: L1 between the mean (energy, valence, danceability, acousticness) of the
  answer's first n tracks and of G, also as a ratio to the random method's;
- repeats: share of answers whose first n tracks hold one song twice (`models.songs`).

Methods are a dict of name → callable(title) → track ids (`BASELINES`, plus the node's
answer as `model`); one that needs training playlists reads `Setup.train`, the playlists
outside the judged split.
"""
