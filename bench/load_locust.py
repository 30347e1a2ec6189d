"""The clients of bench/load.py, run by locust: 70% status reads, 20% lists, 10% creates.

Each simulated client has its own key (and account), so per-key rate limits and
per-account caps measure the service, not one hot key. Keys come from the JSON
file named by ``MDR_LOAD_KEYS``.
"""

from __future__ import annotations

import itertools
import json
import os
import random
from datetime import UTC, datetime, timedelta
from pathlib import Path

from locust import FastHttpUser, between, task

V1 = "/reporting/mdr_requests"
KEYS: list[str] = json.loads(Path(os.environ["MDR_LOAD_KEYS"]).read_text())
_next_key = itertools.count()


class ReportClient(FastHttpUser):
    wait_time = between(0.5, 1.5)  # a person or a script polling, not a tight loop

    def on_start(self) -> None:
        self.headers = {"Authorization": f"Bearer {KEYS[next(_next_key) % len(KEYS)]}"}
        self.ids: list[str] = []
        self._create("POST create (setup)")

    def _create(self, name: str) -> None:
        """A small report: one hour of one account, in the last two days."""
        hour = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
        start = hour - timedelta(hours=random.randint(2, 48))
        body = {
            "start_time": start.isoformat(),
            "end_time": (start + timedelta(hours=1)).isoformat(),
        }
        with self.client.post(
            V1, json=body, headers=self.headers, name=name, catch_response=True
        ) as answer:
            if answer.status_code == 200 and answer.json():
                self.ids.append(answer.json()["id"])
                answer.success()
            else:
                answer.failure(f"{answer.status_code}: {(answer.text or '')[:200]}")

    @task(7)
    def status(self) -> None:
        if not self.ids:
            self._create("POST create (setup)")
            return
        request_id = random.choice(self.ids[-20:])
        self.client.get(f"{V1}/{request_id}", headers=self.headers, name="GET status")

    @task(2)
    def listing(self) -> None:
        self.client.get(f"{V1}?page=1&per_page=20", headers=self.headers, name="GET list")

    @task(1)
    def create(self) -> None:
        self._create("POST create")
