"""`pvp integrations check SITE.DEVICE`: connect to one configured device and print what it found
(Home Assistant validates a configuration by connecting before accepting it; so do we, on demand).

Each integration that can be checked exposes `async check(site, device, settings, *, timeout_s, say)`,
which prints through `say` and raises `UpdateFailed` with the reason when the device cannot be
reached or read.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable

from pv_platform.coordinator import UpdateFailed
from pv_platform.loader import load_integration
from pv_platform.plant import Plant, PlantFileError, load_plant
from pv_platform.settings import Settings

EXIT_OK, EXIT_DEVICE_FAILED, EXIT_BAD_REQUEST = 0, 1, 2


def find_device(plant: Plant, name: str, source: str):
    """(site, device) of `SITE.DEVICE`; ValueError lists the devices the plant file has."""
    found = {f"{s.id}.{d.id}": (s, d) for s in plant.sites for d in s.devices}
    if name not in found:
        known = ", ".join(sorted(found)[:20]) + (" ..." if len(found) > 20 else "")
        raise ValueError(f"no device {name!r} in {source}; give SITE.DEVICE, one of: {known}")
    return found[name]


def check_device(
    settings: Settings,
    name: str,
    timeout_s: float,
    say: Callable[[str], None] = print,
    complain: Callable[[str], None] = lambda text: print(text, file=sys.stderr),
) -> int:
    """Check one device of the plant file; the exit code: 0 found, 1 the device failed, 2 bad request."""
    try:
        plant = load_plant(settings.resolved_plant_file)
        site, device = find_device(plant, name, str(settings.resolved_plant_file))
    except (PlantFileError, ValueError) as exc:
        complain(str(exc))
        return EXIT_BAD_REQUEST
    check = getattr(load_integration(device.integration).module, "check", None)
    if check is None:
        complain(
            f"integration {device.integration!r} of {name} cannot be checked (it has no check)"
        )
        return EXIT_BAD_REQUEST
    try:
        asyncio.run(check(site, device, settings, timeout_s=timeout_s, say=say))
    except UpdateFailed as exc:
        complain(f"FAILED {name}: {exc}")
        return EXIT_DEVICE_FAILED
    say(f"OK {name}")
    return EXIT_OK
