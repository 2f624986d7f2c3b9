"""services.auth.Tokens (HS256 only, exp/iat/jti required) and Passwords (argon2id, old bcrypt)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from typing import Any

import argon2
import bcrypt
import jwt
import pytest

from models.user import User
from services.auth import Passwords, Tokens
from services.errors import AppError, Code

SECRET = "a-test-secret-of-at-least-32-bytes!!"
TTL = 3600
PUBLIC_PEM = (
    "-----BEGIN PUBLIC KEY-----\n"
    "MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEEVs/o5+uQbTjL3chynL4wXgUg2R9\n"
    "q9UU8I5mEovUf86QZ7kOBIjJwqnzD1omageEHWwHdBO6B+dFabmdT9POxg==\n"
    "-----END PUBLIC KEY-----\n"
)


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def bob() -> User:
    return User(user="bob", name="Bob B.", rol="user", password="x")


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def forge(
    header: dict[str, Any], payload: dict[str, Any], key: bytes, digest=hashlib.sha256
) -> str:
    """An HMAC-signed token made by hand (PyJWT refuses PEM keys as HMAC secrets)."""
    signing_input = f"{b64(json.dumps(header).encode())}.{b64(json.dumps(payload).encode())}"
    signature = hmac.new(key, signing_input.encode(), digest).digest()
    return f"{signing_input}.{b64(signature)}"


def claims(**overrides):
    now = int(time.time())
    payload = {"user": "bob", "name": "Bob", "rol": "user", "iat": now, "exp": now + TTL}
    payload["jti"] = "j1"
    payload.update(overrides)
    return {k: v for k, v in payload.items() if v is not None}


def refused(token) -> None:
    with pytest.raises(AppError) as caught:
        Tokens(SECRET, TTL).verify(token)
    assert caught.value.code is Code.UNAUTHENTICATED


@pytest.fixture
def tokens() -> Tokens:
    return Tokens(SECRET, TTL)


def test_issued_token_verifies_with_its_claims(tokens):
    issued = tokens.issue(bob())
    verified = tokens.verify(issued.token)
    assert verified.user == "bob"
    assert verified.jti == issued.claims.jti
    assert verified.exp - verified.iat == TTL


def test_token_is_hs256_and_carries_every_claim():
    clock = Clock(time.time())
    issued = Tokens(SECRET, TTL, clock=clock).issue(bob())
    assert jwt.get_unverified_header(issued.token)["alg"] == "HS256"
    payload = jwt.decode(issued.token, SECRET, algorithms=["HS256"])
    assert set(payload) == {"user", "name", "rol", "iat", "exp", "jti"}
    assert (payload["user"], payload["name"], payload["rol"]) == ("bob", "Bob B.", "user")
    assert payload["iat"] == int(clock.now)
    assert payload["exp"] == int(clock.now) + TTL
    assert issued.expires_at.timestamp() == pytest.approx(int(clock.now) + TTL)


def test_each_token_gets_its_own_jti(tokens):
    assert tokens.issue(bob()).claims.jti != tokens.issue(bob()).claims.jti


def test_alg_none_is_refused():
    header = b64(json.dumps({"alg": "none", "typ": "JWT"}).encode())
    refused(f"{header}.{b64(json.dumps(claims()).encode())}.")


def test_token_signed_with_another_secret_is_refused():
    refused(jwt.encode(claims(), "another-secret-of-at-least-32-bytes", algorithm="HS256"))


def test_other_hmac_algorithm_with_the_right_secret_is_refused():
    refused(forge({"alg": "HS512", "typ": "JWT"}, claims(), SECRET.encode(), hashlib.sha512))


def test_hs256_signed_with_a_public_key_pem_is_refused():
    refused(forge({"alg": "HS256", "typ": "JWT"}, claims(), PUBLIC_PEM.encode()))


def test_rs256_header_is_refused_even_when_hmac_signed_with_the_secret():
    refused(forge({"alg": "RS256", "typ": "JWT"}, claims(), SECRET.encode()))


def test_real_rs256_token_is_refused():
    pytest.importorskip("cryptography")
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    refused(jwt.encode(claims(), key, algorithm="RS256"))


def test_tampered_payload_is_refused(tokens):
    header, _, signature = tokens.issue(bob()).token.split(".")
    admin = b64(json.dumps(claims(user="alice", rol="admin")).encode())
    refused(f"{header}.{admin}.{signature}")


def test_expired_token_is_refused():
    issued = Tokens(SECRET, TTL, clock=Clock(time.time() - TTL - 5)).issue(bob())
    refused(issued.token)


def test_expiry_follows_the_injected_clock():
    clock = Clock(time.time())
    tokens = Tokens(SECRET, TTL, clock=clock)
    issued = tokens.issue(bob())
    clock.now += TTL + 1
    with pytest.raises(AppError):
        tokens.verify(issued.token)


@pytest.mark.parametrize("missing", ["exp", "jti", "iat"])
def test_token_without_required_claim_is_refused(missing):
    refused(jwt.encode(claims(**{missing: None}), SECRET, algorithm="HS256"))


@pytest.mark.parametrize("user", [42, None, "", ["bob"], {"user": "bob"}])
def test_token_whose_user_is_not_a_name_is_refused(user):
    payload = claims()
    payload["user"] = user
    refused(jwt.encode(payload, SECRET, algorithm="HS256"))


def test_non_string_jti_is_refused():
    refused(jwt.encode(claims(jti=7), SECRET, algorithm="HS256"))


@pytest.mark.parametrize(
    "garbage", ["", "abc", "a.b.c", "....", "ñ.ñ.ñ", "Bearer x.y.z", None, b"\xff"]
)
def test_garbage_is_refused(garbage):
    refused(garbage)


# Passwords ---------------------------------------------------------------------------------


@pytest.fixture
def passwords() -> Passwords:
    return Passwords(argon2.PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1))


def legacy(password: bytes, prefix: str = "$2b$") -> str:
    hashed = bcrypt.hashpw(password, bcrypt.gensalt(rounds=4)).decode()
    assert hashed.startswith("$2b$")
    return prefix + hashed[4:]


def test_new_hash_is_argon2id_and_verifies(passwords):
    stored = passwords.hash("correct horse battery")
    assert stored.startswith("$argon2id$")
    assert passwords.verify(stored, "correct horse battery") == (True, False)
    assert passwords.verify(stored, "correct horse batterY") == (False, False)


def test_hash_made_with_other_parameters_verifies_and_asks_for_rehash(passwords):
    stronger = argon2.PasswordHasher(time_cost=2, memory_cost=2048, parallelism=1)
    assert passwords.verify(stronger.hash("pw-pw-pw"), "pw-pw-pw") == (True, True)


@pytest.mark.parametrize("prefix", ["$2a$", "$2b$", "$2y$"])
def test_legacy_bcrypt_hash_verifies_and_asks_for_rehash(passwords, prefix):
    stored = legacy(b"old password", prefix)
    assert passwords.verify(stored, "old password") == (True, True)
    assert passwords.verify(stored, "old passwore") == (False, False)


def test_legacy_password_over_72_bytes_is_checked_on_its_first_72(passwords):
    long_password = "p" * 72 + "tail that bcrypt never saw"
    stored = legacy(long_password.encode()[:72])
    assert passwords.verify(stored, long_password) == (True, True)
    assert passwords.verify(stored, "p" * 72 + "other tail") == (True, True)
    assert passwords.verify(stored, "q" + "p" * 80) == (False, False)


@pytest.mark.parametrize(
    "stored", ["", "garbage", "$2b$garbage", "$2y$04$short", "$argon2id$garbage"]
)
def test_garbage_stored_hash_does_not_match(passwords, stored):
    assert passwords.verify(stored, "anything") == (False, False)


def test_password_with_lone_surrogate_does_not_match(passwords):
    stored = passwords.hash("correct horse battery")
    assert passwords.verify(stored, "bad\ud800") == (False, False)


def test_burn_spends_a_check_without_matching_anything(passwords):
    passwords.burn("whatever")
    assert passwords.verify(passwords.hash("x" * 12), "whatever") == (False, False)
