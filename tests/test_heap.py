"""The start-up heap is frozen while the process serves (`web/heap.py`): by the first app served from the
main thread, thawed by the last to stop; apps served from other threads (as every test server is) share the
process and freeze nothing."""

from __future__ import annotations

import gc
import threading
from pathlib import Path

from tests.servers import running_server, sqlite_url
from tracklane.web import heap


def test_the_main_threads_first_app_freezes_the_heap_and_its_last_thaws_it() -> None:
    assert gc.get_freeze_count() == 0
    assert heap.freeze_while_serving()
    frozen = gc.get_freeze_count()
    assert frozen > 0
    assert heap.freeze_while_serving()  # a second app: nothing more is frozen
    assert gc.get_freeze_count() <= frozen
    heap.thaw_after_serving()
    assert gc.get_freeze_count() > 0  # one still serves
    heap.thaw_after_serving()
    assert gc.get_freeze_count() == 0


def test_an_app_served_from_another_thread_freezes_nothing(tmp_path: Path) -> None:
    took_part: list[bool] = []
    thread = threading.Thread(target=lambda: took_part.append(heap.freeze_while_serving()))
    thread.start()
    thread.join()
    assert took_part == [False]
    with running_server(sqlite_url(tmp_path)):  # served from a thread, as in every test
        assert gc.get_freeze_count() == 0
