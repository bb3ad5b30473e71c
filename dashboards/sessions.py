"""A browser session's life on the Panel server: its timers do no work while no browser is connected,
stop when the session is destroyed, and an update that was being written when the browser left is
one log line, not a traceback.

Bokeh keeps a session for 15 s after its websocket closed (`--unused-session-lifetime`) and Panel
stops its periodic callbacks only when it destroys it; until then the Live page's 250 ms timer kept
pushing patches into the closed socket, and tornado logged `WebSocketClosedError` /
`StreamClosedError` tracebacks ("Task exception was never retrieved": Panel writes a message as
several frames, and when the socket closes between them the first frame's future is never awaited).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import weakref
from collections.abc import Callable

import panel as pn

log = logging.getLogger(__name__)
_QUIETED: weakref.WeakSet = weakref.WeakSet()  # the event loops given the handler below


def browser_connected() -> bool:
    """Whether a browser is connected to the current session over its websocket (True outside a
    served session: a test calling a page directly)."""
    doc = pn.state.curdoc
    context = getattr(doc, "session_context", None) if doc is not None else None
    session = getattr(context, "session", None)
    return session is None or (session.connection_count > 0 and not session.destroyed)


def while_connected(refresh: Callable[[], None]) -> Callable[[], None]:
    """`refresh`, skipped while no browser is connected (it left, or has not connected yet: the page
    it pulls on connecting holds the document's state then)."""

    def tick() -> None:
        if browser_connected():
            refresh()

    tick.__name__ = getattr(refresh, "__name__", "refresh")
    return tick


def add_session_timers(timers: list[tuple[Callable[[], None], int]]) -> list:
    """Periodic callbacks (function, period [ms]) of this session: each runs only while a browser is
    connected, and all stop when the session is destroyed."""
    callbacks = [
        pn.state.add_periodic_callback(while_connected(fn), period=period_ms)
        for fn, period_ms in timers
    ]
    pn.state.on_session_destroyed(lambda _ctx: [cb.stop() for cb in callbacks])
    with contextlib.suppress(RuntimeError):  # built outside a server (no loop): nothing to send to
        quiet_closed_socket_writes(asyncio.get_running_loop())
    return callbacks


def _closed_socket(exc: BaseException | None) -> bool:
    from tornado.iostream import StreamClosedError
    from tornado.websocket import WebSocketClosedError

    return isinstance(exc, WebSocketClosedError | StreamClosedError)


def quiet_closed_socket_writes(loop: asyncio.AbstractEventLoop) -> None:
    """On the server's event loop: a write that failed because the browser closed its websocket
    (`WebSocketClosedError`, `StreamClosedError`, never awaited by Panel) is logged as one line;
    every other unhandled error goes to the handler that was there before (tracebacks kept)."""
    if loop in _QUIETED:
        return
    previous = loop.get_exception_handler()

    def handler(loop: asyncio.AbstractEventLoop, context: dict) -> None:
        if _closed_socket(context.get("exception")):
            log.info("a browser left while an update was being sent to it; update dropped")
            return
        if previous is not None:
            previous(loop, context)
        else:
            loop.default_exception_handler(context)

    loop.set_exception_handler(handler)
    _QUIETED.add(loop)
