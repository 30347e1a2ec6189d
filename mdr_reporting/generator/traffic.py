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
    own = _own_numbers(rng, account, people, outbound)
    cli = pc.if_else(pa.array(outbound), own, remote)
    cld = pc.if_else(pa.array(outbound), remote, own)

    carrier_pick = rng.integers(0, 3, size=base)
    carriers = [c.carriers[i] for c in COUNTRIES for i in range(3)]
    carrier_index = pa.array(remote_country * 3 + carrier_pick)
    carrier = pa.array([c[0] for c in carriers]).take(carrier_index)
    mcc = pa.array([c[1] for c in carriers]).take(carrier_index)
    mnc = pa.array([c[2] for c in carriers]).take(carrier_index)
    country_code = pa.array([c.iso for c in COUNTRIES]).take(pa.array(remote_country))

    status, error_code = _statuses(rng, outbound, end_us - created)
    sent_at, completed_at = _times(rng, created, status, end_us)

    rate = _rates(remote_country, outbound, mms)
    cost = rate * parts

    connection = _per_account(rng, account, people.connections)
    profile = _per_account(rng, account, people.profiles)
    tags = _tags(rng, base)
    body = _bodies(rng, outbound)
    ids = _uuids(rng, base)

    table = pa.table(
        {
            "id": ids,
            "account_id": people.ids.take(pa.array(account)),
            "created_at": _ts(created),
            "updated_at": _ts(np.fmax(created, np.fmax(sent_at, completed_at))),
            "sent_at": _ts(sent_at),
            "completed_at": _ts(completed_at),
            "direction": _pick(("inbound", "outbound"), outbound),
            "cli": cli,
            "cld": cld,
            "message_type": _pick(("SMS", "MMS"), mms),
            "parts": pa.array(parts.astype(np.int32)),
            "status": _pick(STATUSES, status),
            "error_code": error_code,
            "carrier": carrier,
            "mcc": mcc,
            "mnc": mnc,
            "country_code": country_code,
            "connection_id": connection,
            "profile_id": profile,
            "tags": tags,
            "rate": _money(rate),
            "cost": _money(cost),
            "currency": _pick(("USD",), np.zeros(base, dtype=np.int8)),
            "media_size_bytes": pa.array(media, mask=media < 0),
            "message_body": body,
        },
        schema=RECORD_SCHEMA,
    )
    return _with_earlier_versions(rng, table, twice, status, sent_at)


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
) -> pa.Array:
    """The account's side: its long codes, and for some outbound a short code or brand name."""
    n = len(account)
    sizes = np.array([len(s) for s in people.senders])
    long_codes = sizes - 2
    pick = (rng.random(n) * long_codes[account]).astype(np.int64)
    kind = rng.random(n)
    pick = np.where(outbound & (kind < 0.06), long_codes[account], pick)  # short code
    pick = np.where(outbound & (kind >= 0.06) & (kind < 0.10), long_codes[account] + 1, pick)
    flat = pa.concat_arrays(people.senders)
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    return flat.take(pa.array(starts[account] + pick))


def _statuses(
    rng: np.random.Generator, outbound: np.ndarray, age: np.ndarray
) -> tuple[np.ndarray, pa.Array]:
    """Status codes (index into the status list of generate) by age, and error codes."""
    n = len(age)
    recent = rng.choice(3, size=n, p=[0.2, 0.3, 0.5])
    settling = rng.choice([2, 3, 4, 5, 6], size=n, p=[0.15, 0.75, 0.06, 0.03, 0.01])
    final = rng.choice([3, 4, 5, 6], size=n, p=[0.89, 0.06, 0.03, 0.02])
    status = np.where(age < RECENT, recent, np.where(age < SETTLING, settling, final))
    status = np.where(outbound, status, 7)
    codes = ("30003", "30005", "30006", "30007", "40002", "40300")
    pick = rng.integers(0, 4, size=n)
    code = np.where(status == 5, pick, 4 + pick % 2)
    return status, pa.array(codes).take(pa.array(code, mask=(status != 5) & (status != 6)))


