"""One Modbus connection per bus, shared by every unit behind it (Home Assistant's `ModbusHub`).

A bus is a TCP endpoint (an inverter or a gateway at host:port) or a serial line (RS-485 at its line
settings). Two inverters on one RS-485 line, or behind one gateway, must not each open the port: a
serial port opens once, and a gateway or a half-duplex line answers one request at a time. So every
device of a bus reads through one `ModbusHub`: one pymodbus client, one `asyncio.Lock` held for a whole
read (a model span split in chunks stays one snapshot), each unit's own timeout and retries applied to
its own requests. A unit that times out or answers late fails only its own read: over TCP pymodbus
matches an answer by transaction id, and after a failed read the connection is opened afresh (as Home
Assistant's `close_comm_on_error` does). A serial line has no transaction id, so the hub keeps the line
discipline itself (`RtuLineFramer`, `ModbusHub._quiet_line`): every request waits for the Modbus RTU
t3.5 inter-frame silence; after a timeout the pending input is discarded; and a frame that is not the
answer to the request in progress (another unit's, another function's, or another register count's, such
as a late answer arriving in one read with the right one) is dropped on its own, never taken for the
answer. Hubs are made by a `HubRegistry` (one per collector) and closed when the last unit using them
releases them.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass

from pymodbus.client import AsyncModbusSerialClient, AsyncModbusTcpClient
from pymodbus.exceptions import ModbusException
from pymodbus.framer import FramerRTU, FramerType

from integrations.sunspec_modbus.config import SunSpecModbusConfig
from pv_platform.coordinator import UpdateFailed

log = logging.getLogger(__name__)
MAX_REGISTERS_PER_READ = 125  # Modbus limit for function code 3


@dataclass(frozen=True, slots=True)
class Bus:
    """What makes devices share a connection (`key`), and the line settings they must agree on."""

    key: tuple[str, str | int, ...]
    line_settings: tuple = ()

    @property
    def serial(self) -> bool:
        return self.key[0] == "rtu"

    @property
    def where(self) -> str:
        if self.serial:
            baudrate, bytesize, parity, stopbits = self.line_settings
            return f"{self.key[1]} (RTU {baudrate} {bytesize}{parity}{stopbits})"
        return f"{self.key[1]}:{self.key[2]}"


def bus_of(config: SunSpecModbusConfig) -> Bus:
    """The bus a device is on: its TCP endpoint, or its serial port with the line settings."""
    if config.serial_port:
        settings = (config.baudrate, config.bytesize, config.parity, config.stopbits)
        return Bus(("rtu", config.serial_port), settings)
    return Bus(("tcp", (config.host or "").lower(), config.port))


def t35_s(baudrate: int) -> float:
    """Modbus RTU inter-frame silence t3.5 [s]: 3.5 characters of 11 bits at `baudrate` [bit/s], and a
    fixed 1.75 ms above 19200 bit/s (Modbus over serial line V1.02, 2.5.1.1)."""
    return 3.5 * 11 / baudrate if baudrate <= 19200 else 0.00175


class RtuLineFramer(FramerRTU):
    """pymodbus's RTU framer, taking one frame at a time and only the answer to the request in progress.

    pymodbus 3.16's `FramerRTU.decode` consumes the whole read after the first frame it finds, so when a
    late answer of another unit and the right answer arrive in one read, the right one is thrown away
    with it. This decode returns the length of the one frame it used and skips, with a log line, every
    complete frame that does not answer `expect`: the unit id, function code and byte count of the
    request in progress (pymodbus itself checks the unit id only)."""

    expect: tuple[int, int, int] | None = None  # None: any frame (pymodbus's own behaviour)

    def decode(self, data: bytes) -> tuple[int, int, int, bytes]:
        start = 0
        while len(data) - start >= self.MIN_SIZE:
            frame = data[start:]
            pdu_class = self.decoder.lookupPduClass(frame)
            if pdu_class is None:
                start += 1  # no function code we know: garbage, hunt on
                continue
            size = pdu_class.calculateRtuFrameSize(frame)
            if not size or size > len(frame):
                return start, 0, 0, self.EMPTY  # a frame still arriving: wait for the rest
            if not self.check_CRC(frame[: size - 2], int.from_bytes(frame[size - 2 : size], "big")):
                start += 1  # not a frame after all: hunt on
                continue
            unit, function, body = frame[0], frame[1], frame[1 : size - 2]
            if self.expect is None or self._answers(unit, function, body):
                return start + size, unit, 0, body
            log.warning(
                "dropped a Modbus RTU frame of unit %d, function %d, %d bytes while waiting for the"
                " answer of unit %d, function %d, %d data bytes (a late answer to an earlier request)",
                unit, function, size, *self.expect,
            )  # fmt: skip
            start += size
        return start, 0, 0, self.EMPTY

    def _answers(self, unit: int, function: int, body: bytes) -> bool:
        want_unit, want_function, want_bytes = self.expect
        if unit != want_unit:
            return False
        if function == want_function | 0x80:  # the unit's exception answer to this request
            return True
        return function == want_function and len(body) >= 2 and body[1] == want_bytes


class ModbusHub:
    """One pymodbus client for one bus; one request (or chunked read) at a time under a lock."""

    def __init__(self, bus: Bus) -> None:
        self.bus = bus
        self.users = 0  # units running on this hub (reference count; the client closes at 0)
        self.requests_total = 0
        self._client: AsyncModbusTcpClient | AsyncModbusSerialClient | None = None
        self._lock = asyncio.Lock()
        self._line_busy_at = (
            0.0  # monotonic time of the last byte sent or received on a serial line
        )
        self._discard_input = False  # a request timed out: its answer may still arrive

    @property
    def connected(self) -> bool:
        return self._client is not None and self._client.connected

    def acquire(self) -> ModbusHub:
        """A unit starts using the hub."""
        self.users += 1
        return self

    async def release(self) -> None:
        """A unit stops using the hub; the last one closes the connection."""
        self.users = max(0, self.users - 1)
        if self.users == 0:
            async with self._lock:
                self._close()

    def _close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    def _make_client(self) -> AsyncModbusTcpClient | AsyncModbusSerialClient:
        if self.bus.serial:
            baudrate, bytesize, parity, stopbits = self.bus.line_settings
            client = AsyncModbusSerialClient(
                self.bus.key[1], framer=FramerType.RTU, baudrate=baudrate, bytesize=bytesize,
                parity=parity, stopbits=stopbits, reconnect_delay=0, trace_packet=self._line_traffic,
            )  # fmt: skip
            client.ctx.framer = RtuLineFramer(client.ctx.framer.decoder)
            return client
        return AsyncModbusTcpClient(self.bus.key[1], port=self.bus.key[2], reconnect_delay=0)

    def _line_traffic(self, sending: bool, data: bytes) -> bytes:
        """pymodbus's packet trace: when the serial line last carried a byte (for t3.5)."""
        self._line_busy_at = time.monotonic()
        return data

    async def _quiet_line(self, client: AsyncModbusSerialClient) -> None:
        """Before a request on a serial line: the t3.5 silence since the line's last byte, and after a
        timeout nothing of the late answer left (what pymodbus and the OS hold is discarded once the
        line has been quiet for t3.5)."""
        silence_s = t35_s(self.bus.line_settings[0])
        while (wait_s := self._line_busy_at + silence_s - time.monotonic()) > 0:
            await asyncio.sleep(wait_s)
        if self._discard_input:
            client.ctx.recv_buffer = b""
            transport = client.ctx.transport
            if transport is not None and getattr(transport, "sync_serial", None) is not None:
                transport.sync_serial.reset_input_buffer()
            self._discard_input = False

    async def _connected_client(self) -> AsyncModbusTcpClient | AsyncModbusSerialClient:
        if self._client is None:
            self._client = self._make_client()
        if not self._client.connected and not await self._client.connect():
            self._close()
            raise UpdateFailed(f"cannot connect to {self.bus.where}")
        return self._client

    async def read(
        self, unit_id: int, address: int, count: int, *, timeout_s: float, retries: int
    ) -> list[int]:
        """Read `count` holding registers of one unit (in chunks the protocol allows), holding the bus
        for the whole read. UpdateFailed names the bus and the unit; other units are not affected."""
        async with self._lock:
            client = await self._connected_client()
            # this unit's own timeout and retries (pymodbus keeps them per client, we per unit)
            client.ctx.comm_params.timeout_connect, client.ctx.retries = timeout_s, retries
            regs: list[int] = []
            try:
                while count > 0:
                    n = min(count, MAX_REGISTERS_PER_READ)
                    self.requests_total += 1
                    if self.bus.serial:
                        await self._quiet_line(client)
                        client.ctx.framer.expect = (unit_id, 3, 2 * n)
                    rr = await client.read_holding_registers(address, count=n, device_id=unit_id)
                    if rr.isError():
                        raise UpdateFailed(
                            f"unit {unit_id} on {self.bus.where}: Modbus exception {rr}"
                            f" reading {n} registers at {address}"
                        )
                    if rr.dev_id != unit_id or len(rr.registers) != n:
                        raise UpdateFailed(
                            f"unit {unit_id} on {self.bus.where}: asked for {n} registers at {address},"
                            f" got {len(rr.registers)} from unit {rr.dev_id}; answer dropped"
                        )
                    regs += rr.registers
                    address, count = address + n, count - n
            except ModbusException as exc:
                if not self.bus.serial:
                    self._close()  # a fresh connection; the next unit's read reconnects
                else:
                    self._discard_input = True  # its answer may still come: not the next one's
                raise UpdateFailed(
                    f"unit {unit_id} on {self.bus.where}: Modbus error at {address}: {exc}"
                ) from exc
            return regs


