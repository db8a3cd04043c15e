"""SIGTERM as an exception in the main thread, so a cancelled job cleans up as after Ctrl-C.

CI systems stop a job with SIGTERM. Its default action ends the process on the spot: no
`finally`, no `atexit`, so a queued or active session stays on the server until it times out.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable
from types import FrameType

__all__ = ["SigtermRaises"]


class SigtermRaises:
    """While held, the first SIGTERM raises `make_exception()` in the main thread.

    `hold()` installs the handler only where SIGTERM has its default disposition and only from
    the main thread (Python runs handlers there); it returns whether this holder now counts.
    `release()` undoes one `hold()`; after the last one (in the main thread) the default
    disposition is back. Once
    the handler has fired, the default is back too, so a second SIGTERM ends the process at once.
    """

    def __init__(self, make_exception: Callable[[], BaseException]) -> None:
        self._make_exception = make_exception
        self._holders = 0

    def hold(self) -> bool:
        if self._holders == 0:
            if threading.current_thread() is not threading.main_thread():
                return False
            if signal.getsignal(signal.SIGTERM) not in (signal.SIG_DFL, self._handle):
                return False  # someone else handles SIGTERM: leave it to them
            signal.signal(signal.SIGTERM, self._handle)
        self._holders += 1
        return True

    def release(self) -> None:
        self._holders -= 1
        # Only the main thread may change handlers; from elsewhere the handler stays, unheld.
        main = threading.current_thread() is threading.main_thread()
        if self._holders == 0 and main and signal.getsignal(signal.SIGTERM) == self._handle:
            signal.signal(signal.SIGTERM, signal.SIG_DFL)

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        raise self._make_exception()
