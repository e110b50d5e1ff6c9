"""TorchServe's token keys: read key_file.json fresh on every call; renew only when told to.

TorchServe 0.12 writes key_file.json (mode 0600) in the directory it was started from:

    {"management": {"key": "...", "expiration time": "2025-01-01T10:00:00.123Z"},
     "inference":  {"key": "...", "expiration time": "..."}, "API": {"key": "..."}}

Every request, /ping included, needs the inference or management key of its port. Both expire
after `token_expiration_min`; the API key never does and can renew them. TorchServe refuses
the old key the moment a new one is made, so renewing is an operator's act (`make keys
RENEW=inference`): a client that renewed would lock out every other caller holding the old key.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

KEY_FILE = "key_file.json"
RENEWABLE = ("inference", "management")
# `make keys` warns when a key expires sooner than this.
EXPIRY_WARNING = timedelta(minutes=30)


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

    def key(self, kind: str) -> str:
        """The "inference", "management" or "api" key."""
        return {"inference": self.inference, "management": self.management, "api": self.api}[kind]

    def expiring(self, within: timedelta = EXPIRY_WARNING, now: datetime | None = None) -> list[str]:
        """Which of "inference" / "management" expire within `within`."""
        now = now or datetime.now(timezone.utc)
        return [kind for kind, when in (("inference", self.inference_expires),
                                        ("management", self.management_expires))
                if when is not None and when - now < within]


def _instant(text: str | None) -> datetime | None:
    """An "expiration time" as a datetime (None when absent)."""
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


def renew(kind: str, path: str | Path, management_url: str, timeout: float = 10) -> Keys:
    """Ask TorchServe for a new `kind` key with the API key; it rewrites key_file.json at
    `path`, and every caller holding the old key gets 400 until it re-reads the file."""
    if kind not in RENEWABLE:
        raise ValueError(f"only the {' and '.join(RENEWABLE)} keys can be renewed, not {kind!r}")
    from serving import rest

    keys = read_keys(path)
    rest.request("POST", f"{management_url}/token", timeout, {"Authorization": f"Bearer {keys.api}"},
                 params={"type": kind}).checked()
    return read_keys(path)