class HubRegistry:
    """The hubs of one collector, one per bus; refuses two devices that disagree about a bus."""

    def __init__(self) -> None:
        self.hubs: dict[tuple, ModbusHub] = {}
        self._users: dict[tuple, dict[str, SunSpecModbusConfig]] = {}

    def hub_for(self, device: str, config: SunSpecModbusConfig) -> ModbusHub:
        """The hub of `config`'s bus; ValueError naming both devices when they cannot share it."""
        bus = bus_of(config)
        check_shared_bus(self._users.setdefault(bus.key, {}), device, config)
        self._users[bus.key][device] = config
        hub = self.hubs.get(bus.key)
        if hub is None:
            hub = self.hubs[bus.key] = ModbusHub(bus)
        return hub


def check_shared_bus(
    others: dict[str, SunSpecModbusConfig], device: str, config: SunSpecModbusConfig
) -> None:
    """ValueError when `device` cannot share its bus with `others` (device -> config on that bus):
    different line settings on one serial port, or a unit id already taken."""
    bus = bus_of(config)
    for other, other_config in others.items():
        other_bus = bus_of(other_config)
        if other_bus.line_settings != bus.line_settings:
            raise ValueError(
                f"serial line {config.serial_port}: {other} is set to {other_bus.where} but"
                f" {device} to {bus.where}; devices on one line must use the same baudrate,"
                " bytesize, parity and stopbits"
            )
        if other_config.unit_id == config.unit_id:
            raise ValueError(
                f"{bus.where}: {other} and {device} both use unit_id {config.unit_id};"
                " each device on one bus needs its own unit id"
            )


def check_plant_buses(devices: list[tuple[str, SunSpecModbusConfig]]) -> None:
    """Every device of a plant file (`site.device`, config) can share its bus with the others."""
    by_bus: dict[tuple, dict[str, SunSpecModbusConfig]] = {}
    for device, config in devices:
        on_bus = by_bus.setdefault(bus_of(config).key, {})
        check_shared_bus(on_bus, device, config)
        on_bus[device] = config
