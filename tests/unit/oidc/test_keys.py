"""The key ring (sanscouture/keys.py) and the sandbox's key file (adapters/keyfile.py)."""

from __future__ import annotations

import json
import stat
from pathlib import Path
from typing import Any

import jwt
import pytest

from sanscouture.adapters.keyfile import FileKeySource
from sanscouture.adapters.keyfile import ensure_key_file
from sanscouture.errors import TemporarilyUnavailableError
from sanscouture.keys import KeyRing
from sanscouture.keys import KeysUnavailableError
from sanscouture.keys import UnknownKeyError
from sanscouture.keys import WrongTokenTypeError
from sanscouture.keys import generate_private_jwk
from sanscouture.keys import jwk_thumbprint
from tests.unit.oidc.fakes import ISSUER
from tests.unit.oidc.fakes import NOW
from tests.unit.oidc.fakes import FakeClock
from tests.unit.oidc.fakes import FakeKeySource

PRIVATE_MEMBERS = {"d", "p", "q", "dp", "dq", "qi", "oth"}


def claims(**extra: Any) -> dict[str, Any]:
    return {"iss": ISSUER, "aud": ISSUER, "sub": "s", "iat": int(NOW), "exp": int(NOW) + 120, **extra}


def ring(source: FakeKeySource, clock: FakeClock | None = None, **kwargs: Any) -> KeyRing:
    return KeyRing(source, clock=clock or FakeClock(), **kwargs)


def test_sign_uses_rs256_the_newest_key_and_names_its_kid() -> None:
    source = FakeKeySource([generate_private_jwk(), generate_private_jwk()])
    token = ring(source).sign(claims(), typ="at+jwt")
    header = jwt.get_unverified_header(token)
    assert header == {"alg": "RS256", "kid": source.keys[0]["kid"], "typ": "at+jwt"}


def test_decode_round_trips_and_checks_typ_issuer_and_audience() -> None:
    keys = ring(FakeKeySource())
    token = keys.sign(claims(), typ="at+jwt")
    assert keys.decode(token, issuer=ISSUER, audience=ISSUER, typ="at+jwt")["sub"] == "s"
    with pytest.raises(WrongTokenTypeError):
        keys.decode(keys.sign(claims()), issuer=ISSUER, audience=ISSUER, typ="at+jwt")
    with pytest.raises(jwt.InvalidIssuerError):
        keys.decode(token, issuer="https://other.example")
    with pytest.raises(jwt.InvalidAudienceError):
        keys.decode(token, issuer=ISSUER, audience="rp-basic")


def test_decode_checks_exp_against_the_ring_clock_with_leeway() -> None:
    clock = FakeClock()
    keys = ring(FakeKeySource(), clock)
    token = keys.sign(claims())
    clock.now = NOW + 120 + 29
    keys.decode(token, issuer=ISSUER, audience=ISSUER)
    clock.now = NOW + 120 + 30
    with pytest.raises(jwt.ExpiredSignatureError):
        keys.decode(token, issuer=ISSUER, audience=ISSUER)
    assert keys.decode(token, issuer=ISSUER, audience=ISSUER, verify_exp=False)["sub"] == "s"


def test_decode_requires_exp_and_iat() -> None:
    keys = ring(FakeKeySource())
    with pytest.raises(jwt.MissingRequiredClaimError):
        keys.decode(keys.sign({"iss": ISSUER, "iat": 1}), issuer=ISSUER)


def test_decode_refuses_another_alg_and_a_foreign_key() -> None:
    source = FakeKeySource()
    keys = ring(source)
    kid = source.keys[0]["kid"]
    forged = jwt.encode(claims(), "secret" * 6, algorithm="HS256", headers={"kid": kid})
    with pytest.raises(jwt.InvalidTokenError):
        keys.decode(forged, issuer=ISSUER)
    foreign = jwt.encode(claims(), jwt.PyJWK(generate_private_jwk()).key, algorithm="RS256", headers={"kid": kid})
    with pytest.raises(jwt.InvalidSignatureError):
        keys.decode(foreign, issuer=ISSUER)
    with pytest.raises(UnknownKeyError):
        keys.decode(jwt.encode(claims(), "secret" * 6, algorithm="HS256"), issuer=ISSUER)


