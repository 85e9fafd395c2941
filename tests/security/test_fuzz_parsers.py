"""Hypothesis against the chat request parsers: whatever JSON a client sends, parsing and validation
either produce a well-formed request or raise one of our `APIError`s (rendered as a 4xx), never
anything else, and accepted requests stay inside the documented bounds."""

import pytest
from django.conf import settings as django_settings
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway import openai_format
from gateway.client import LLMRequest, request_validate
from smartspec.errors import APIError

EXAMPLES = 400

json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=20),
)
json_values = st.recursive(
    json_scalars,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=12,
)
message = st.one_of(
    st.fixed_dictionaries(
        {"role": st.sampled_from(["user", "system", "assistant", "tool", "developer", "wizard"])},
        optional={"content": json_values, "tool_calls": json_values, "name": json_values},
    ),
    json_values,
)
FIELDS = {
    "model": st.one_of(json_values, st.sampled_from(["openai/gpt-4o", "auto", "nope/none", ""])),
    "messages": st.one_of(st.lists(message, max_size=5), json_values),
    "task_type": st.one_of(json_values, st.sampled_from(["simple", "code_generation"])),
    "budget_priority": st.one_of(json_values, st.sampled_from(["cost", "quality"])),
    "fallback_models": json_values,
    "models": json_values,
    "use_openrouter": json_values,
    "temperature": json_values,
    "max_tokens": json_values,
    "max_completion_tokens": json_values,
    "stream": json_values,
    "stream_options": json_values,
    "n": json_values,
    "provider": st.one_of(
        json_values,
        st.fixed_dictionaries(
            {},
            optional={
                "sort": json_values,
                "data_collection": json_values,
                "zdr": json_values,
                "max_price": st.one_of(
                    json_values, st.dictionaries(st.sampled_from(["prompt", "completion"]), json_values)
                ),
            },
        ),
    ),
    "sort": json_values,
    "data_collection": json_values,
    "zdr": json_values,
    "max_price": st.one_of(
        json_values, st.dictionaries(st.sampled_from(["prompt", "completion"]), json_values)
    ),
    "stop": json_values,
    "top_p": json_values,
    "tools": json_values,
    "response_format": json_values,
    "seed": json_values,
    "api_base": json_values,
    "base_url": json_values,
}
bodies = st.fixed_dictionaries({}, optional=FIELDS)

fuzz_settings = settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=list(HealthCheck),
)


def _validated_or_refused(parse, body):
    try:
        request = parse(body)
    except APIError as exc:
        assert 400 <= exc.status < 500
        assert exc.as_dict()["error"]["message"]
        return None
    if isinstance(request, openai_format.ParsedCompletion):
        request = request.request
    try:
        _options, chat, max_tokens = request_validate(request)
    except APIError as exc:
        assert 400 <= exc.status < 500
        return None
    assert 1 <= max_tokens <= django_settings.MAX_OUTPUT_TOKENS
    assert 0 < len(chat.messages) <= django_settings.MAX_MESSAGES
    assert chat.temperature is None or 0 <= chat.temperature <= 2
    for name in ("api_base", "base_url", "api_key"):
        assert name not in chat.params
    return chat


@pytest.mark.parametrize(
    "parse", [openai_format.chat_completion_request, openai_format.llm_request], ids=["openai", "native"]
)
def test_any_json_body_is_parsed_or_refused_with_a_4xx(parse):
    @given(body=bodies)
    @fuzz_settings
    def run(body):
        chat = _validated_or_refused(parse, body)
        if "api_base" in body or "base_url" in body:
            assert chat is None

    run()


@given(
    messages=st.one_of(st.lists(message, max_size=5), json_values),
    max_tokens=json_values,
    temperature=json_values,
    params=st.dictionaries(st.sampled_from(["stop", "top_p", "api_base", "seed", "tools"]), json_values),
)
@fuzz_settings
def test_the_python_api_request_is_validated_the_same_way(messages, max_tokens, temperature, params):
    request = LLMRequest(messages=messages, max_tokens=max_tokens, temperature=temperature, params=params)
    try:
        _options, _chat, bound = request_validate(request)
    except APIError as exc:
        assert 400 <= exc.status < 500
        return
    assert "api_base" not in params
    assert 1 <= bound <= django_settings.MAX_OUTPUT_TOKENS
