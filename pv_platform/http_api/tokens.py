"""API tokens: kept as SHA-256 hashes in PVP_API_TOKENS_FILE, each with its scopes and sites."""

from __future__ import annotations

import hashlib
import json
import logging
import re
import secrets
from dataclasses import dataclass
from pathlib import Path

from pv_platform.http_api.limits import SCOPES

log = logging.getLogger("pv_platform.http_api")


@dataclass(frozen=True, slots=True)
class Token:
    name: str
    sha256: str
    scopes: frozenset[str]
    sites: frozenset[str] | None  # None: every site


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def new_token() -> str:
    """A fresh random token (256 bits, URL-safe)."""
    return "pvp_" + secrets.token_urlsafe(32)


def load_tokens(path: Path) -> list[Token]:
    """Tokens of a JSON file `{"tokens": [{"name", "sha256", "scopes": [...], "sites": [...]?}]}`;
    a malformed entry is an error naming the file, the entry and the field."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ValueError(f"{path}: cannot read the API tokens ({exc})") from None
    entries = data.get("tokens") if isinstance(data, dict) else None
    if not isinstance(entries, list):
        raise ValueError(f'{path}: expected {{"tokens": [...]}}')
    tokens = []
    for i, entry in enumerate(entries):
        where = f"{path}: tokens[{i}]"
        if not isinstance(entry, dict):
            raise ValueError(f"{where}: not an object")
        name, digest = entry.get("name"), entry.get("sha256")
        if not isinstance(name, str) or not name:
            raise ValueError(f"{where}: 'name' must be a non-empty string")
        if not isinstance(digest, str) or not re.fullmatch(r"[0-9a-f]{64}", digest):
            raise ValueError(f"{where} ({name}): 'sha256' must be 64 lowercase hex digits")
        scopes = entry.get("scopes")
        if not isinstance(scopes, list) or not scopes or any(s not in SCOPES for s in scopes):
            raise ValueError(f"{where} ({name}): 'scopes' must list some of {', '.join(SCOPES)}")
        sites = entry.get("sites")
        if sites is not None and (
            not isinstance(sites, list) or not all(isinstance(s, str) for s in sites)
        ):
            raise ValueError(f"{where} ({name}): 'sites' must be a list of site ids")
        tokens.append(Token(name, digest, frozenset(scopes), frozenset(sites) if sites else None))
    return tokens