def test_public_jwks_lists_every_key_without_private_members() -> None:
    source = FakeKeySource([generate_private_jwk(), generate_private_jwk()])
    jwks = ring(source).public_jwks()
    assert [key["kid"] for key in jwks["keys"]] == [key["kid"] for key in source.keys]
    for key in jwks["keys"]:
        assert set(key) == {"kty", "use", "alg", "kid", "n", "e"}
        assert not PRIVATE_MEMBERS & set(key)
        assert key["kid"] == jwk_thumbprint(key)


def test_keys_are_loaded_once_and_reused_for_many_signatures() -> None:
    source = FakeKeySource()
    keys = ring(source)
    for _ in range(100):
        keys.decode(keys.sign(claims()), issuer=ISSUER, audience=ISSUER)
    keys.public_jwks()
    keys.probe()
    assert source.loads == 1


def test_keys_are_reloaded_after_refresh_after() -> None:
    clock = FakeClock()
    source = FakeKeySource()
    keys = ring(source, clock, refresh_after=3600)
    keys.sign(claims())
    clock.now += 3599
    keys.sign(claims())
    assert source.loads == 1
    clock.now += 1
    keys.sign(claims())
    assert source.loads == 2


def test_unknown_kid_triggers_one_rate_limited_reload() -> None:
    clock = FakeClock()
    source = FakeKeySource()
    keys = ring(source, clock, unknown_kid_interval=60)
    keys.sign(claims())
    # Another worker rotated: the new key is in the source but not in this ring's cache.
    rotated = generate_private_jwk()
    source.keys.insert(0, rotated)
    token = jwt.encode(claims(), jwt.PyJWK(rotated).key, algorithm="RS256", headers={"kid": rotated["kid"]})
    assert keys.decode(token, issuer=ISSUER)["sub"] == "s"
    assert source.loads == 2
    for _ in range(20):
        with pytest.raises(UnknownKeyError):
            keys.decode(jwt.encode(claims(), "k" * 32, algorithm="HS256", headers={"kid": "forged"}), issuer=ISSUER)
    assert source.loads == 2
    clock.now += 60
    with pytest.raises(UnknownKeyError):
        keys.decode(jwt.encode(claims(), "k" * 32, algorithm="HS256", headers={"kid": "forged"}), issuer=ISSUER)
    assert source.loads == 3


def test_next_key_is_published_before_it_signs() -> None:
    clock = FakeClock()
    current = generate_private_jwk()
    upcoming = {**generate_private_jwk(), "nbf": NOW + 86400}
    keys = ring(FakeKeySource([upcoming, current]), clock)
    assert [key["kid"] for key in keys.public_jwks()["keys"]] == [upcoming["kid"], current["kid"]]
    assert jwt.get_unverified_header(keys.sign(claims()))["kid"] == current["kid"]
    assert "nbf" not in keys.public_jwks()["keys"][0]
    clock.now = NOW + 86400
    keys = ring(FakeKeySource([upcoming, current]), clock)
    assert jwt.get_unverified_header(keys.sign(claims()))["kid"] == upcoming["kid"]


def test_the_current_key_signs_as_the_ring_does_and_is_resolved_when_asked() -> None:
    """``current()`` is where the ring may fail (its source is loaded then); signing with the key it gives
    needs nothing more, so a redemption can resolve it before using the code and sign afterwards."""
    clock = FakeClock()
    current, upcoming = generate_private_jwk(), {**generate_private_jwk(), "nbf": NOW + 60}
    source = FakeKeySource([upcoming, current])
    keys = ring(source, clock)
    key = keys.current()
    assert (key.kid, source.loads) == (current["kid"], 1)
    clock.now = NOW + 60  # the upcoming key is active now, the key resolved before still signs as itself
    token = key.sign(claims(), typ="at+jwt")
    assert jwt.get_unverified_header(token) == {"alg": "RS256", "kid": current["kid"], "typ": "at+jwt"}
    assert keys.decode(token, issuer=ISSUER, audience=ISSUER, typ="at+jwt")["sub"] == "s"
    assert keys.current().kid == upcoming["kid"]
    with pytest.raises(KeysUnavailableError):
        ring(FakeKeySource([])).current()


def test_a_failed_reload_keeps_serving_the_cached_keys_and_backs_off() -> None:
    clock = FakeClock()
    source = FakeKeySource()
    keys = ring(source, clock, refresh_after=10, retry_after_failure=30)
    keys.sign(claims())
    source.fail = TemporarilyUnavailableError(detail="vault down")
    clock.now += 10
    keys.sign(claims())
    keys.sign(claims())
    assert source.loads == 2  # one failed attempt, then back-off
    clock.now += 30
    source.fail = None
    keys.sign(claims())
    assert source.loads == 3


