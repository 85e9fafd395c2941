"""The hot path's plain request checks (gateway.openai_format) against the DRF serializers that
document the same bodies: on generated bodies both accept the same values (with the same defaults)
or refuse with the same message."""

from collections.abc import Mapping

import pytest
from hypothesis import given
from rest_framework import serializers

from gateway import openai_format
from smartspec.errors import APIError, as_api_error
from tests.security.test_fuzz_parsers import bodies, fuzz_settings


def _plain(data):
    if isinstance(data, Mapping):
        return {str(k): _plain(v) for k, v in data.items()}
    if isinstance(data, list):
        return [_plain(v) for v in data]
    return data


def _outcome(validate):
    try:
        return "ok", repr(_plain(validate()))
    except APIError as exc:
        return "refused", exc.as_dict()["error"]["message"]


def _by_serializer(serializer_cls, body):
    serializer = serializer_cls(data=body)
    if not serializer.is_valid():
        raise as_api_error(serializers.ValidationError(serializer.errors))
    return serializer.validated_data


def _without_forbidden(body):
    # Both refuse these before any field is looked at (tested in the pipeline tests).
    return {k: v for k, v in body.items() if k not in ("api_base", "base_url", "api_key")}


@pytest.mark.parametrize(
    "serializer_cls, parse",
    [
        (openai_format.ChatCompletionInput, openai_format._chat_completion_body),
        (openai_format.LLMRequestInput, openai_format._llm_request_body),
    ],
    ids=["chat_completion", "llm_request"],
)
@fuzz_settings
@given(body=bodies)
def test_plain_checks_agree_with_the_serializers(serializer_cls, parse, body):
    body = _without_forbidden(body)
    expected = _outcome(lambda: _by_serializer(serializer_cls, body))
    assert _outcome(lambda: openai_format._validated(parse, body)) == expected


@pytest.mark.parametrize(
    "body",
    [
        {"messages": [{"role": "user", "content": "hi"}], "model": " openai/gpt-4o ", "max_tokens": "16"},
        {"messages": [{"role": "user", "content": "hi"}], "temperature": "0.5", "stream": "true"},
        {"messages": [], "model": "", "temperature": 7, "n": 2, "provider": "fast"},
        {"messages": [None, "x"], "fallback_models": ["a", ""] + ["m"] * 11, "max_tokens": 1.5},
        {"messages": "hi", "provider": {"sort": "random", "zdr": "maybe", "max_price": []}},
        {"model": "a\x00b", "messages": [{}], "stream_options": None, "use_openrouter": None},
        {"messages": [{"role": "user"}], "max_tokens": "9" * 1001, "temperature": float("inf")},
    ],
)
def test_hand_picked_bodies_agree(body):
    for serializer_cls, parse in (
        (openai_format.ChatCompletionInput, openai_format._chat_completion_body),
        (openai_format.LLMRequestInput, openai_format._llm_request_body),
    ):
        expected = _outcome(lambda: _by_serializer(serializer_cls, body))
        assert _outcome(lambda: openai_format._validated(parse, body)) == expected
