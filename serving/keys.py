"""TorchServe's token keys: read key_file.json fresh on every call, renew before expiry.

TorchServe 0.12 writes key_file.json (mode 0600) in the directory it was started from:

    {"management": {"key": "...", "expiration time": "2025-01-01T10:00:00.123Z"},
     "inference":  {"key": "...", "expiration time": "..."},
     "API":        {"key": "..."}}

Every request, /ping included, needs `Authorization: Bearer <key>` (inference key on the
inference port, management key on the management port). Keys expire after
`token_expiration_min` (config.properties); the API key never does and can renew the others
(POST /token?type=inference|management on the management port), which rewrites the file.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

import requests

KEY_FILE = "key_file.json"
# Renew a key this long before it expires, so a call never starts with a dying key.
RENEW_MARGIN = timedelta(minutes=2)


@dataclass(frozen=True)
class Keys:
    """The three keys and when the inference and management keys expire."""

    inference: str
    management: str
    api: str
    inference_expires: datetime | None = None
    management_expires: datetime | None = None

    def headers(self, kind: str = "inference") -> dict[str, str]:
        """The Authorization header for the inference or management API."""
        return {"Authorization": f"Bearer {self.inference if kind == 'inference' else self.management}"}

    def expiring(self, now: datetime | None = None) -> list[str]:
        """Which of "inference" / "management" expire within RENEW_MARGIN."""
        now = now or datetime.now(timezone.utc)
        return [kind for kind, when in (("inference", self.inference_expires),
                                        ("management", self.management_expires))
                if when is not None and when - now < RENEW_MARGIN]


def _instant(text: str | None) -> datetime | None:
    if not text:
        return None
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def read_keys(path: str | Path = KEY_FILE) -> Keys:
    """Parse key_file.json; FileNotFoundError names the fix when TorchServe is not running."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist: TorchServe writes it when it starts "
                                f"(run `make serve`), in the directory it was started from")
    data = json.loads(path.read_text())
    return Keys(
        inference=data["inference"]["key"],
        management=data["management"]["key"],
        api=data["API"]["key"],
        inference_expires=_instant(data["inference"].get("expiration time")),
        management_expires=_instant(data["management"].get("expiration time")),
    )


def renew(kind: str, keys: Keys, management_url: str, timeout: float = 10) -> None:
    """Ask TorchServe for a new `kind` key; it rewrites key_file.json."""
    response = requests.post(f"{management_url}/token", params={"type": kind},
                             headers={"Authorization": f"Bearer {keys.api}"}, timeout=timeout)
    response.raise_for_status()


def fresh_keys(path: str | Path = KEY_FILE, management_url: str | None = None) -> Keys:
    """The current keys, renewing any that expire within RENEW_MARGIN first."""
    keys = read_keys(path)
    expiring = keys.expiring()
    if expiring and management_url:
        for kind in expiring:
            renew(kind, keys, management_url)
        keys = read_keys(path)
    return keys
