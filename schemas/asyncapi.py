"""An AsyncAPI 3.0 document of every topic, built from the topic registry and the models.

Each topic is a channel (its address under the default prefix; the Kafka binding carries
partitions, cleanup policy and retention), each event model a message with its key format,
and each channel gets a ``receive`` operation: what a generated consumer does. Payload
schemas are the models' JSON Schemas, their shared definitions under
``components/schemas``.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from schemas.envelope import Event
from schemas.topics import ALL_TOPICS, DEFAULT_PARTITIONS, DEFAULT_PREFIX, TopicSpec

VERSION = "0.1.0"
KAFKA_BINDING = "0.5.0"
REF = "#/components/schemas/{model}"


def _asyncapi_schema(node: Any) -> Any:
    """pydantic writes OpenAPI's discriminator object; the AsyncAPI Schema Object's
    ``discriminator`` is the property name alone."""
    if isinstance(node, dict):
        out = {key: _asyncapi_schema(value) for key, value in node.items()}
        if isinstance(out.get("discriminator"), dict):
            out["discriminator"] = out["discriminator"]["propertyName"]
        return out
    if isinstance(node, list):
        return [_asyncapi_schema(item) for item in node]
    return node


def _message_name(model: type[BaseModel]) -> str:
    return model.__name__


def _channel(spec: TopicSpec) -> dict[str, Any]:
    config: dict[str, Any] = {"cleanup.policy": spec.cleanup.value.split(",")}
    if "retention.ms" in spec.config():
        config["retention.ms"] = spec.retention_ms
    return {
        "address": spec.full_name(DEFAULT_PREFIX),
        "title": spec.name,
        "description": (
            f"Key: `{spec.key_format}`. The address carries the default prefix "
            f"`{DEFAULT_PREFIX}` (SMSFLOW_TOPIC_PREFIX)."
        ),
        "messages": {
            _message_name(model): {"$ref": f"#/components/messages/{_message_name(model)}"}
            for model in spec.values
        },
        "bindings": {
            "kafka": {
                "topic": spec.full_name(DEFAULT_PREFIX),
                "partitions": spec.partition_count(DEFAULT_PARTITIONS),
                "topicConfiguration": config,
                "bindingVersion": KAFKA_BINDING,
            }
        },
    }


def document() -> dict[str, Any]:
    models: list[type[Event]] = []
    for spec in ALL_TOPICS:
        models += [m for m in spec.values if issubclass(m, Event) and m not in models]
    schemas, defs = models_json_schema(
        [(m, "validation") for m in models], by_alias=True, ref_template=REF
    )
    components_schemas: dict[str, Any] = _asyncapi_schema(
        dict(sorted(defs.get("$defs", {}).items()))
    )
    messages: dict[str, Any] = {}
    keys = {model: spec.key_format for spec in reversed(ALL_TOPICS) for model in spec.values}
    for model in models:
        name = _message_name(model)
        event_type = model.model_fields["event_type"].default
        messages[name] = {
            "name": name,
            "title": str(event_type),
            "summary": (model.__doc__ or name).strip().splitlines()[0],
            "contentType": "application/json",
            "payload": schemas[(model, "validation")],
            "bindings": {
                "kafka": {
                    "key": {"type": "string", "description": keys[model]},
                    "bindingVersion": KAFKA_BINDING,
                }
            },
        }
    channels = {spec.name: _channel(spec) for spec in ALL_TOPICS}
    operations = {
        f"receive-{spec.name}": {
            "action": "receive",
            "channel": {"$ref": f"#/channels/{spec.name}"},
            "summary": f"Consume {spec.name}",
            "messages": [
                {"$ref": f"#/channels/{spec.name}/messages/{_message_name(model)}"}
                for model in spec.values
            ],
        }
        for spec in ALL_TOPICS
    }
    return {
        "asyncapi": "3.0.0",
        "info": {
            "title": "smsflow",
            "version": VERSION,
            "description": (
                "Automated SMS from marketing workflows on Apache Kafka: every topic, its key "
                "and the JSON events it carries. Generated from the pydantic models in "
                "schemas/ by `make schemas`; do not edit."
            ),
        },
        "defaultContentType": "application/json",
        "servers": {
            "local": {
                "host": "127.0.0.1:9092",
                "protocol": "kafka",
                "description": "the local broker of `smsflow dev up`",
            }
        },
        "channels": channels,
        "operations": operations,
        "components": {"messages": messages, "schemas": components_schemas},
    }
