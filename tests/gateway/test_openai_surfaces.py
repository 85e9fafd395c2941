"""OpenAI's other surfaces with the official `openai` SDK, unmodified, against a live gateway (uvicorn
in a thread, the mocked network behind it): models.retrieve, legacy completions, embeddings, the
Responses API (plain, json_schema, a function-call round trip, previous_response_id, streaming) and
chat with n / logprobs / reasoning_effort. Every call's charge is the balance's change and its usage row.
"""

from __future__ import annotations

import json
from decimal import Decimal

import openai
import pytest

from tests.gateway.conftest import (
    GEMINI_HOST,
    OPENROUTER_HOST,
    balance,
    grant,
    json_response,
    openrouter_completion,
    openrouter_stream,
    sse_response,
)

pytestmark = pytest.mark.django_db(transaction=True)

HELLO = [{"role": "user", "content": "Say hello"}]
SMALL = "openai/text-embedding-3-small"


def usage_rows():
    from gateway.aftercall import call_records_flush
    from monitoring.models import UsageRecord

    call_records_flush()
    return list(UsageRecord.objects.order_by("id"))


def charged(user, before: int) -> int:
    return before - balance(user)["balance"]


def or_embeddings(vectors, *, prompt_tokens=8, cost="0.00000016"):
    return {
        "object": "list",
        "data": [{"object": "embedding", "index": i, "embedding": v} for i, v in enumerate(vectors)],
        "model": SMALL,
        "provider": "OpenAI",
        "usage": {"prompt_tokens": prompt_tokens, "total_tokens": prompt_tokens, "cost": Decimal(cost)},
    }


def test_models_retrieve_gives_the_model_object_with_pricing(providers, funded_user, sdk):
    model = sdk.models.retrieve("openai/gpt-4o")
    assert model.id == "openai/gpt-4o" and model.object == "model" and model.owned_by == "openai"
    assert model.created > 1_600_000_000
    assert Decimal(model.model_extra["pricing"]["prompt"]) == Decimal("0.0000025")
    assert sdk.models.retrieve(SMALL).model_extra["mode"] == "embedding"
    with pytest.raises(openai.NotFoundError):
        sdk.models.retrieve("acme/unknown")
    assert all(m.created > 0 for m in sdk.models.list())


def test_legacy_completions_is_a_400_naming_chat_completions(providers, funded_user, sdk):
    with pytest.raises(openai.BadRequestError) as exc:
        sdk.completions.create(model="openai/gpt-4o", prompt="Say hello")
    assert "/v1/chat/completions" in exc.value.message


def test_embeddings_float_base64_and_dimensions_are_billed_at_cost(providers, funded_user, sdk):
    def answer(req, body):
        # One token per word at text-embedding-3-small's $0.00000002 a token, as OpenRouter reports.
        count = len(body["input"])
        return json_response(
            200, or_embeddings([[0.5, -0.25, 0.125]] * count, prompt_tokens=count, cost=f"{count * 2}E-8")
        )

    providers.on(OPENROUTER_HOST, answer)
    before = balance(funded_user)["balance"]

    floats = sdk.embeddings.create(model=SMALL, input=["one", "two"], encoding_format="float", dimensions=3)
    # The SDK's default asks for base64 and decodes it itself.
    decoded = sdk.embeddings.create(model=SMALL, input="one")

    assert [d.embedding for d in floats.data] == [[0.5, -0.25, 0.125]] * 2
    assert decoded.data[0].embedding == [0.5, -0.25, 0.125]
    assert floats.usage.prompt_tokens == 2 and floats.usage.total_tokens == 2
    first, second = providers.bodies(OPENROUTER_HOST)
    assert (
        first["dimensions"] == 3 and first["input"] == ["one", "two"] and first["encoding_format"] == "float"
    )
    assert second["input"] == ["one"]
    # $0.00000004 = 0.00004 credits = 40 micro-credits, then 20.
    assert floats.usage.model_extra["credits"] == 0.00004
    assert charged(funded_user, before) == 40 + 20
    rows = usage_rows()
    assert [(r.model, r.credits, r.prompt_tokens, r.completion_tokens) for r in rows] == [
        (SMALL, 40, 2, 0),
        (SMALL, 20, 1, 0),
    ]
    assert balance(funded_user)["held"] == 0


