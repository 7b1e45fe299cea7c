"""The webhook secret of a local stack: made once per state dir, kept in a 0600 file.

``dev up`` gives it to the gateway simulator (which signs with it) and the sender (which
verifies with it), so even a local stack never accepts webhooks signed with a published
default.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

FILE_NAME = "webhook-secret"


def dev_webhook_secret(state_dir: Path) -> str:
    """The secret in ``state_dir/webhook-secret``, created (random, mode 0600) if absent."""
    path = state_dir / FILE_NAME
    state_dir.mkdir(parents=True, exist_ok=True)
    try:
        # O_EXCL: two concurrent ``dev up`` cannot each write a different secret.
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        secret = path.read_text().strip()
        if secret:
            return secret
        path.unlink()
        return dev_webhook_secret(state_dir)
    secret = secrets.token_hex(32)
    with os.fdopen(fd, "w") as file:
        file.write(secret + "\n")
    return secret
