"""How integrations are found and loaded (as Home Assistant's `loader`).

An integration is a package with `manifest.json`, `config.py`, `coordinator.py`, `entities.py` and an
`__init__.py` exposing `CONFIG_MODEL` and `setup(site, device, settings) -> Coordinator`. Packages
register through the `pv_platform.integrations` entry-point group, so a third-party package can add one.
"""

from __future__ import annotations

import importlib
import inspect
import json
from dataclasses import dataclass
from functools import cache
from importlib.metadata import entry_points
from pathlib import Path
from types import ModuleType
from typing import Any

from pydantic import BaseModel

from pv_platform.coordinator import Coordinator

ENTRY_POINT_GROUP = "pv_platform.integrations"


@dataclass(frozen=True)
class Integration:
    """A loaded integration package."""

    domain: str
    module: ModuleType
    manifest: dict[str, Any]

    @property
    def config_model(self) -> type[BaseModel]:
        return self.module.CONFIG_MODEL

    def setup(
        self, site: Any, device: Any, settings: Any, shared: dict[str, Any] | None = None
    ) -> Coordinator:
        """The device's coordinator. `shared` is the caller's per-integration state (as Home
        Assistant's `hass.data`: e.g. the Modbus hubs shared by devices on one bus); passed to an
        integration whose `setup` takes it."""
        if shared is not None and "shared" in inspect.signature(self.module.setup).parameters:
            return self.module.setup(site, device, settings, shared=shared)
        return self.module.setup(site, device, settings)


@cache
def discover() -> dict[str, str]:
    """Domain → module path of every integration registered through the entry-point group."""
    return {ep.name: ep.value for ep in entry_points(group=ENTRY_POINT_GROUP)}


def load_integration(domain: str) -> Integration:
    """Import an integration by domain; KeyError names the known ones."""
    known = discover()
    if domain not in known:
        raise KeyError(
            f"unknown integration {domain!r}; installed: {', '.join(sorted(known)) or 'none'}"
        )
    module = importlib.import_module(known[domain])
    manifest = json.loads((Path(module.__file__).parent / "manifest.json").read_text())
    return Integration(domain=domain, module=module, manifest=manifest)