def test_embeddings_through_gemini_batch_and_ollama(providers, funded_user, sdk, settings):
    settings.OLLAMA_BASE_URL = "http://ollama.local:11434"
    providers.on(
        GEMINI_HOST,
        lambda req, body: json_response(
            200, {"embeddings": [{"values": [0.1, 0.2]} for _ in body["requests"]]}
        ),
    )
    providers.on("ollama.local", lambda req, body: json_response(
        200, {"model": "nomic-embed-text", "embeddings": [[0.3, 0.4]], "prompt_eval_count": 1}
    ))  # fmt: skip
    before = balance(funded_user)["balance"]

    gemini = sdk.embeddings.create(
        model="google/gemini-embedding-001",
        input=["a", "bb"],
        dimensions=2,
        encoding_format="float",
        extra_body={"use_openrouter": False},
    )
    local = sdk.embeddings.create(model="ollama/nomic-embed-text", input="hi", encoding_format="float")

    assert [d.embedding for d in gemini.data] == [[0.1, 0.2], [0.1, 0.2]]
    (batch,) = providers.bodies(GEMINI_HOST)
    assert batch["requests"][1] == {
        "model": "models/gemini-embedding-001",
        "outputDimensionality": 2,
        "content": {"parts": [{"text": "bb"}]},
    }
    assert providers.requests[0].url.path == "/v1beta/models/gemini-embedding-001:batchEmbedContents"
    assert local.data[0].embedding == [0.3, 0.4] and local.usage.prompt_tokens == 1
    assert providers.requests[1].url.path == "/api/embed"
    rows = usage_rows()
    # Gemini reports no usage: estimated from the text (3 bytes, 4 a token: 1), priced at $0.00000015.
    assert rows[0].usage_estimated and rows[0].prompt_tokens == 1 and rows[0].credits == 150
    assert charged(funded_user, before) == sum(r.credits for r in rows)


def test_embedding_refusals_move_no_money(providers, funded_user, sdk):
    before = balance(funded_user)
    with pytest.raises(openai.BadRequestError) as wrong_kind:
        sdk.embeddings.create(model="openai/gpt-4o", input="x")
    assert "not an embedding model" in wrong_kind.value.message
    with pytest.raises(openai.BadRequestError):
        sdk.chat.completions.create(model=SMALL, messages=HELLO)
    with pytest.raises(openai.BadRequestError) as tokens:
        sdk.embeddings.create(
            model="google/gemini-embedding-001", input=[[1, 2, 3]], extra_body={"use_openrouter": False}
        )
    assert "token-array" in tokens.value.message
    assert balance(funded_user) == before and providers.calls == []


def test_chat_with_n_logprobs_and_reasoning_effort(providers, funded_user, sdk):
    answer = openrouter_completion(cost="0.0003")
    logprobs = {
        "content": [{"token": "Hi", "logprob": -0.5, "bytes": [72, 105], "top_logprobs": []}],
        "refusal": None,
    }
    answer["choices"] = [
        {**answer["choices"][0], "logprobs": logprobs},
        {**answer["choices"][0], "index": 1, "message": {"role": "assistant", "content": "Two"}},
    ]
    providers.on(OPENROUTER_HOST, lambda req, body: json_response(200, answer))
    before = balance(funded_user)["balance"]

    completion = sdk.chat.completions.create(
        model="openai/gpt-4o", messages=HELLO, n=2, logprobs=True, top_logprobs=2, reasoning_effort="low"
    )

    assert [c.message.content for c in completion.choices] == ["Hello there!", "Two"]
    assert completion.choices[0].logprobs.content[0].logprob == -0.5
    (sent,) = providers.bodies(OPENROUTER_HOST)
    assert sent["n"] == 2 and sent["top_logprobs"] == 2 and sent["reasoning_effort"] == "low"
    assert "temperature" not in sent
    assert charged(funded_user, before) == 300_000 == usage_rows()[0].credits
    assert completion.usage.model_extra["credits"] == 0.3


