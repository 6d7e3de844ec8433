"""Use cases of Tracklane, written over the ports in `ports.py`; no SQL and no HTTP here."""
