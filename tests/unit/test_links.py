"""Short codes of tracked links: deterministic per SMS and link, distinct, unguessable."""

from __future__ import annotations

import itertools

from services.common.links import CODE_LENGTH, is_code, link_code, short_url

SECRET = b"a-secret-of-the-server"
OFFER = "https://example.com/offer"


def test_a_code_is_the_same_for_the_same_sms_and_link() -> None:
    assert link_code(SECRET, "sms-key-1", OFFER) == link_code(SECRET, "sms-key-1", OFFER)


def test_a_code_differs_by_sms_by_link_and_by_secret() -> None:
    codes = {
        link_code(SECRET, "sms-key-1", OFFER),
        link_code(SECRET, "sms-key-2", OFFER),
        link_code(SECRET, "sms-key-1", OFFER + "?b"),
        link_code(b"another-secret", "sms-key-1", OFFER),
    }
    assert len(codes) == 4


def test_codes_are_fixed_width_base62_of_80_bits_and_do_not_collide() -> None:
    assert 62**CODE_LENGTH >= 2**80
    codes = [
        link_code(SECRET, f"sms-key-{n}", f"https://example.com/{m}")
        for n, m in itertools.product(range(2000), range(5))
    ]
    assert len(set(codes)) == len(codes)
    assert all(len(c) == CODE_LENGTH and is_code(c) for c in codes)
    # Every position but the first (80 bits fill it only up to '6') takes most characters.
    assert all(len({c[i] for c in codes}) > 50 for i in range(1, CODE_LENGTH))
    assert {c[0] for c in codes} <= set("0123456")


def test_only_well_formed_codes_are_looked_up() -> None:
    code = link_code(SECRET, "sms-key-1", OFFER)
    assert is_code(code)
    for bad in ("", code[:-1], code + "x", code[:-1] + "-", "../" + code[3:], code[:-1] + "\n"):
        assert not is_code(bad)


def test_short_urls_join_the_link_domain_with_one_slash() -> None:
    assert short_url("http://127.0.0.1:8026/r/", "abc") == "http://127.0.0.1:8026/r/abc"
    assert short_url("https://ac.me/r", "abc") == "https://ac.me/r/abc"
