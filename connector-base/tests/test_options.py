"""OptionsModel: option descriptions for the docs' tables, from any of the three places."""

from __future__ import annotations

from headwater.connectors.base import OptionsModel
from pydantic import Field, TypeAdapter


class ServiceOptions(OptionsModel):
    """Options of a service.

    Args:
        host: where the service runs; a long
            description on two lines.
        port (int): its port.
        timeout: not used: the field's own description wins.

    Raises:
        retries: not an argument.
    """

    host: str
    port: int = 80
    timeout: float = Field(default=1.0, description="Seconds per request.")
    retries: int = 3
    """How often to try again."""
    verbose: bool = False


def test_descriptions_come_from_field_attribute_docstring_or_args() -> None:
    properties = TypeAdapter(ServiceOptions).json_schema()["properties"]
    described = {name: prop.get("description") for name, prop in properties.items()}
    assert described == {
        "host": "where the service runs; a long description on two lines.",
        "port": "its port.",
        "timeout": "Seconds per request.",
        "retries": "How often to try again.",
        "verbose": None,
    }
    assert ServiceOptions(host="h").port == 80
