"""Deletes the topics earlier test runs left on the local broker.

Every test names its topics with a fresh prefix (`t-<test>-<random>`, and `events.t-…` for
upstream-style event topics), so nothing a run creates is read by a later run. Left behind,
they pile up: each partition holds several open files on the broker, and after a few dozen
runs the broker runs out of file descriptors (this machine allows 20,000). scripts/test calls
this before the tests, when no test is running.

usage: drop_test_topics.py BOOTSTRAP
"""

import re
import sys

from confluent_kafka.admin import AdminClient

LEFTOVER = re.compile(r"^(events\.)?t-")


def main() -> int:
    admin = AdminClient({"bootstrap.servers": sys.argv[1]})
    topics = sorted(t for t in admin.list_topics(timeout=30).topics if LEFTOVER.match(t))
    failed = 0
    for start in range(0, len(topics), 500):
        batch = topics[start : start + 500]
        for topic, future in admin.delete_topics(batch, operation_timeout=60).items():
            try:
                future.result()
            except Exception as error:  # noqa: BLE001 - reported, counted, not fatal per topic
                failed += 1
                print(f"drop_test_topics: {topic}: {error}", file=sys.stderr)
    print(f"drop_test_topics: deleted {len(topics) - failed} leftover test topics", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
