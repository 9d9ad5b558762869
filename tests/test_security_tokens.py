"""JWTs: vigie's forgeries (vigie.jwt) and the reference system's verification (fixtures/practice/tokens.py)."""
import time

import pytest
import requests
from vigie.fixtures.practice import start_practice
from vigie.fixtures.practice.ratelimit import RateLimiter
from vigie.fixtures.practice.tokens import Issuer, TokenError

from vigie import jwt


@pytest.fixture(scope="module")
def issuer():
    return Issuer()


def test_decode_reads_header_and_claims_without_a_key(issuer):
    token = issuer.issue("patient", "patient", patient="pat-0001")
    decoded = jwt.decode(token)
    assert decoded.header == {"alg": "ES256", "typ": "JWT"}
    assert decoded.payload["scope"] == "patient/*.read" and decoded.payload["patient"] == "pat-0001"
    assert decoded.payload["exp"] > time.time() and len(decoded.signature) == 64
    assert decoded.encode() == token


@pytest.mark.parametrize("text", ["", "opaque-token-123", "a.b", "a.b.c", "e30.e30.x", "WzFd.e30.", "..."])
def test_decode_refuses_what_is_not_a_jwt(text):
    with pytest.raises(jwt.NotAJwt):
        jwt.decode(text)


def test_genuine_token_verifies(issuer):
    claims = issuer.verify(issuer.issue("reader", "reader"))
    assert claims["sub"] == "reader" and claims["scope"] == "user/*.read"


@pytest.mark.parametrize("kind", ["alg-none", "bad-signature", "expired"])
def test_each_forgery_is_refused_by_a_correct_server(issuer, kind):
    forged = jwt.forge(issuer.issue("clinician", "clinician"), kind)
    assert jwt.decode(forged).payload["sub"] == "clinician"
    with pytest.raises(TokenError):
        issuer.verify(forged)


def test_forgeries_change_one_thing(issuer):
    token = issuer.issue("clinician", "clinician")
    genuine = jwt.decode(token)
    none = jwt.decode(jwt.forge(token, "alg-none"))
    assert none.header["alg"] == "none" and none.signature == b"" and none.payload == genuine.payload
    flipped = jwt.decode(jwt.forge(token, "bad-signature"))
    assert flipped.payload == genuine.payload and flipped.signature != genuine.signature
    expired = jwt.decode(jwt.forge(token, "expired"))
    assert expired.payload["exp"] < time.time() and expired.signature == genuine.signature


def test_flawed_issuers_accept_exactly_their_flaw():
    lax = Issuer(accept_none=True)
    token = lax.issue("clinician", "clinician")
    assert lax.verify(jwt.forge(token, "alg-none"))["sub"] == "clinician"
    with pytest.raises(TokenError):
        lax.verify(jwt.forge(token, "bad-signature"))
    late = Issuer(ignore_expiry=True)
    expired = late.issue("clinician", "clinician", now=time.time() - 7200, lifetime_s=3600)
    assert late.verify(expired)["sub"] == "clinician"
    with pytest.raises(TokenError, match="algorithm"):
        late.verify(jwt.forge(expired, "alg-none"))
    strict = Issuer()
    with pytest.raises(TokenError, match="expired"):
        strict.verify(strict.issue("clinician", "clinician", now=time.time() - 7200, lifetime_s=3600))


def test_malformed_variants_are_never_the_token(issuer):
    token = issuer.issue("clinician", "clinician")
    variants = jwt.malformed(token)
    assert token not in variants.values() and variants["truncated"].count(".") == 1
    for value in variants.values():
        with pytest.raises(TokenError):
            issuer.verify(value)


def test_rate_limiter_budget_per_client():
    limiter = RateLimiter({"patient": (3, 1.0)})
    assert [limiter.take("p1", "patient") for _ in range(3)] == [None, None, None]
    wait = limiter.take("p1", "patient")
    assert wait is not None and wait >= 1
    assert limiter.take("p2", "patient") is None            # another client keeps its own budget
    assert all(limiter.take("c1", "clinician") is None for _ in range(100))   # the default budget is large


def test_reference_system_tokens_are_jwts_with_roles():
    with start_practice() as system:
        assert {"clinician", "reader", "patient", "admin", "expired"} <= set(system.tokens)
        claims = {role: jwt.decode(token).payload for role, token in system.tokens.items()}
        assert claims["patient"]["patient"] == system.patient_id
        assert claims["expired"]["exp"] < time.time() < claims["clinician"]["exp"]

        def status(token):
            return requests.get(f"{system.url}/Patient?_count=1", verify=str(system.ca_file), timeout=10,
                                headers={"Authorization": f"Bearer {token}"}).status_code

        assert status(system.token) == 200
        assert status(system.tokens["expired"]) == 401
        assert status(jwt.forge(system.token, "alg-none")) == 401
        assert status(jwt.forge(system.token, "bad-signature")) == 401
