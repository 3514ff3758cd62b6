"""The checksums that tell a card number or an IBAN from any run of digits (pure)."""

from __future__ import annotations

# ISO 3166 codes of the countries that issue IBANs (SWIFT registry), for a cheap first check.
_COUNTRIES = (
    "AD AE AL AT AZ BA BE BG BH BI BR BY CH CR CY CZ DE DJ DK DO EE EG ES FI FK FO FR GB GE GI "
    "GL GR GT HN HR HU IE IL IQ IS IT JO KW KZ LB LC LI LT LU LV LY MC MD ME MK MN MR MT MU NI "
    "NL NO OM PK PL PS PT QA RO RS RU SA SC SD SE SI SK SM SO ST SV TL TN TR UA VA VG XK YE"
)
IBAN_COUNTRIES = frozenset(_COUNTRIES.split(" "))
IBAN_MIN, IBAN_MAX = 15, 34


def luhn_ok(digits: str) -> bool:
    """The Luhn check of a string of ASCII digits (payment card numbers)."""
    total = 0
    for position, char in enumerate(reversed(digits)):
        value = ord(char) - 48
        if position % 2:
            value = value * 2 - 9 if value > 4 else value * 2
        total += value
    return total % 10 == 0


def iban_ok(iban: str) -> bool:
    """ISO 13616: a known country, a plausible length and mod 97 of the rearranged number is 1."""
    if not IBAN_MIN <= len(iban) <= IBAN_MAX or iban[:2] not in IBAN_COUNTRIES:
        return False
    rearranged = iban[4:] + iban[:4]
    number = "".join(str(int(char, 36)) for char in rearranged)
    return int(number) % 97 == 1
