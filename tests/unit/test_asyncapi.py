"""``schemas/asyncapi.yaml`` is current, parses, and holds together as AsyncAPI 3.0."""

from __future__ import annotations

from typing import Any

import yaml

from schemas import generate
from schemas.topics import ALL_TOPICS, DEFAULT_PREFIX


def loaded() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(generate.ASYNCAPI.read_text(encoding="utf-8"))
    return data


def resolve(doc: dict[str, Any], ref: str) -> Any:
    assert ref.startswith("#/"), ref
    node: Any = doc
    for part in ref[2:].split("/"):
        assert isinstance(node, dict), ref
        assert part in node, f"unresolved $ref {ref}"
        node = node[part]
    return node


def refs(node: Any) -> list[str]:
    if isinstance(node, dict):
        found = [node["$ref"]] if isinstance(node.get("$ref"), str) else []
        return found + [r for value in node.values() for r in refs(value)]
    if isinstance(node, list):
        return [r for item in node for r in refs(item)]
    return []


def test_checked_in_asyncapi_is_current() -> None:
    on_disk = generate.ASYNCAPI.read_text(encoding="utf-8")
    assert on_disk == generate.rendered_asyncapi(), "run `make schemas` and commit the result"


def test_it_parses_as_asyncapi_3_with_every_topic() -> None:
    doc = loaded()
    assert doc["asyncapi"] == "3.0.0"
    assert doc["info"]["title"]
    assert doc["info"]["version"]
    assert set(doc) <= {
        "asyncapi",
        "id",
        "info",
        "servers",
        "defaultContentType",
        "channels",
        "operations",
        "components",
    }
    assert {s["protocol"] for s in doc["servers"].values()} == {"kafka"}
    assert set(doc["channels"]) == {spec.name for spec in ALL_TOPICS}
    for spec in ALL_TOPICS:
        channel = doc["channels"][spec.name]
        assert channel["address"] == f"{DEFAULT_PREFIX}{spec.name}"
        names = {model.__name__ for model in spec.values}
        assert set(channel["messages"]) == names
        binding = channel["bindings"]["kafka"]
        assert binding["topicConfiguration"]["cleanup.policy"] == spec.cleanup.value.split(",")
        for name in names:
            message = resolve(doc, channel["messages"][name]["$ref"])
            assert message["contentType"] == "application/json"
            assert message["bindings"]["kafka"]["key"]["description"] == spec.key_format
            payload = resolve(doc, message["payload"]["$ref"])
            assert "event_type" in payload["properties"]
            assert "event_id" in payload["properties"]


def test_operations_and_every_reference_resolve() -> None:
    doc = loaded()
    for name, operation in doc["operations"].items():
        assert operation["action"] in ("send", "receive"), name
        channel_ref = operation["channel"]["$ref"]
        resolve(doc, channel_ref)
        for message in operation["messages"]:
            # AsyncAPI 3: an operation's messages are those of its channel.
            assert message["$ref"].startswith(channel_ref + "/messages/")
            resolve(doc, message["$ref"])
    for ref in refs(doc):
        resolve(doc, ref)


def test_discriminators_are_property_names() -> None:
    """The AsyncAPI Schema Object's ``discriminator`` is a string, not OpenAPI's object."""

    def discriminators(node: Any) -> list[Any]:
        if isinstance(node, dict):
            own = [node["discriminator"]] if "discriminator" in node else []
            return own + [d for value in node.values() for d in discriminators(value)]
        if isinstance(node, list):
            return [d for item in node for d in discriminators(item)]
        return []

    found = discriminators(loaded()["components"]["schemas"])
    assert found  # the action and document unions have one
    assert all(isinstance(d, str) for d in found)
