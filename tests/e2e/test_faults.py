"""POST /admin/faults: a drill makes the real encoder fail or hang, then heals it."""

from __future__ import annotations

from urllib.parse import urlencode

from .conftest import Client, ClientFactory

ADMIN = {"authorization": "Bearer s3cret"}


async def _set(client: Client, encoder: str | None) -> None:
    response = await client.post("/admin/faults", json={"encoder": encoder}, headers=ADMIN)
    assert response.status_code == 200, response.text
    assert response.json() == {"encoder": encoder}


def _url(prompt: str) -> str:
    return "/v1/playlists?" + urlencode({"q": prompt, "n": 8})


async def test_a_failing_encoder_gives_flagged_fallbacks_until_it_is_healed(
    edge: ClientFactory,
) -> None:
    async with edge(admin_key="s3cret", fault_injection=True, compute_timeout=0.5) as client:
        cached = await client.get(_url("cosy folk by the fire"))
        assert cached.headers["x-cache"] == "MISS"
        for fault, prompt in (("raise", "angry punk for the gym"), ("hang", "sleepy ambient")):
            await _set(client, fault)
            degraded = await client.get(_url(prompt))
            assert degraded.status_code == 200
            assert degraded.headers["x-cache"] == "FALLBACK"
            assert degraded.json()["degraded"] is True
            assert len(degraded.json()["tracks"]) == 8
            hit = await client.get(_url("cosy folk by the fire"))  # hits never need the model
            assert hit.headers["x-cache"] == "HIT-L1"
            await _set(client, None)
            healed = await client.get(_url(prompt + " again"))
            assert healed.headers["x-cache"] == "MISS"
            assert healed.json()["degraded"] is False


async def test_faults_need_the_admin_key_the_setting_and_a_valid_body(
    edge: ClientFactory,
) -> None:
    async with edge(admin_key="s3cret", fault_injection=True) as client:
        anonymous = await client.post("/admin/faults", json={"encoder": "raise"})
        assert anonymous.status_code == 401
        for body in ({"encoder": "explode"}, {"model": "raise"}, {}):
            bad = await client.post("/admin/faults", json=body, headers=ADMIN)
            assert bad.status_code == 400, body
            assert bad.headers["content-type"].startswith("application/problem+json")
        assert (await client.get(_url("calm piano"))).headers["x-cache"] == "MISS"
    async with edge(admin_key="s3cret") as client:
        unreadable = await client.post("/admin/faults", json={"model": "raise"}, headers=ADMIN)
        assert unreadable.status_code == 400  # the body is checked before the setting
        off = await client.post("/admin/faults", json={"encoder": "raise"}, headers=ADMIN)
        assert off.status_code == 403
        assert "EDGE_FAULT_INJECTION" in off.json()["detail"]