def _times(
    rng: np.random.Generator, created: np.ndarray, status: np.ndarray, end_us: int
) -> tuple[np.ndarray, np.ndarray]:
    """sent_at and completed_at in microseconds (NaN-free: missing is the int64 minimum)."""
    n = len(created)
    send_delay = np.round(rng.lognormal(11.5, 1.0, size=n)).astype(np.int64)  # ~0.1 s
    done_delay = np.round(rng.lognormal(15.0, 1.2, size=n)).astype(np.int64)  # ~3 s
    missing = np.iinfo(np.int64).min
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


def _per_account(rng: np.random.Generator, account: np.ndarray, pools: list[pa.Array]) -> pa.Array:
    sizes = np.array([len(p) for p in pools])
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    pick = (rng.random(len(account)) * sizes[account]).astype(np.int64)
    return pa.concat_arrays(pools).take(pa.array(starts[account] + pick))


def _tags(rng: np.random.Generator, n: int) -> pa.Array:
    counts = rng.choice(4, size=n, p=[0.3, 0.45, 0.2, 0.05])
    offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int32)
    values = pa.array(TAGS).take(pa.array(rng.integers(0, len(TAGS), size=int(offsets[-1]))))
    return pa.ListArray.from_arrays(pa.array(offsets), values, type=pa.list_(pa.string()))


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
    """Random version-4 style UUID strings, built as bytes without a Python loop."""
    raw = np.frombuffer(rng.bytes(16 * n), dtype=np.uint8).reshape(n, 16).copy()
    raw[:, 6] = (raw[:, 6] & 0x0F) | 0x40
    raw[:, 8] = (raw[:, 8] & 0x3F) | 0x80
    hexed = _HEX_PAIRS[raw].reshape(n, 32)
    dash = np.full((n, 1), ord("-"), dtype=np.uint8)
    groups = [hexed[:, :8], hexed[:, 8:12], hexed[:, 12:16], hexed[:, 16:20], hexed[:, 20:]]
    pieces = [piece for group in groups for piece in (group, dash)][:-1]
    text = np.concatenate(pieces, axis=1)
    return pa.array(np.ascontiguousarray(text).view("S36").ravel()).cast(pa.string())


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


def _with_earlier_versions(
    rng: np.random.Generator, table: pa.Table, twice: int, status: np.ndarray, sent: np.ndarray
) -> pa.Table:
    """Add a ``sent`` version, emitted at ``sent_at``, just before ``twice`` finished messages.

    Rows are copied in one gather per column (the source order is already by time).
    """
    if twice == 0:
        return table
    n = table.num_rows
    eligible = np.flatnonzero((status >= 3) & (status <= 6) & (sent != np.iinfo(np.int64).min))
    chosen = np.sort(rng.choice(eligible, size=min(twice, len(eligible)), replace=False))
    copies = np.ones(n, dtype=np.int64)
    copies[chosen] += 1
    copies[: twice - len(chosen)] += 1  # too few finished messages (tiny runs): plain re-sends
    source = pa.array(np.repeat(np.arange(n, dtype=np.int64), copies))
    first_copy = np.concatenate([[0], np.cumsum(copies)[:-1]])
    early_mask = np.zeros(len(source), dtype=bool)
    early_mask[first_copy[chosen]] = True
    early = pa.array(early_mask)
    columns = {name: table.column(name).take(source) for name in table.column_names}
    columns["status"] = pc.if_else(early, "sent", columns["status"])
    for name in ("completed_at", "error_code"):
        columns[name] = pc.if_else(early, pa.scalar(None, columns[name].type), columns[name])
    columns["updated_at"] = pc.if_else(early, columns["sent_at"], columns["updated_at"])
    return pa.table(columns, schema=RECORD_SCHEMA)
