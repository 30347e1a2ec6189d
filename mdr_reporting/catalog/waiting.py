"""Where a queued request stands: how many requests a worker will claim before it.

Claims are fair (catalog/jobs.py): the account with the fewest builds running goes
first, then the one whose turn came longest ago, and within an account the oldest
request. Give each waiting request a level: its account's running builds plus the
requests of its account ahead of it. Workers take the lowest level first; at one
level, accounts with more builds running come first (they reached it without taking
a turn, so their turn is older), then the one whose turn came longest ago. Requests
ahead = the lower levels of every account, plus the accounts before this one at its
level. This is the order exactly when every account has nothing running, or when
builds outlast the wait; when some builds end sooner, it is an estimate.

Two queries, only for Pending requests: the waiting and running counts per account
(over the Pending rows, ``ix_requests_status_lease``), and the rank of each asked-for
request within its account (``ix_requests_account_status``).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from mdr_reporting.catalog.schema import claim_turns, requests
from mdr_reporting.catalog.store import Catalog
from mdr_reporting.domain.enums import RequestStatus
from mdr_reporting.domain.requests import RequestState

__all__ = ["queue_positions"]

_EPOCH = datetime.min  # an account never claimed before has its turn first


def queue_positions(
    catalog: Catalog, states: Sequence[RequestState], now: datetime
) -> dict[str, int]:
    """Requests ahead of each of these waiting (Pending, not building) requests, by id."""
    if not states:
        return {}
    pending = [requests.c.status == int(RequestStatus.PENDING), requests.c.deleted_at.is_(None)]
    building = sa.and_(requests.c.lease_owner.is_not(None), requests.c.lease_expires_at > now)
    waiting = sa.not_(building)
    counts = (
        sa.select(
            requests.c.account_id,
            sa.func.sum(sa.case((building, 1), else_=0)).label("building"),
            sa.func.sum(sa.case((building, 0), else_=1)).label("waiting"),
            sa.func.min(sa.case((waiting, requests.c.created_at))).label("first_waiting"),
        )
        .where(*pending)
        .group_by(requests.c.account_id)
        .subquery("counts")
    )
    per_account = sa.select(counts, claim_turns.c.last_claimed_at).select_from(
        counts.outerjoin(claim_turns, claim_turns.c.account_id == counts.c.account_id)
    )
    ranked = (
        sa.select(
            requests.c.id,
            requests.c.account_id,
            (
                sa.func.row_number().over(
                    partition_by=requests.c.account_id,
                    order_by=(requests.c.created_at, requests.c.id),
                )
                - 1
            ).label("ahead"),
        )
        .where(*pending, waiting, requests.c.account_id.in_({s.account_id for s in states}))
        .subquery("ranked")
    )
    own = sa.select(ranked.c.id, ranked.c.account_id, ranked.c.ahead).where(
        ranked.c.id.in_([s.id for s in states])
    )
    with catalog.engine.connect() as db:
        accounts = {row.account_id: row for row in db.execute(per_account)}
        ranks = db.execute(own).all()
    return {row.id: _position(row.account_id, int(row.ahead), accounts) for row in ranks}


def _turn_key(row: Any) -> tuple[datetime, datetime]:
    """Turn order among accounts with as many builds running: longest since their last
    turn, then (among accounts never claimed) the oldest waiting request."""
    last, first = row.last_claimed_at, row.first_waiting
    return (
        last.replace(tzinfo=None) if last else _EPOCH,
        first.replace(tzinfo=None) if first else _EPOCH,
    )


def _position(account: str, ahead: int, accounts: dict[str, Any]) -> int:
    mine = accounts[account]
    running = int(mine.building or 0)
    level = running + ahead
    key = _turn_key(mine)
    position = ahead
    for other, row in accounts.items():
        if other == account:
            continue
        their_running, waiting = int(row.building or 0), int(row.waiting or 0)
        position += min(max(level - their_running, 0), waiting)  # their lower levels
        at_my_level = their_running <= level < their_running + waiting
        if at_my_level and (
            their_running > running or (their_running == running and _turn_key(row) < key)
        ):
            position += 1
    return position