def _tool_call_answer():
    answer = openrouter_completion(cost="0.0001")
    answer["choices"][0]["message"] = {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {
                "id": "call_7",
                "type": "function",
                "function": {"name": "get_weather", "arguments": '{"city":"Oslo"}'},
            }
        ],
    }
    answer["choices"][0]["finish_reason"] = "tool_calls"
    return answer


WEATHER = {
    "type": "function",
    "name": "get_weather",
    "description": "Weather of a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
}


def test_responses_plain_json_schema_tools_and_previous_response_id(providers, funded_user, sdk):
    answers = [
        json_response(200, openrouter_completion(cost="0.000125")),
        json_response(200, openrouter_completion(content='{"ok": true}', cost="0.0002")),
        json_response(200, _tool_call_answer()),
        json_response(200, openrouter_completion(content="It is sunny in Oslo.", cost="0.0004")),
    ]
    providers.on(OPENROUTER_HOST, answers)
    before = balance(funded_user)["balance"]

    plain = sdk.responses.create(model="openai/gpt-4o", input="Say hello", instructions="Be brief.")
    assert plain.output_text == "Hello there!" and plain.status == "completed"
    assert (
        plain.usage.input_tokens == 14 and plain.usage.output_tokens == 9 and plain.usage.total_tokens == 23
    )
    assert plain.usage.input_tokens_details.cached_tokens == 0
    assert plain.usage.output_tokens_details.reasoning_tokens == 0
    assert plain.usage.model_extra["credits"] == 0.125
    assert charged(funded_user, before) == 125_000

    structured = sdk.responses.create(
        model="openai/gpt-4o",
        input=[{"role": "user", "content": [{"type": "input_text", "text": "Answer in JSON"}]}],
        text={
            "format": {"type": "json_schema", "name": "answer", "schema": {"type": "object"}, "strict": True}
        },
        store=False,
    )
    assert json.loads(structured.output_text) == {"ok": True}

    called = sdk.responses.create(model="openai/gpt-4o", input="Weather in Oslo?", tools=[WEATHER])
    (call,) = called.output
    assert call.type == "function_call" and call.name == "get_weather" and call.call_id == "call_7"
    followed = sdk.responses.create(
        model="openai/gpt-4o",
        previous_response_id=called.id,
        input=[{"type": "function_call_output", "call_id": call.call_id, "output": '{"sky": "sunny"}'}],
        tools=[WEATHER],
    )
    assert followed.output_text == "It is sunny in Oslo." and followed.previous_response_id == called.id

    bodies = providers.bodies(OPENROUTER_HOST)
    assert bodies[0]["messages"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Say hello"},
    ]
    assert bodies[1]["response_format"] == {
        "type": "json_schema",
        "json_schema": {"name": "answer", "schema": {"type": "object"}, "strict": True},
    }
    assert bodies[2]["tools"][0] == {
        "type": "function",
        "function": {
            "name": "get_weather",
            "parameters": WEATHER["parameters"],
            "description": "Weather of a city",
        },
    }
    assert bodies[3]["messages"] == [
        {"role": "user", "content": "Weather in Oslo?"},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": _tool_call_answer()["choices"][0]["message"]["tool_calls"],
        },
        {"role": "tool", "tool_call_id": "call_7", "content": '{"sky": "sunny"}'},
    ]
    # Each call's charge is the balance's change and its usage row.
    assert charged(funded_user, before) == 125_000 + 200_000 + 100_000 + 400_000
    assert [r.credits for r in usage_rows()] == [125_000, 200_000, 100_000, 400_000]
    assert sdk.responses.retrieve(plain.id).output_text == "Hello there!"
    with pytest.raises(openai.NotFoundError):
        sdk.responses.retrieve(structured.id)  # store: false kept nothing
    sdk.responses.delete(plain.id)
    with pytest.raises(openai.NotFoundError):
        sdk.responses.retrieve(plain.id)


