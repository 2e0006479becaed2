"""Checks `herald replay --out` exports with readers nobody on this project wrote.

Reads the source topic with confluent-kafka and decodes each event's single-object Avro with
fastavro and the schemas in schemas/events; reads the .avro export with fastavro and the
.parquet export with pyarrow; compares every exported record's data with its source event
field for field, and its Kafka coordinates with where the source was read.

Prints one JSON object: the ids found in each export and every mismatch (empty when the
exports are faithful). Usage:
  export_reader.py --brokers B --topic T --schemas DIR [--avro F] [--parquet F]
"""

import argparse
import datetime
import decimal
import glob
import io
import json
import os

import fastavro
import pyarrow.parquet as pq
from confluent_kafka import Consumer, TopicPartition


def norm(value):
    """One representation for values the three readers return differently."""
    if isinstance(value, datetime.datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=datetime.timezone.utc)
        return int(value.timestamp() * 1000)
    if isinstance(value, decimal.Decimal):
        return str(value)
    if isinstance(value, dict):
        return {k: norm(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        items = [norm(v) for v in value]
        # pyarrow returns Avro maps as lists of (key, value) pairs.
        if items and all(isinstance(i, tuple) and len(i) == 2 for i in value):
            return {k: v for k, v in items}
        return items
    return value


def source_events(brokers, topic, schemas_dir):
    """The topic's events by ce_id: (partition, offset, decoded data)."""
    schemas = {}
    for path in glob.glob(os.path.join(schemas_dir, "*.avsc")):
        with open(path) as f:
            text = json.load(f)
        # Each schema names its event type; the record's ce_type header picks the schema.
        schemas[text["x-herald-event-type"]] = fastavro.parse_schema(text)
    consumer = Consumer({
        "bootstrap.servers": brokers,
        "group.id": "export-reader",
        "enable.auto.commit": False,
        "enable.partition.eof": True,
        "isolation.level": "read_committed",
    })
    partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
    consumer.assign([TopicPartition(topic, p, 0) for p in partitions])
    events, at_end = {}, set()
    while len(at_end) < len(partitions):
        message = consumer.poll(10)
        if message is None:
            raise SystemExit("timed out reading the source topic")
        if message.error():
            at_end.add(message.partition())
            continue
        value = message.value()
        assert value[:2] == b"\xc3\x01", "single-object encoding expected"
        headers = {k: v.decode() for k, v in (message.headers() or [])}
        schema = schemas[headers["ce_type"]]
        data = fastavro.schemaless_reader(io.BytesIO(value[10:]), schema)
        events[headers["ce_id"]] = (message.partition(), message.offset(), norm(data))
    consumer.close()
    return events


def compare(kind, records, source, mismatches):
    ids = []
    for record in records:
        record = norm(record)
        ids.append(record["id"])
        partition, offset, data = source[record["id"]]
        if (record["partition"], record["offset"]) != (partition, offset):
            mismatches.append(f"{kind} {record['id']}: at {record['partition']}/{record['offset']}, source at {partition}/{offset}")
        exported = record["data"]
        for field in sorted(set(data) | set(exported)):
            if data.get(field) != exported.get(field):
                mismatches.append(f"{kind} {record['id']}.{field}: {exported.get(field)!r} != source {data.get(field)!r}")
    return ids


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--brokers", required=True)
    parser.add_argument("--topic", required=True)
    parser.add_argument("--schemas", required=True)
    parser.add_argument("--avro")
    parser.add_argument("--parquet")
    args = parser.parse_args()
    source = source_events(args.brokers, args.topic, args.schemas)
    mismatches, out = [], {}
    if args.avro:
        with open(args.avro, "rb") as f:
            out["avro_ids"] = compare("avro", list(fastavro.reader(f)), source, mismatches)
    if args.parquet:
        rows = pq.read_table(args.parquet).to_pylist()
        out["parquet_ids"] = compare("parquet", rows, source, mismatches)
    out["mismatches"] = mismatches
    print(json.dumps(out))


if __name__ == "__main__":
    main()
