"""The fixed facts synthetic traffic is drawn from: countries, carriers, prices, texts.

Numbers follow each country's mobile numbering plan; MCC/MNC pairs and carrier
names are the real ones; prices are of the order carriers publish (USD per part).
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["COUNTRIES", "INBOUND_BODIES", "OUTBOUND_BODIES", "TAGS", "Country"]


@dataclass(frozen=True)
class Country:
    iso: str
    dial: str  # country calling code, without '+'
    zones: tuple[str, ...]  # IANA zones accounts of this country use
    mobile_prefixes: tuple[str, ...]  # national prefixes of mobile numbers
    digits: int  # national digits after the prefix
    carriers: tuple[tuple[str, str, str], ...]  # (name, mcc, mnc)
    sms_rate: str  # USD per outbound SMS part
    mms_rate: str  # USD per outbound MMS
    inbound_rate: str  # USD per inbound message


COUNTRIES: tuple[Country, ...] = (
    Country(
        "US",
        "1",
        ("America/New_York", "America/Chicago", "America/Los_Angeles"),
        ("312", "415", "646", "512", "305", "206"),
        7,
        (
            ("T-Mobile USA", "310", "260"),
            ("AT&T Mobility", "310", "410"),
            ("Verizon", "311", "480"),
        ),
        "0.004000",
        "0.015000",
        "0.004000",
    ),
    Country(
        "CA",
        "1",
        ("America/Toronto", "America/Vancouver"),
        ("416", "604", "514"),
        7,
        (("Rogers", "302", "720"), ("Bell Mobility", "302", "610"), ("Telus", "302", "220")),
        "0.004500",
        "0.016000",
        "0.004000",
    ),
    Country(
        "GB",
        "44",
        ("Europe/London",),
        ("74", "75", "77", "78", "79"),
        8,
        (("EE", "234", "30"), ("Vodafone UK", "234", "15"), ("O2 UK", "234", "10")),
        "0.035000",
        "0.120000",
        "0.000000",
    ),
    Country(
        "DE",
        "49",
        ("Europe/Berlin",),
        ("151", "160", "170", "176"),
        8,
        (("Telekom", "262", "01"), ("Vodafone DE", "262", "02"), ("O2 DE", "262", "03")),
        "0.078000",
        "0.250000",
        "0.000000",
    ),
    Country(
        "FR",
        "33",
        ("Europe/Paris",),
        ("6", "7"),
        8,
        (("Orange", "208", "01"), ("SFR", "208", "10"), ("Bouygues", "208", "20")),
        "0.065000",
        "0.250000",
        "0.000000",
    ),
    Country(
        "BR",
        "55",
        ("America/Sao_Paulo",),
        ("119", "219", "319"),
        8,
        (("Vivo", "724", "06"), ("Claro BR", "724", "05"), ("TIM Brasil", "724", "04")),
        "0.032500",
        "0.110000",
        "0.000000",
    ),
    Country(
        "IN",
        "91",
        ("Asia/Kolkata",),
        ("98", "99", "70", "81"),
        8,
        (("Jio", "405", "857"), ("Airtel", "404", "10"), ("Vi India", "404", "20")),
        "0.002400",
        "0.010000",
        "0.000000",
    ),
    Country(
        "AU",
        "61",
        ("Australia/Sydney",),
        ("4",),
        8,
        (("Telstra", "505", "01"), ("Optus", "505", "02"), ("Vodafone AU", "505", "03")),
        "0.041500",
        "0.130000",
        "0.000000",
    ),
)

# Texts contain commas, quotes, line breaks, JSON and non-ASCII on purpose: reports
# must carry them through CSV and JSON unchanged.  "{}" is where a number goes.
OUTBOUND_BODIES: tuple[str, ...] = (
    "Your verification code is {}. It expires in 10 minutes.",
    "Hi, your order #{} has shipped, track it at https://ex.co/t",
    'Reply "STOP" to opt out, or "HELP" for help. Ref {}',
    "Appointment reminder:\nTomorrow at 10:30\nRef {}",
    '{{"event": "alert", "level": 3, "id": {}}}',
    "Ihr Code lautet {} – gültig für 5 Minuten.",
    "Flash sale! 20% off, today only, code SAVE{}",
    "Your balance is $1,{}.00; thanks for banking with us",
)

INBOUND_BODIES: tuple[str, ...] = (
    "STOP",
    "Yes, confirm {}",
    "ok, thanks!",
    'He said "call me" {}',
    "HELP",
    "Can we move it to 3pm?\nThanks",
    "{}",
)

TAGS: tuple[str, ...] = (
    "otp",
    "2fa",
    "marketing",
    "transactional",
    "alerts",
    "support",
    "campaign-1",
    "campaign-2",
    "campaign-7",
    "black-friday",
    "reminders",
    "billing",
)
