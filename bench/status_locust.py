"""The clients of bench/status_load.py, run by locust: GET one request's status, no think time.

Every client reads the same request with the same key (``MDR_STATUS_KEY``,
``MDR_STATUS_PATH``), back to back: a closed loop of as many connections as users.
"""

from __future__ import annotations

import os

from locust import FastHttpUser, constant, task

PATH = os.environ["MDR_STATUS_PATH"]
HEADERS = {"Authorization": f"Bearer {os.environ['MDR_STATUS_KEY']}"}


class StatusReader(FastHttpUser):
    wait_time = constant(0)

    @task
    def status(self) -> None:
        self.client.get(PATH, headers=HEADERS, name="GET status")
