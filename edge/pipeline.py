"""`PlaylistPipeline`: the one way a playlist request is answered, whoever receives it.

    version choice → lookup (L1 → L2 → global) → miss path → answer (headers, ETag, 304)

The fast GET middleware (`edge.middleware.FastGet`) and Litestar's handlers
(`edge.controllers.PlaylistController`) both call it; credentials are checked before it
(the guard, or the middleware's same check) and its errors become problem documents in
one place (`edge.problems`). A GET names no listener, so during a split the prompt picks
the version; a POST with `user` is routed by the listener.
"""

from __future__ import annotations

from edge.answers import Answer
from edge.node import EdgeNode
from edge.schemas import PlaylistRequest
from edge.service import PlaylistService
from models.intent import Intent

Prepared = tuple[PlaylistService, PlaylistRequest, Intent, str]
"""The service chosen for a request, the request, its intent and cache key."""


class PlaylistPipeline:
    """Answers playlist requests for one node, on its current versions."""

    def __init__(self, node: EdgeNode) -> None:
        self.node = node

    def cached(self, raw_query: bytes, if_none_match: str | None) -> Answer | None:
        """Without awaiting anything: a fresh L1 hit of a GET query string seen before, or
        its canonical redirect; None when the full path must run (`get`). With no service
        loaded yet, or a split on, always None."""
        service = self.node.service
        if service is None or self.node.versions.percent > 0:
            return None
        return service.fresh_hit(raw_query, if_none_match) or service.redirect(raw_query)

    def prepare(self, raw_query: bytes) -> Prepared:
        """The service that answers a GET query string and the request, intent and key it
        answers (BadRequest, IntentError if the query is not valid, NotReady). Without a
        split the key is remembered for `cached`."""
        node = self.node
        service = node.require()
        if node.versions.percent <= 0:
            return (service, *service.prepare_get(raw_query))
        return self._route(service, service.parse_get(raw_query), None)

    async def respond(self, prepared: Prepared, if_none_match: str | None) -> Answer:
        service, request, intent, key = prepared
        return await service.answer(request, intent, key, if_none_match)

    async def get(self, raw_query: bytes, if_none_match: str | None) -> Answer:
        """The answer to a GET query string: its canonical redirect, or its playlist."""
        moved = self.node.require().redirect(raw_query)
        if moved is not None:
            return moved
        return await self.respond(self.prepare(raw_query), if_none_match)

    async def answer(
        self, request: PlaylistRequest, listener: str | None, if_none_match: str | None
    ) -> Answer:
        """The answer to a validated request, by the version the listener (else the
        prompt) is assigned to."""
        prepared = self._route(self.node.require(), request, listener)
        return await self.respond(prepared, if_none_match)

    def _route(
        self, service: PlaylistService, request: PlaylistRequest, listener: str | None
    ) -> Prepared:
        intent, key = service.intent(request)
        chosen = self.node.route(listener or intent.prompt_key())
        if chosen is not service:
            intent, key = chosen.intent(request)
        return chosen, request, intent, key
