"""Signed completion webhooks (api.md sections 10 and 12).

- ``keys``: the Ed25519 key pair, made once into the data folder, and the signature.
- ``targets``: the SSRF guard, at create time and at every attempt (pinned address).
- ``sender``: one signed POST with httpx: 10 s timeout, no redirects, no proxies.
- ``deliverer``: the threads that claim due deliveries from the catalog and send them,
  with exponential backoff and jitter for 24 h; :func:`deliverer.delivery_outcome` is
  the one place every outcome passes (logs, metrics).

The deliveries themselves are catalog rows (catalog/deliveries.py), queued in the same
transaction as the status change they announce. Submodules are imported by name: this
package imports nothing, so the API and the worker each load only what they use.
"""