def test_another_user_cannot_read_or_continue_a_stored_response(
    providers, funded_user, sdk, live_gateway, django_user_model
):
    from gateway.keys import api_key_create

    providers.on(OPENROUTER_HOST, lambda req, body: json_response(200, openrouter_completion()))
    mine = sdk.responses.create(model="openai/gpt-4o", input="A secret: 42")
    other = django_user_model.objects.create_user("mallory", password="x")
    grant(other, 10)
    _, raw = api_key_create(user=other, name="m")
    theirs = openai.OpenAI(base_url=f"{live_gateway}/v1", api_key=raw, max_retries=0, timeout=20)
    before = balance(other)

    with pytest.raises(openai.NotFoundError):
        theirs.responses.retrieve(mine.id)
    with pytest.raises(openai.NotFoundError):
        theirs.responses.create(model="openai/gpt-4o", input="And?", previous_response_id=mine.id)
    with pytest.raises(openai.NotFoundError):
        theirs.responses.delete(mine.id)
    assert balance(other) == before and len(providers.calls) == 1
    assert sdk.responses.retrieve(mine.id).id == mine.id


def test_responses_stream_assembles_in_the_sdk_helper(providers, funded_user, sdk):
    providers.on(OPENROUTER_HOST, lambda req, body: sse_response(openrouter_stream(cost="0.000042")))
    before = balance(funded_user)["balance"]

    with sdk.responses.stream(model="openai/gpt-4o", input="Say hello") as stream:
        events = list(stream)
        final = stream.get_final_response()

    kinds = [e.type for e in events]
    assert kinds[:2] == ["response.created", "response.in_progress"]
    assert kinds[-1] == "response.completed"
    assert [e.sequence_number for e in events] == list(range(len(events)))
    assert "".join(e.delta for e in events if e.type == "response.output_text.delta") == "Hello world"
    assert final.output_text == "Hello world" and final.usage.output_tokens == 3
    assert final.usage.model_extra["credits"] == 0.042
    assert charged(funded_user, before) == 42_000 == usage_rows()[0].credits
    assert sdk.responses.retrieve(final.id).output_text == "Hello world"


def test_a_streamed_function_call_is_assembled(providers, funded_user, sdk):
    def chunk(delta, finish=None):
        choice = {"index": 0, "delta": delta, "finish_reason": finish}
        return (
            b"data: "
            + json.dumps({"id": "g", "model": "openai/gpt-4o", "choices": [choice]}).encode()
            + b"\n\n"
        )

    call = {
        "index": 0,
        "id": "call_1",
        "type": "function",
        "function": {"name": "get_weather", "arguments": ""},
    }
    usage = {"id": "g", "choices": [], "usage": {"prompt_tokens": 9, "completion_tokens": 5, "cost": 0.00005}}
    payload = b"".join(
        [
            chunk({"role": "assistant", "tool_calls": [call]}),
            chunk({"tool_calls": [{"index": 0, "function": {"arguments": '{"city":'}}]}),
            chunk({"tool_calls": [{"index": 0, "function": {"arguments": '"Oslo"}'}}]}),
            chunk({}, "tool_calls"),
            b"data: " + json.dumps(usage).encode() + b"\n\n",
            b"data: [DONE]\n\n",
        ]
    )
    providers.on(OPENROUTER_HOST, lambda req, body: sse_response(payload))

    with sdk.responses.stream(model="openai/gpt-4o", input="Weather?", tools=[WEATHER]) as stream:
        final = stream.get_final_response()

    (item,) = final.output
    assert item.type == "function_call" and item.arguments == '{"city":"Oslo"}' and item.call_id == "call_1"
