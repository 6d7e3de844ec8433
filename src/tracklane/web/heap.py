"""The process's start-up heap, left out of the collector's passes while the process serves.

A full pass of the cyclic collector over the start-up heap (modules, routes, models: about 200,000 objects)
stalled every request in flight for tens of milliseconds; frozen (`gc.freeze`), it is not visited. The heap
is the process's: only an app served from the main thread freezes it (`tracklane serve` and each of its
workers), when the first such app starts, and the last one to stop thaws it. An app served from another
thread shares its process with others (a test process runs hundreds of apps, several at once) and freezes
nothing: frozen at each start, what earlier apps left behind could not be collected until a thaw, and the
passes that followed took 5 to 15 s (millions of objects at once).
"""

from __future__ import annotations

import gc
import threading

_lock = threading.Lock()
_serving = 0


def freeze_while_serving() -> bool:
    """An app starts serving: from the main thread, the first one freezes what the process holds. Whether
    this app takes part (it then calls `thaw_after_serving` when it stops)."""
    global _serving
    if threading.current_thread() is not threading.main_thread():
        return False
    with _lock:
        _serving += 1
        if _serving == 1:
            gc.freeze()
    return True


def thaw_after_serving() -> None:
    """An app that took part stopped serving: the last one thaws the heap, which the collector visits again."""
    global _serving
    with _lock:
        _serving -= 1
        if _serving == 0:
            gc.unfreeze()
