"""Embeddings answers: vectors read as floats, the cost exact, and anything else in a vector refused."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest

from gateway.providers import embeddings
from gateway.providers.base import WIRE_OPENAI_COMPAT
from smartspec.errors import UpstreamUnavailable
from tests.gateway.providers.helpers import make_config

CONFIG = make_config("openrouter", WIRE_OPENAI_COMPAT, "https://openrouter.ai/api/v1")


def answer(vectors: list, cost: str = "0.0000000123456789") -> bytes:
    data = [{"object": "embedding", "index": i, "embedding": v} for i, v in enumerate(vectors)]
    body = json.dumps({"object": "list", "data": data, "usage": {"prompt_tokens": 3, "cost": "COST"}})
    return body.replace('"COST"', cost).encode()


def test_vectors_are_floats_and_the_cost_is_exact():
    result = embeddings.parse_response(answer([[0.25, -1, 3e-8], [1, 2, 3]]), CONFIG, count=2)
    assert result.vectors == [[0.25, -1.0, 3e-8], [1.0, 2.0, 3.0]]
    assert all(type(x) is float for vector in result.vectors for x in vector)
    assert result.usage.cost_usd == Decimal("0.0000000123456789")


@pytest.mark.parametrize(
    "vector",
    [[0.1, True], [0.1, "0.2"], [0.1, None], [0.1, [0.2]], [0.1, {"x": 1}], [], "0.1", None],
)
def test_a_vector_with_anything_but_numbers_is_malformed(vector):
    with pytest.raises(UpstreamUnavailable) as info:
        embeddings.parse_response(answer([vector]), CONFIG, count=1)
    assert info.value.code == "upstream_malformed"
