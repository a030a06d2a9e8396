"""Whether the Hugging Face hub can be reached: asked by the model loader and the data reader alike, so it
lives on the ground floor (neither of them imports the other for it)."""

from __future__ import annotations

import os
import socket
from urllib.parse import urlparse

_HUB_REACHABLE: bool | None = None


def hub_reachable(timeout: float = 3.0) -> bool:
    """Can this machine open a connection to the Hugging Face hub? (Asked once per process.)"""
    global _HUB_REACHABLE
    if _HUB_REACHABLE is None:
        url = urlparse(os.environ.get("HF_ENDPOINT", "https://huggingface.co"))
        port = url.port or (80 if url.scheme == "http" else 443)
        try:
            socket.create_connection((url.hostname or "huggingface.co", port), timeout=timeout).close()
            _HUB_REACHABLE = True
        except OSError:
            _HUB_REACHABLE = False
    return _HUB_REACHABLE