def test_no_key_at_all_is_temporarily_unavailable() -> None:
    source = FakeKeySource()
    source.fail = OSError("boom")
    with pytest.raises(KeysUnavailableError) as raised:
        ring(source).probe()
    assert raised.value.status == 503
    assert raised.value.error == "temporarily_unavailable"


def test_unusable_keys_are_skipped_and_an_empty_set_is_refused() -> None:
    good = generate_private_jwk()
    public_only = {name: value for name, value in generate_private_jwk().items() if name not in PRIVATE_MEMBERS}
    small = {**generate_private_jwk(1024)}
    keys = ring(FakeKeySource([public_only, {"kty": "oct", "kid": "x", "k": "abc"}, small, good]))
    assert [key["kid"] for key in keys.public_jwks()["keys"]] == [good["kid"]]
    with pytest.raises(KeysUnavailableError):
        ring(FakeKeySource([public_only])).probe()


# -- key file ------------------------------------------------------------------------------


def test_ensure_key_file_creates_one_private_jwk_readable_by_its_owner_only(tmp_path: Path) -> None:
    path = tmp_path / "keys" / "signing-keys.json"
    ensure_key_file(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    [jwk] = json.loads(path.read_text())["keys"]
    assert jwk["kty"] == "RSA" and jwk["alg"] == "RS256" and jwk["use"] == "sig" and "d" in jwk
    assert jwk["kid"] == jwk_thumbprint(jwk)
    assert jwt.PyJWK(jwk).key.key_size == 2048
    assert list(path.parent.iterdir()) == [path]  # no temporary file left behind


def test_ensure_key_file_keeps_an_existing_file(tmp_path: Path) -> None:
    path = tmp_path / "k.json"
    ensure_key_file(path)
    before = path.read_text()
    ensure_key_file(path)
    assert path.read_text() == before


def test_file_key_source_feeds_a_key_ring(tmp_path: Path) -> None:
    path = tmp_path / "k.json"
    ensure_key_file(path)
    keys = KeyRing(FileKeySource(path), clock=FakeClock())
    token = keys.sign(claims())
    assert keys.decode(token, issuer=ISSUER, audience=ISSUER)["sub"] == "s"


@pytest.mark.parametrize("content", ["not json", '{"keys": {}}', "[]", '{"keys": ["x"]}'])
def test_file_key_source_refuses_what_is_not_a_key_set(tmp_path: Path, content: str) -> None:
    path = tmp_path / "k.json"
    path.write_text(content)
    with pytest.raises(ValueError, match="signing key file"):
        FileKeySource(path).load()


def test_missing_key_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="cannot read"):
        FileKeySource(tmp_path / "absent.json").load()


def test_the_key_file_as_a_rotation_store_adds_first_with_nbf_and_disables_in_place(tmp_path: Path) -> None:
    path = tmp_path / "k.json"
    ensure_key_file(path)
    store = FileKeySource(path)
    [first] = store.versions()
    upcoming = generate_private_jwk()
    added = store.add(upcoming, not_before=NOW + 86400)
    assert (added.id, added.kid, added.not_before) == (upcoming["kid"], upcoming["kid"], NOW + 86400)
    assert [key["kid"] for key in store.load()] == [upcoming["kid"], first.kid]
    assert store.load()[0]["nbf"] == NOW + 86400  # the ring publishes it, and signs with it from then on
    store.disable(first)
    assert [key["kid"] for key in store.load()] == [upcoming["kid"]]  # a disabled key is never loaded again
    assert [(version.kid, version.enabled) for version in store.versions()] == [
        (upcoming["kid"], True), (first.kid, False)]
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert sorted(entry.name for entry in tmp_path.iterdir()) == [".k.json.lock", "k.json"]  # no temporary file


def test_the_key_file_lists_an_unusable_entry_without_a_kid(tmp_path: Path) -> None:
    path = tmp_path / "k.json"
    good = generate_private_jwk()
    path.write_text(json.dumps({"keys": [{"kid": "broken", "kty": "RSA"}, good]}))
    assert [(version.id, version.kid) for version in FileKeySource(path).versions()] == [
        ("broken", None), (good["kid"], good["kid"])]
