"""French identifier rules, on known values (FACTS.md section 2) and on generated ones."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from vigie import identifiers as ids

FULLWIDTH = {ord(d): 0xFF10 + int(d) for d in "0123456789"}  # str.isdigit() accepts these: we must not
digit_strings = st.text(alphabet="0123456789", min_size=1, max_size=20)


def test_frcore_example_nir_has_a_wrong_key():
    # FR Core's example Patient carries 123456789012244: the key of 1234567890122 is 12, not 44
    assert ids.nir_key("1234567890122") == 12
    assert not ids.nir_is_valid("123456789012244")
    assert ids.nir_is_valid("123456789012212")


@pytest.mark.parametrize("dept, offset", [("2A", 1_000_000), ("2B", 2_000_000)])
def test_corsica_key(dept, offset):
    # the other published form of the rule: letter as 0, then subtract 1 000 000 (2A) or 2 000 000 (2B)
    nir13 = f"18506{dept}004123"
    expected = 97 - (int(nir13.replace(dept, "20")) - offset) % 97
    assert ids.nir_key(nir13) == expected
    assert ids.nir_key(nir13.lower()) == expected
    assert ids.nir_is_valid(f"{nir13}{expected:02d}")
    assert ids.nir_key(nir13) != ids.nir_key(nir13.replace(dept, "20"))


@pytest.mark.parametrize("nir", ["12345678901221", "1234567890122122", "12345678901A212", "1234567890122AB",
                                 "123452C89012212", "", None, 123456789012212,
                                 "123456789012212".translate(FULLWIDTH)])
def test_malformed_nir_is_invalid(nir):
    assert not ids.nir_is_valid(nir)


@pytest.mark.parametrize("nir13", ["123456789012", "12345678901223", "2A3456789012", "12345ZZ890122"])
def test_nir_key_rejects_malformed(nir13):
    with pytest.raises(ValueError):
        ids.nir_key(nir13)


def test_nir_keys_out_of_range_are_invalid():
    # a key is 01..97: 00 and 98 never match, whatever the number
    assert not ids.nir_is_valid("123456789012200")
    assert not ids.nir_is_valid("123456789012298")


def test_luhn_known_values():
    assert ids.luhn_is_valid("79927398713")
    assert not ids.luhn_is_valid("79927398710")
    assert ids.luhn_complete("7992739871") == "79927398713"
    assert not ids.luhn_is_valid("")
    assert not ids.luhn_is_valid("7992 7398 713")
    with pytest.raises(ValueError):
        ids.luhn_complete("79a")


@given(digit_strings)
def test_luhn_complete_is_valid_and_any_single_change_breaks_it(prefix):
    full = ids.luhn_complete(prefix)
    assert ids.luhn_is_valid(full)
    for i in range(len(full)):
        changed = full[:i] + str((int(full[i]) + 1) % 10) + full[i + 1:]
        assert not ids.luhn_is_valid(changed)


def test_siren_and_siret():
    assert ids.siren_is_valid("356000000")  # La Poste
    assert ids.siren_is_valid("552100554")
    assert not ids.siren_is_valid("552100555")
    assert not ids.siren_is_valid("55210055")
    # FR Core's hopitaltest-eg-4-members puts 14 digits in its SIREN slice
    assert not ids.siren_is_valid("26350007609999")
    siret = ids.luhn_complete("5521005540001")
    assert ids.siret_is_valid(siret)
    assert not ids.siret_is_valid(siret[:-1] + str((int(siret[-1]) + 1) % 10))
    assert not ids.siret_is_valid("552100554")


def test_siret_la_poste():
    assert ids.siret_is_valid("35600000000048")  # head office: the one La Poste SIRET that passes Luhn
    # other establishments: digit sum divisible by 5 instead of Luhn
    assert not ids.luhn_is_valid("35600000000001") and ids.siret_is_valid("35600000000001")
    assert not ids.siret_is_valid("35600000000002")
    # the exception is La Poste's alone
    assert not ids.luhn_is_valid("35600100000000") and not ids.siret_is_valid("35600100000000")


def test_finess():
    assert ids.finess_is_valid("750712184")
    # two ANS examples fail the (unverified) Luhn key: FACTS.md
    assert not ids.finess_is_valid("754567860")
    assert not ids.finess_is_valid("458174839")
    assert not ids.finess_is_valid("75071218")
    assert not ids.finess_is_valid("7507121840")


def test_rpps_is_shape_only():
    assert ids.rpps_is_valid("10003461033")  # an ANS RPPS that fails Luhn: the key rule is unknown
    assert not ids.luhn_is_valid("10003461033")
    assert not ids.rpps_is_valid("1000346103")
    assert not ids.rpps_is_valid("1000346103X")
    assert not ids.rpps_is_valid("810003461033")


def test_systems():
    assert ids.INS_NIR_SYSTEM == "urn:oid:1.2.250.1.213.1.4.8"
    assert ids.NIR_BILLING_SYSTEM == "urn:oid:1.2.250.1.213.1.4.13"
    assert ids.RPPS_SYSTEM == "https://rpps.esante.gouv.fr"
    assert ids.FINESS_SYSTEM == "https://finess.esante.gouv.fr"
    assert ids.SIRENE_SYSTEM == "https://sirene.fr"
    assert ids.IDNATPS_SYSTEM == "urn:oid:1.2.250.1.71.4.2.1"
    assert ids.IDNATST_SYSTEM == "urn:oid:1.2.250.1.71.4.2.2"
