"""Drives an analytics-python client installed apart from the test environment (an older version):
`python send_python.py <spec>`, spec = {"host", "writeKey", "calls": [{"method", "kwargs"}]}.
Prints {"errors", "version"} as JSON."""

import json
import sys

from segment.analytics import Client
from segment.analytics.version import VERSION

spec = json.loads(sys.argv[1])
errors = []
client = Client(
    spec["writeKey"],
    host=spec["host"],
    on_error=lambda error, batch: errors.append(repr(error)),
    max_retries=2,
    upload_interval=0.05,
)
for call in spec["calls"]:
    getattr(client, call["method"])(**call["kwargs"])
client.flush()
client.shutdown()
print(json.dumps({"errors": errors, "version": VERSION}))
