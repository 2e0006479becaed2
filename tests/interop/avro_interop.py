#!/usr/bin/env python3
"""Avro interoperability between Herald and Confluent's Python client.

Rust tests run this script (Python 3.11, in a venv with ``confluent-kafka`` and ``fastavro``)
to check that Herald reads what Confluent's serializer writes and writes what Confluent's
deserializer reads.

    avro_interop.py produce --brokers HOST:PORT --registry URL --topic TOPIC --schema PATH --count N
    avro_interop.py consume --brokers HOST:PORT --registry URL --topic TOPIC --count N --timeout-secs T

``produce`` registers the record schema at PATH (``schemas/events/order.paid.avsc``) under the
subject ``<TOPIC>-value``, writes N ``order.paid`` records with ``AvroSerializer`` (Confluent
framing: magic byte 0, 4-byte big-endian schema id, Avro binary) and CloudEvents ``ce_*``
headers, and prints for each, once all are acknowledged, the JSON Herald must render it as:
``{"key": ..., "ce_id": ..., "value": {...}}``.

``consume`` reads N records from the start of TOPIC with ``read_committed`` isolation, decodes
each with ``AvroDeserializer`` (writer schema from the registry), and prints
``{"key": ..., "headers": {...}, "value": {...}}`` per record.

JSON rendering of Avro values, in both directions (see ``to_json``):
- decimal (``decimal.Decimal``): a string in fixed-point notation with exactly the schema's
  scale digits after the point, e.g. ``"10.05"``, ``"3.00"``;
- timestamp-millis (``datetime``): RFC 3339 in UTC with exactly three fractional digits and a
  ``Z`` suffix, e.g. ``"2026-12-03T10:15:30.123Z"`` (six digits only if the value has
  sub-millisecond precision, which timestamp-millis never has);
- enum: its symbol as a string;
- union: the value of the branch, unwrapped (``null`` becomes JSON ``null``);
- bytes and fixed: standard base64 with padding;
- int, long: JSON integers; float, double: JSON numbers (non-finite ones as the strings
  ``"NaN"``, ``"Infinity"``, ``"-Infinity"``);
- record and map: JSON objects (record fields in schema order); array: JSON array.

Exit status: 0 on success; 1 with a message on stderr on any failure (including fewer than N
records within the timeout); 2 on bad arguments.
"""

from __future__ import annotations

import argparse
import base64
import datetime as dt
import decimal
import json
import math
import sys
import time
import uuid
from typing import Any

try:
    from confluent_kafka import Consumer, KafkaError, Producer
    from confluent_kafka.schema_registry import Schema, SchemaRegistryClient, topic_subject_name_strategy
    from confluent_kafka.schema_registry.avro import AvroDeserializer, AvroSerializer
    from confluent_kafka.serialization import MessageField, SerializationContext
except ImportError as exc:  # pragma: no cover - depends on the environment
    sys.exit(f"avro_interop: needs confluent-kafka and fastavro installed ({exc})")

UTC = dt.timezone.utc
EVENT_TYPE = "order.paid"
PAYMENT_METHODS = ["CARD", "ALIPAY", "WECHAT_PAY", "BANK_TRANSFER", "WALLET"]
CURRENCIES = ["CNY", "USD", "EUR"]
BASE_TIME = dt.datetime(2026, 12, 3, 10, 15, 30, 123000, tzinfo=UTC)
CENT = decimal.Decimal("0.01")


class InteropError(Exception):
    """A failure reported as one line on stderr and exit status 1."""


# ------------------------------------------------------------------------------- rendering


