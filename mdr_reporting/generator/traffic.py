"""Synthetic MDR traffic, vectorised with numpy: ten million rows in seconds.

Every random draw comes from one ``numpy.random.Generator`` seeded by the caller,
in a fixed order, so the same arguments give the same table (and the same bytes
once written).  What makes it realistic is spelled out in ``generate``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from mdr_reporting.domain.records import MONEY, RECORD_SCHEMA, TIMESTAMP
from mdr_reporting.generator.world import COUNTRIES, INBOUND_BODIES, OUTBOUND_BODIES, TAGS

__all__ = ["account_ids", "generate"]

MICROS = 1_000_000
HOUR = 3600 * MICROS
DAY = 24 * HOUR
# Relative traffic by local hour of day: quiet nights, a morning ramp, busy afternoons.
DIURNAL = np.array(
    [4, 3, 2, 2, 2, 3, 6, 12, 22, 30, 34, 35, 35, 34, 34, 35, 36, 35, 30, 25, 20, 15, 10, 6],
    dtype=np.float64,
)
WEEKEND = 0.6
TWICE_SHARE = 0.05  # ids emitted twice: a "sent" version, then the final one
RECENT = 10 * 60 * MICROS  # younger than this: still queued, sending or sent
SETTLING = 2 * HOUR  # younger than this: some still "sent"
MISSING = np.iinfo(np.int64).min  # no timestamp
ERROR_CODES = ("30003", "30005", "30006", "30007", "40002", "40300")
STATUSES = (
    "queued",
    "sending",
    "sent",
    "delivered",
    "delivery_unconfirmed",
    "delivery_failed",
    "sending_failed",
    "received",
)


def account_ids(count: int) -> list[str]:
    width = max(2, len(str(count)))
    return [f"acct-{i:0{width}d}" for i in range(1, count + 1)]


@dataclass(frozen=True)
class _Accounts:
    ids: pa.Array
    weights: np.ndarray
    country: np.ndarray  # index into COUNTRIES
    zone: list[str]
    senders: list[pa.Array]  # per account: its own numbers, short code, alphanumeric id
    connections: list[pa.Array]
    profiles: list[pa.Array]


def generate(records: int, accounts: int, days: int, start: date, seed: int) -> pa.Table:
    """``records`` rows (RECORD_SCHEMA) spread over ``days`` UTC days from ``start``.

    A few big accounts and many small (Zipf weights); a diurnal curve in each
    account's local time, quieter at weekends; 70% outbound; 10% MMS with media
    sizes; multi-part SMS; E.164 numbers of the account's country (and some
    foreign), short codes and alphanumeric senders; statuses by age (recent ones
    still queued/sending/sent, older ones final with a few percent failed); some
    ids twice (a ``sent`` version, then the final one); cost = rate x parts.
    """
    if records < 0 or accounts < 1 or days < 1:
        raise ValueError("records >= 0, accounts >= 1 and days >= 1")
    rng = np.random.default_rng(seed)
    people = _accounts(rng, accounts)
    twice = int(records * TWICE_SHARE) if records >= 20 else 0
    base = records - twice
    first = datetime.combine(start, time(), tzinfo=UTC)
    start_us = int(first.timestamp()) * MICROS
    end_us = start_us + days * DAY

    account = rng.choice(accounts, size=base, p=people.weights)
    created = _created(rng, account, people, start, days, start_us)
    order = np.argsort(created, kind="stable")
    account, created = account[order], created[order]

    outbound = rng.random(base) < 0.70
    mms = rng.random(base) < 0.10
    parts = np.where(
        mms, 1, rng.choice([1, 2, 3, 4, 6], size=base, p=[0.74, 0.18, 0.05, 0.02, 0.01])
    )
    media = np.where(mms, np.round(rng.lognormal(11.5, 0.9, size=base)).astype(np.int64), -1)

    home = people.country[account]
    foreign = rng.random(base) < 0.12
    remote_country = np.where(foreign, rng.integers(0, len(COUNTRIES), size=base), home)
    remote = _numbers(rng, remote_country)
    senders, own = _own_numbers(rng, account, people, outbound)
    carrier_index = remote_country * 3 + rng.integers(0, 3, size=base)

    status, error = _statuses(rng, outbound, end_us - created)
    sent_at, completed_at = _times(rng, created, status, end_us)
    source, early = _versions(rng, twice, status, sent_at)

    connections, connection = _per_account(rng, account, people.connections)
    profiles, profile = _per_account(rng, account, people.profiles)
    tags = _tags(rng, base)
    body = _bodies(rng, outbound)
    ids = _uuid_bytes(rng, base)

    # Every row of the output, in time order: each message, preceded by its earlier
    # "sent" version when it has one.  Numbers are expanded with numpy; strings once.
    rows = pa.array(source)
    account, created, outbound, mms = (
        account[source],
        created[source],
        outbound[source],
        mms[source],
    )
    parts, media, remote_country = parts[source], media[source], remote_country[source]
    carrier_index, status, error = carrier_index[source], status[source], error[source]
    sent_at, completed_at = sent_at[source], completed_at[source]
    status[early] = STATUSES.index("sent")
    completed_at[early] = MISSING
    error[early] = -1
    rate = _rates(remote_country, outbound, mms)
    own_side = senders.take(pa.array(own[source]))
    remote_side = remote.take(rows)
    carriers = [c.carriers[i] for c in COUNTRIES for i in range(3)]

    return pa.table(
        {
            "id": _uuid_text(ids[source]),
            "account_id": people.ids.take(pa.array(account)),
            "created_at": _ts(created),
            "updated_at": _ts(np.fmax(created, np.fmax(sent_at, completed_at))),
            "sent_at": _ts(sent_at),
            "completed_at": _ts(completed_at),
            "direction": _pick(("inbound", "outbound"), outbound),
            "cli": pc.if_else(pa.array(outbound), own_side, remote_side),
            "cld": pc.if_else(pa.array(outbound), remote_side, own_side),
            "message_type": _pick(("SMS", "MMS"), mms),
            "parts": pa.array(parts.astype(np.int32)),
            "status": _pick(STATUSES, status),
            "error_code": pa.array(ERROR_CODES).take(pa.array(error, mask=error < 0)),
            "carrier": _pick(tuple(c[0] for c in carriers), carrier_index),
            "mcc": _pick(tuple(c[1] for c in carriers), carrier_index),
            "mnc": _pick(tuple(c[2] for c in carriers), carrier_index),
            "country_code": _pick(tuple(c.iso for c in COUNTRIES), remote_country),
            "connection_id": connections.take(pa.array(connection[source])),
            "profile_id": profiles.take(pa.array(profile[source])),
            "tags": tags.take(rows),
            "rate": _money(rate),
            "cost": _money(rate * parts),
            "currency": _pick(("USD",), np.zeros(len(source), dtype=np.int8)),
            "media_size_bytes": pa.array(media, mask=media < 0),
            "message_body": body.take(rows),
        },
        schema=RECORD_SCHEMA,
    )


def _versions(
    rng: np.random.Generator, twice: int, status: np.ndarray, sent: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Which message each output row copies, and which rows are an earlier ``sent`` version.

    ``twice`` finished outbound messages get a version emitted at their ``sent_at``
    just before the final one (in tiny runs with too few, some rows are re-sent).
    """
    n = len(status)
    eligible = np.flatnonzero((status >= 3) & (status <= 6) & (sent != MISSING))
    chosen = np.sort(rng.choice(eligible, size=min(twice, len(eligible)), replace=False))
    copies = np.ones(n, dtype=np.int64)
    copies[chosen] += 1
    copies[: twice - len(chosen)] += 1
    source = np.repeat(np.arange(n, dtype=np.int64), copies)
    early = np.zeros(len(source), dtype=bool)
    early[np.concatenate([[0], np.cumsum(copies)[:-1]])[chosen]] = True
    return source, early


