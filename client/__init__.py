"""A Python client for the playlist edge: `PlaylistClient` (blocking) and
`AsyncPlaylistClient` (asyncio), with typed answers, retries with jittered backoff that
honour Retry-After, ETag revalidation, and batched events.

    with PlaylistClient("https://edge.example", api_key=KEY) as edge:
        playlist = edge.playlist("rainy sunday jazz", n=20)
        edge.track(Event.about(playlist, 0, "skip", user=token, event_id=uuid4().hex))
"""

from client.aio import AsyncPlaylistClient
from client.core import ApiError, ClientError, RetryPolicy, Unavailable
from client.models import CacheInfo, Event, EventsAccepted, Playlist, Problem, Track
from client.sync import PlaylistClient

__all__ = [
    "ApiError",
    "AsyncPlaylistClient",
    "CacheInfo",
    "ClientError",
    "Event",
    "EventsAccepted",
    "Playlist",
    "PlaylistClient",
    "Problem",
    "RetryPolicy",
    "Track",
    "Unavailable",
]
