"""Fixtures for the framework suite: the official SDK's helpers, LangChain and the OpenAI
Agents SDK, each pointed at flexgate (which forwards to `flexgate sim`). Run through
tests/sdk/run.sh, which starts both and exports FLEXGATE_URL."""

from __future__ import annotations

import os

import pytest
from pydantic import BaseModel, Field

API_KEY = "sk-framework-suite"


@pytest.fixture(scope="session")
def base_url() -> str:
    url = os.environ.get("FLEXGATE_URL")
    if not url:
        pytest.exit("FLEXGATE_URL is not set: run this suite through tests/sdk/run.sh", returncode=2)
    return url + "/v1"


class Address(BaseModel):
    street: str
    city: str
    postcode: int = Field(ge=1000, le=99999)


class Person(BaseModel):
    """Nested models, a list of models, a literal, an optional field: what `parse` and
    `with_structured_output` turn into a strict JSON schema with `$defs` and `$ref`."""

    name: str
    age: int
    height_m: float
    employed: bool
    role: str | None
    kind: "Kind"
    home: Address
    previous: list[Address]
    tags: list[str]


from enum import Enum  # noqa: E402  (after the models that name it, as Pydantic allows)


class Kind(str, Enum):
    employee = "employee"
    contractor = "contractor"


Person.model_rebuild()