def _accounts(rng: np.random.Generator, count: int) -> _Accounts:
    ranks = np.arange(1, count + 1, dtype=np.float64)
    weights = 1.0 / ranks**1.1
    weights /= weights.sum()
    country = np.where(
        rng.random(count) < 0.6, 0, rng.integers(0, len(COUNTRIES), size=count)
    ).astype(np.int64)
    zone = [COUNTRIES[c].zones[int(rng.integers(len(COUNTRIES[c].zones)))] for c in country]
    senders, connections, profiles = [], [], []
    for i in range(count):
        own = _numbers(rng, np.full(int(rng.integers(3, 40)), country[i]))
        extra = [f"{int(rng.integers(20000, 99999))}", f"BRAND{i + 1:02d}"]
        senders.append(pa.concat_arrays([own, pa.array(extra)]))
        connections.append(
            pa.array(
                [
                    str(int(v))
                    for v in rng.integers(10**18, 2 * 10**18, size=int(rng.integers(1, 4)))
                ]
            )
        )
        profiles.append(_uuids(rng, int(rng.integers(1, 4))))
    return _Accounts(
        pa.array(account_ids(count)), weights, country, zone, senders, connections, profiles
    )


def _created(
    rng: np.random.Generator,
    account: np.ndarray,
    people: _Accounts,
    start: date,
    days: int,
    start_us: int,
) -> np.ndarray:
    """Instants following the diurnal curve of each account's local time (rejection sampling)."""
    offsets = np.empty((len(people.zone), days), dtype=np.int64)
    for a, name in enumerate(people.zone):
        zone = ZoneInfo(name)
        for d in range(days):
            noon = datetime.combine(start + timedelta(days=d), time(12), tzinfo=UTC)
            offset = noon.astimezone(zone).utcoffset() or timedelta()
            offsets[a, d] = int(offset.total_seconds()) * MICROS
    weekday = np.array([(start + timedelta(days=d)).weekday() for d in range(days)])
    day_weight = np.where(weekday >= 5, WEEKEND, 1.0)
    peak = DIURNAL.max()
    out = np.empty(len(account), dtype=np.int64)
    todo = np.arange(len(account))
    while len(todo):
        candidate = start_us + rng.integers(0, days * DAY, size=len(todo))
        day = (candidate - start_us) // DAY
        local = candidate + offsets[account[todo], day]
        hour = (local // HOUR) % 24
        accept = rng.random(len(todo)) * peak < DIURNAL[hour] * day_weight[day]
        out[todo[accept]] = candidate[accept]
        todo = todo[~accept]
    return out


def _numbers(rng: np.random.Generator, country: np.ndarray) -> pa.Array:
    """E.164 mobile numbers of each row's country."""
    n = len(country)
    prefix_table = [f"+{c.dial}{p}" for c in COUNTRIES for p in c.mobile_prefixes]
    first_prefix = np.cumsum([0] + [len(c.mobile_prefixes) for c in COUNTRIES])[:-1]
    counts = np.array([len(c.mobile_prefixes) for c in COUNTRIES])
    prefix = first_prefix[country] + (rng.random(n) * counts[country]).astype(np.int64)
    digits = np.array([c.digits for c in COUNTRIES])[country]
    low = 10 ** (digits - 1)
    subscriber = low + (rng.random(n) * (9 * low)).astype(np.int64)
    return pc.binary_join_element_wise(
        pa.array(prefix_table).take(pa.array(prefix)),
        pc.cast(pa.array(subscriber), pa.string()),
        "",
    )


def _own_numbers(
    rng: np.random.Generator, account: np.ndarray, people: _Accounts, outbound: np.ndarray
) -> tuple[pa.Array, np.ndarray]:
    """The account's side: its long codes, and for some outbound a short code or brand name."""
    n = len(account)
    sizes = np.array([len(s) for s in people.senders])
    long_codes = sizes - 2
    pick = (rng.random(n) * long_codes[account]).astype(np.int64)
    kind = rng.random(n)
    pick = np.where(outbound & (kind < 0.06), long_codes[account], pick)  # short code
    pick = np.where(outbound & (kind >= 0.06) & (kind < 0.10), long_codes[account] + 1, pick)
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    index: np.ndarray = starts[account] + pick
    return pa.concat_arrays(people.senders), index


def _statuses(
    rng: np.random.Generator, outbound: np.ndarray, age: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Status (index into STATUSES) by age, and error code (index into ERROR_CODES, or -1)."""
    n = len(age)
    recent = rng.choice(3, size=n, p=[0.2, 0.3, 0.5])
    settling = rng.choice([2, 3, 4, 5, 6], size=n, p=[0.15, 0.75, 0.06, 0.03, 0.01])
    final = rng.choice([3, 4, 5, 6], size=n, p=[0.89, 0.06, 0.03, 0.02])
    status = np.where(age < RECENT, recent, np.where(age < SETTLING, settling, final))
    status = np.where(outbound, status, 7)
    pick = rng.integers(0, 4, size=n)
    code = np.where(status == 5, pick, np.where(status == 6, 4 + pick % 2, -1))
    return status, code


def _times(
    rng: np.random.Generator, created: np.ndarray, status: np.ndarray, end_us: int
) -> tuple[np.ndarray, np.ndarray]:
    """sent_at and completed_at in microseconds (NaN-free: missing is the int64 minimum)."""
    n = len(created)
    send_delay = np.round(rng.lognormal(11.5, 1.0, size=n)).astype(np.int64)  # ~0.1 s
    done_delay = np.round(rng.lognormal(15.0, 1.2, size=n)).astype(np.int64)  # ~3 s
    missing = MISSING
    has_sent = (status >= 2) & (status <= 5)
    sent = np.where(has_sent, np.minimum(created + send_delay, end_us - 1), missing)
    final = (status >= 3) & (status <= 6)
    completed = np.where(
        final,
        np.minimum(np.where(has_sent, sent, created) + done_delay, end_us - 1),
        missing,
    )
    completed = np.where(status == 7, created, completed)
    sent = np.where(status == 7, created, sent)
    return sent, completed


def _rates(country: np.ndarray, outbound: np.ndarray, mms: np.ndarray) -> np.ndarray:
    """Price per part in micro-dollars, by remote country, direction and type."""

    def micros(text: str) -> int:
        whole, _, fraction = text.partition(".")
        return int(whole) * MICROS + int(fraction.ljust(6, "0"))

    sms = np.array([micros(c.sms_rate) for c in COUNTRIES])
    mms_rate = np.array([micros(c.mms_rate) for c in COUNTRIES])
    inbound = np.array([micros(c.inbound_rate) for c in COUNTRIES])
    rate: np.ndarray = np.where(
        outbound, np.where(mms, mms_rate[country], sms[country]), inbound[country]
    )
    return rate


def _per_account(
    rng: np.random.Generator, account: np.ndarray, pools: list[pa.Array]
) -> tuple[pa.Array, np.ndarray]:
    """One value from each row's account pool: (all pools, index of the value)."""
    sizes = np.array([len(p) for p in pools])
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    pick = (rng.random(len(account)) * sizes[account]).astype(np.int64)
    index: np.ndarray = starts[account] + pick
    return pa.concat_arrays(pools), index


def _tags(rng: np.random.Generator, n: int) -> pa.Array:
    """0 to 3 tags a record, never one tag twice in a record (three distinct picks per
    row, of which the first ``count`` are kept)."""
    counts = rng.choice(4, size=n, p=[0.3, 0.45, 0.2, 0.05])
    offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int32)
    picks = _distinct3(rng, n, len(TAGS))
    keep = np.arange(3)[None, :] < counts[:, None]
    values = pa.array(TAGS).take(pa.array(picks[keep]))
    return pa.ListArray.from_arrays(pa.array(offsets), values, type=pa.list_(pa.string()))


def _distinct3(rng: np.random.Generator, n: int, size: int) -> np.ndarray:
    """An (n, 3) matrix of indexes below ``size``, distinct within each row, uniform."""
    first = rng.integers(0, size, size=n)
    second = (first + 1 + rng.integers(0, size - 1, size=n)) % size
    low, high = np.minimum(first, second), np.maximum(first, second)
    third = rng.integers(0, size - 2, size=n)
    third += third >= low  # skip the two taken, in increasing order
    third += third >= high
    return np.stack([first, second, third], axis=1)


def _bodies(rng: np.random.Generator, outbound: np.ndarray) -> pa.Array:
    n = len(outbound)
    templates = [*OUTBOUND_BODIES, *INBOUND_BODIES]
    heads = pa.array([t.split("{}", 1)[0].replace("{{", "{").replace("}}", "}") for t in templates])
    tails = pa.array(
        [
            t.split("{}", 1)[1].replace("{{", "{").replace("}}", "}") if "{}" in t else ""
            for t in templates
        ]
    )
    out_pick = rng.integers(0, len(OUTBOUND_BODIES), size=n)
    in_pick = len(OUTBOUND_BODIES) + rng.integers(0, len(INBOUND_BODIES), size=n)
    pick = pa.array(np.where(outbound, out_pick, in_pick))
    has_number = pa.array(["{}" in t for t in templates]).take(pick)
    number = pc.cast(pa.array(rng.integers(100000, 999999, size=n)), pa.string())
    number = pc.if_else(has_number, number, "")
    return pc.binary_join_element_wise(heads.take(pick), number, tails.take(pick), "")


def _uuids(rng: np.random.Generator, n: int) -> pa.Array:
    return _uuid_text(_uuid_bytes(rng, n))


def _uuid_bytes(rng: np.random.Generator, n: int) -> np.ndarray:
    """Random version-4 UUIDs as an (n, 16) byte matrix."""
    raw = np.frombuffer(rng.bytes(16 * n), dtype=np.uint8).reshape(n, 16).copy()
    raw[:, 6] = (raw[:, 6] & 0x0F) | 0x40
    raw[:, 8] = (raw[:, 8] & 0x3F) | 0x80
    return raw


def _uuid_text(raw: np.ndarray) -> pa.Array:
    """UUID strings from their bytes, two bytes at a time through a lookup table."""
    n = len(raw)
    hexed = _HEX_QUADS[np.ascontiguousarray(raw).view("<u2")].reshape(n, 32)
    text = np.full((n, 36), ord("-"), dtype=np.uint8)
    for start, end, at in ((0, 8, 0), (8, 12, 9), (12, 16, 14), (16, 20, 19), (20, 32, 24)):
        text[:, at : at + end - start] = hexed[:, start:end]
    return pa.array(text.view("S36").ravel()).cast(pa.string())


_HEX_PAIRS = np.frombuffer(
    b"".join(f"{value:02x}".encode() for value in range(256)), dtype=np.uint8
).reshape(256, 2)


def _pick(values: tuple[str, ...], index: np.ndarray) -> pa.Array:
    """Strings by index without building Python objects per row."""
    return pa.array(values).take(pa.array(index.astype(np.int64)))


def _ts(micros: np.ndarray) -> pa.Array:
    missing = micros == np.iinfo(np.int64).min
    return pa.array(np.where(missing, 0, micros), mask=missing).cast(TIMESTAMP)


def _money(micros: np.ndarray) -> pa.Array:
    """int64 micro-units as exact decimal128(18, 6), by laying out the 128-bit integers."""
    values = micros.astype(np.int64)
    words = np.empty(len(values) * 2, dtype=np.int64)
    words[0::2] = values
    words[1::2] = values >> 63
    return pa.Array.from_buffers(MONEY, len(values), [None, pa.py_buffer(words.tobytes())])


_WORDS = np.arange(65536)
# Hex text of every 16-bit little-endian word: its low byte first, then its high byte.
_HEX_QUADS = np.concatenate([_HEX_PAIRS[_WORDS & 0xFF], _HEX_PAIRS[_WORDS >> 8]], axis=1)