def rfc3339(value: dt.datetime) -> str:
    """RFC 3339 UTC with millisecond precision and a Z suffix (naive values are taken as UTC)."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    value = value.astimezone(UTC)
    frac = f"{value.microsecond // 1000:03d}" if value.microsecond % 1000 == 0 else f"{value.microsecond:06d}"
    return (
        f"{value.year:04d}-{value.month:02d}-{value.day:02d}"
        f"T{value.hour:02d}:{value.minute:02d}:{value.second:02d}.{frac}Z"
    )


def to_json(value: Any) -> Any:
    """Renders a value as fastavro reads or writes it into plain JSON (rules in the module doc)."""
    if value is None or isinstance(value, (bool, str, int)):
        return value
    if isinstance(value, float):
        if math.isnan(value):
            return "NaN"
        if math.isinf(value):
            return "Infinity" if value > 0 else "-Infinity"
        return value
    if isinstance(value, decimal.Decimal):
        # fastavro decodes a decimal with exponent -scale, and produce() builds them that way,
        # so fixed-point notation shows exactly the schema's scale digits.
        return format(value, "f")
    if isinstance(value, dt.datetime):
        return rfc3339(value)
    if isinstance(value, (dt.date, dt.time)):
        return value.isoformat()
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, (bytes, bytearray, memoryview)):
        return base64.b64encode(bytes(value)).decode("ascii")
    if isinstance(value, dict):
        return {str(k): to_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_json(v) for v in value]
    raise InteropError(f"cannot render {type(value).__name__} value {value!r} as JSON")


def emit(obj: dict) -> None:
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


# ------------------------------------------------------------------------------- produce


def order_paid(i: int) -> dict:
    """Record i: deterministic, with every optional field both null and set across records."""
    paid_at = BASE_TIME + dt.timedelta(minutes=7 * i, seconds=i % 60, milliseconds=(i * 37) % 1000)
    items = []
    for j in range(1 + i % 3):
        unit_price = decimal.Decimal(f"{(i + j) * 3 + 1}.{(i * 11 + j * 29) % 100:02d}").quantize(CENT)
        items.append({"sku": f"sku-{(i * 7 + j) % 50:03d}", "quantity": 1 + (i + j) % 4, "unit_price": unit_price})
    amount = sum((item["unit_price"] * item["quantity"] for item in items), decimal.Decimal("0.00")).quantize(CENT)
    if i % 2 == 0:
        coupon = None
    elif i % 4 == 3:
        coupon = f"春节-{i}"  # non-ASCII, to check UTF-8 strings
    else:
        coupon = f"SAVE{i % 10}"
    risk = None if (i // 2) % 2 == 1 else round(((i * 37) % 100) / 100, 2)
    # Field order follows the schema, so the rendered JSON does too.
    return {
        "order_id": f"ord-{i}",
        "tenant_id": f"tenant-{i % 3}",
        "user_id": f"user-{i % 5}",
        "payment_id": f"pay-{i:06d}",
        "amount": amount,
        "currency": CURRENCIES[i % len(CURRENCIES)],
        "payment_method": PAYMENT_METHODS[i % len(PAYMENT_METHODS)],
        "items": items,
        "coupon_code": coupon,
        "paid_at": paid_at,
        "risk_score": risk,
    }


def produce(args: argparse.Namespace) -> None:
    with open(args.schema, encoding="utf-8") as fh:
        schema_dict = json.load(fh)
    if not isinstance(schema_dict, dict) or schema_dict.get("type") != "record":
        raise InteropError(f"{args.schema}: expected one top-level record schema")
    schema_str = json.dumps(schema_dict, separators=(",", ":"), ensure_ascii=False)
    subject = f"{args.topic}-value"

    registry = SchemaRegistryClient({"url": args.registry})
    schema_id = registry.register_schema(subject, Schema(schema_str, "AVRO"))
    print(f"avro_interop: registered {args.schema} under {subject} as id {schema_id}", file=sys.stderr)

    serializer = AvroSerializer(
        registry,
        schema_str,
        conf={"auto.register.schemas": True, "subject.name.strategy": topic_subject_name_strategy},
    )
    producer = Producer(
        {"bootstrap.servers": args.brokers, "acks": "all", "enable.idempotence": True, "linger.ms": 5}
    )
    failures: list[str] = []

    def on_delivery(err, msg) -> None:
        if err is not None:
            failures.append(f"{msg.key()!r}: {err}")

    expected = []
    for i in range(args.count):
        record = order_paid(i)
        ce_time = rfc3339(record["paid_at"])
        headers = [
            ("ce_specversion", "1.0"),
            ("ce_id", f"evt-{i}"),
            ("ce_source", "/python/interop"),
            ("ce_type", EVENT_TYPE),
            ("ce_time", ce_time),
            ("content-type", "application/avro"),
        ]
        value = serializer(record, SerializationContext(args.topic, MessageField.VALUE, headers))
        while True:
            try:
                producer.produce(args.topic, key=record["order_id"], value=value, headers=headers,
                                 on_delivery=on_delivery)
                break
            except BufferError:
                producer.poll(0.1)
        producer.poll(0)
        expected.append({"key": record["order_id"], "ce_id": f"evt-{i}", "value": to_json(record)})

    remaining = producer.flush(60)
    if remaining:
        raise InteropError(f"{remaining} of {args.count} records were not acknowledged within 60 s")
    if failures:
        raise InteropError(f"{len(failures)} records failed: " + "; ".join(failures[:5]))
    for line in expected:
        emit(line)


# ------------------------------------------------------------------------------- consume


def consume(args: argparse.Namespace) -> None:
    registry = SchemaRegistryClient({"url": args.registry})
    deserializer = AvroDeserializer(registry, conf={"subject.name.strategy": topic_subject_name_strategy})
    consumer = Consumer(
        {
            "bootstrap.servers": args.brokers,
            "group.id": f"py-interop-{uuid.uuid4()}",
            "auto.offset.reset": "earliest",
            "isolation.level": "read_committed",
            "enable.auto.commit": False,
        }
    )
    received = 0
    deadline = time.monotonic() + args.timeout_secs
    try:
        consumer.subscribe([args.topic])
        while received < args.count:
            left = deadline - time.monotonic()
            if left <= 0:
                raise InteropError(
                    f"received {received} of {args.count} records from {args.topic} within {args.timeout_secs} s"
                )
            msg = consumer.poll(min(1.0, left))
            if msg is None:
                continue
            err = msg.error()
            if err is not None:
                if err.code() == KafkaError._PARTITION_EOF:
                    continue
                if err.fatal():
                    raise InteropError(f"consumer error: {err}")
                print(f"avro_interop: consumer error (retrying): {err}", file=sys.stderr)
                continue
            raw_headers = msg.headers() or []
            ctx = SerializationContext(msg.topic(), MessageField.VALUE, raw_headers)
            try:
                value = deserializer(msg.value(), ctx)
            except Exception as exc:
                raise InteropError(
                    f"cannot decode {msg.topic()}[{msg.partition()}]@{msg.offset()}: {type(exc).__name__}: {exc}"
                ) from exc
            headers = {
                name: (None if raw is None else bytes(raw).decode("utf-8", errors="replace"))
                for name, raw in raw_headers
            }
            key = msg.key()
            emit(
                {
                    "key": None if key is None else bytes(key).decode("utf-8", errors="replace"),
                    "headers": headers,
                    "value": to_json(value),
                }
            )
            received += 1
    finally:
        consumer.close()


# ------------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--brokers", required=True, help="Kafka bootstrap servers, HOST:PORT[,...]")
    common.add_argument("--registry", required=True, help="Confluent-compatible schema registry base URL")
    common.add_argument("--topic", required=True)
    common.add_argument("--count", required=True, type=int, help="number of records")
    p = sub.add_parser("produce", parents=[common], help="write order.paid records with AvroSerializer")
    p.add_argument("--schema", required=True, help="path of schemas/events/order.paid.avsc")
    c = sub.add_parser("consume", parents=[common], help="read and decode records with AvroDeserializer")
    c.add_argument("--timeout-secs", required=True, type=float)
    args = parser.parse_args(argv)
    if args.count < 0:
        parser.error("--count must not be negative")
    try:
        if args.command == "produce":
            produce(args)
        else:
            consume(args)
    except KeyboardInterrupt:
        print("avro_interop: interrupted", file=sys.stderr)
        return 1
    except Exception as exc:  # every failure is one readable line and exit status 1
        print(f"avro_interop: {args.command} failed: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
