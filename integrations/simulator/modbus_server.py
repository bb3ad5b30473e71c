"""The simulated inverters on their Modbus buses: one server per TCP endpoint or serial line, each
serving every unit configured there, and a `LineMonitor` per bus that sees what a real bus would."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections import Counter

from pymodbus.constants import ExcCodes
from pymodbus.exceptions import NoSuchIdException
from pymodbus.framer import FramerType
from pymodbus.server import ModbusSerialServer, ModbusTcpServer
from pymodbus.simulator import DataType, SimData, SimDevice

from integrations.simulator.devices import SimulatedInverter
from pv_platform.services import port_is_open

log = logging.getLogger(__name__)


class LineMonitor:
    """Requests on one bus as the devices see them: per unit, and how many were answered while another
    was still in progress. On an RS-485 line two requests at once are a collision (both answers are
    lost); a gateway queues or drops them. `turnaround_s` is each device's time to answer (real
    inverters take tens of milliseconds)."""

    def __init__(self, where: str, turnaround_s: float = 0.0) -> None:
        self.where, self.turnaround_s = where, turnaround_s
        self.requests: Counter[int] = Counter()  # unit id -> requests answered or refused
        self.in_flight = self.max_in_flight = self.overlaps = 0

    def wrap(self, unit_id: int, action):
        """The device's request handler, counted and given its turnaround time."""

        async def tracked(*args):
            self.requests[unit_id] += 1
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
            if self.in_flight > 1:
                self.overlaps += 1
                if self.overlaps == 1:
                    log.warning("%s: two requests at once (unit %d)", self.where, unit_id)
            try:
                if self.turnaround_s:
                    await asyncio.sleep(self.turnaround_s)
                return await action(*args)
            finally:
                self.in_flight -= 1

        return tracked


def absent_units(serial: bool) -> SimDevice:
    """Every unit id nobody is configured at (pymodbus: device id 0 stands for all others). On a
    serial line nobody answers (the client times out); a TCP gateway answers 'target device failed
    to respond' (exception 0x0B), as real gateways do."""

    async def nobody(func_code: int, start: int, address: int, count: int, regs, values):
        if serial:
            raise NoSuchIdException(f"no unit at this address on the line ({address})")
        return ExcCodes.GATEWAY_NO_RESPONSE

    return SimDevice(
        id=0,
        simdata=[SimData(0, count=65535, values=0, datatype=DataType.REGISTERS)],
        action=nobody,
    )


def _bus_key(inv: SimulatedInverter) -> tuple:
    c = inv.config
    if c.serial_port:
        return ("rtu", c.serial_port, c.baudrate, c.parity, c.stopbits, c.bytesize)
    return ("tcp", c.host, c.port)


async def serve_inverters(
    inverters: list[SimulatedInverter], turnaround_s: float = 0.0
) -> tuple[list, dict[tuple, LineMonitor]]:
    """One Modbus server per TCP host:port or serial line, each serving the devices configured on it;
    the servers and each bus's monitor (by ("tcp", host, port) or ("rtu", port, line settings...))."""
    by_address: dict[tuple, list[SimulatedInverter]] = {}
    for inv in inverters:
        by_address.setdefault(_bus_key(inv), []).append(inv)
    servers, monitors = [], {}
    for key, invs in by_address.items():
        monitor = monitors[key] = LineMonitor(f"{key[0]} {key[1:]}", turnaround_s)
        devices = []
        for inv in invs:
            device = inv.modbus_device()
            devices.append(
                dataclasses.replace(device, action=monitor.wrap(device.id, device.action))
            )
        context = [*devices, absent_units(serial=key[0] == "rtu")]
        if key[0] == "rtu":
            _, port, baudrate, parity, stopbits, bytesize = key
            server = ModbusSerialServer(
                context, framer=FramerType.RTU, port=port, baudrate=baudrate, parity=parity,
                stopbits=stopbits, bytesize=bytesize,
                ignore_missing_devices=True,  # on a serial line nobody answers for an absent unit
            )  # fmt: skip
        else:
            server = ModbusTcpServer(context, address=key[1:])
        asyncio.get_running_loop().create_task(server.serve_forever())
        servers.append(server)
        for _ in range(100):  # listening before anyone is told the plant is up
            if key[0] == "rtu" or await asyncio.to_thread(port_is_open, key[1], key[2], 0.1):
                break
            await asyncio.sleep(0.05)
        log.info("serving %s on modbus %s %s", [i.device.id for i in invs], key[0], key[1:])
    return servers, monitors
