"""Request operations shared by both surfaces: who may see what, creation, idempotency."""

from __future__ import annotations

import contextlib
import hashlib
import uuid
from collections.abc import Callable
from datetime import datetime

import orjson

from mdr_reporting.catalog import ApiKey, Catalog, KeyScope
from mdr_reporting.catalog.waiting import queue_positions
from mdr_reporting.domain.enums import RequestStatus
from mdr_reporting.domain.errors import Forbidden, NotFound
from mdr_reporting.domain.requests import ReportRequest, RequestState, warnings_for
from mdr_reporting.files import FileStore

__all__ = ["RequestService"]


class RequestService:
    def __init__(
        self, catalog: Catalog, clock: Callable[[], datetime], files: FileStore | None = None
    ) -> None:
        self.catalog = catalog
        self.clock = clock
        self.files = files  # a DELETE removes the report file at once
        self.on_created: Callable[[RequestState], None] | None = None  # e.g. wake the worker
        self.max_pending: int | None = None  # Pending requests per account; None: no cap
        # the webhook_url check (webhooks/targets.py); None: not checked
        self.check_webhook_url: Callable[[str], None] | None = None

    def visible_accounts(self, key: ApiKey) -> list[str] | None:
        """Accounts whose requests ``key`` sees: its own and those it manages (admin: all)."""
        if key.scope is KeyScope.ADMIN:
            return None
        return self.catalog.managed_accounts(key.account_id)

    def report_accounts(self, key: ApiKey, spec: ReportRequest) -> tuple[str, ...]:
        """The accounts a new report covers; naming one the key does not manage is a 403
        (an admin key, which manages every account, gets 404 for one that does not exist)."""
        managed = self.catalog.managed_accounts(key.account_id)
        chosen = {key.account_id}
        if spec.select_all_managed_accounts:
            chosen.update(managed)
        named = set(spec.managed_accounts)
        if key.scope is KeyScope.ADMIN:
            missing = named - self.catalog.existing_accounts(named)
            if missing:
                index = spec.managed_accounts.index(sorted(missing)[0])
                raise NotFound(
                    f"managed_accounts names an unknown account {sorted(missing)[0]!r}",
                    pointer=f"/managed_accounts/{index}",
                )
        else:
            for index, account in enumerate(spec.managed_accounts):
                if account not in managed:
                    raise Forbidden(
                        f"account {account!r} is not managed by this key's account",
                        pointer=f"/managed_accounts/{index}",
                    )
        chosen.update(named)
        return tuple(sorted(chosen))

    def create(
        self,
        key: ApiKey,
        spec: ReportRequest,
        *,
        idempotency_key: str | None,
        surface: str,
        body: object,
    ) -> RequestState:
        if spec.webhook_url is not None and self.check_webhook_url is not None:
            self.check_webhook_url(spec.webhook_url)
        now = self.clock()
        state = RequestState(
            id=str(uuid.uuid4()),
            account_id=key.account_id,
            accounts=self.report_accounts(key, spec),
            spec=spec,
            status=RequestStatus.PENDING,
            created_at=now,
            updated_at=now,
            warnings=warnings_for(spec, now),
            surface=surface,
        )
        body_hash = None
        if idempotency_key is not None:
            canonical = orjson.dumps([surface, body], option=orjson.OPT_SORT_KEYS)
            body_hash = hashlib.sha256(canonical).hexdigest()
        stored, created = self.catalog.create_request(
            state,
            idempotency_key=idempotency_key,
            idempotency_hash=body_hash,
            max_pending=self.max_pending,
        )
        if created and self.on_created is not None:
            self.on_created(stored)
        return _with_wait(self.catalog, [stored], now)[0]

    def get(self, key: ApiKey, request_id: str) -> RequestState:
        viewer = None if key.scope is KeyScope.ADMIN else key.account_id
        state = self.catalog.visible_request(request_id, viewer)
        if state is None:
            raise NotFound(f"no MDR request with id {request_id!r}")
        return _with_wait(self.catalog, [state], self.clock())[0]

    def list(self, key: ApiKey, *, offset: int, limit: int) -> tuple[list[RequestState], int]:
        states, total = self.catalog.list_requests(
            self.visible_accounts(key), offset=offset, limit=limit
        )
        return _with_wait(self.catalog, states, self.clock()), total

    def delete(self, key: ApiKey, request_id: str) -> RequestState:
        state = self.catalog.delete_request(request_id, self.visible_accounts(key))
        if state is None:
            raise NotFound(f"no MDR request with id {request_id!r}")
        if self.files is not None and state.file_key is not None:
            with contextlib.suppress(OSError):  # the sweeper retries what fails here
                self.files.delete(state.file_key)
        return state.as_of(self.clock())


def _with_wait(catalog: Catalog, states: list[RequestState], now: datetime) -> list[RequestState]:
    """The states as of ``now``, with the status-while-waiting fields of Pending ones (the
    queue positions cost two queries, and only when some are queued)."""
    states = [state.as_of(now) for state in states]
    queued = [s for s in states if s.status is RequestStatus.PENDING and not s.building(now)]
    positions = queue_positions(catalog, queued, now) if queued else {}
    return [state.with_wait(now, positions.get(state.id)) for state in states]
