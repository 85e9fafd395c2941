"""Which providers are enabled, the vendor -> direct provider map, and the offline demo provider."""

import pytest

from gateway.providers import ADAPTERS, direct_provider_for, provider_call, provider_configs, provider_stream
from gateway.providers.base import WIRE_ANTHROPIC, WIRE_DEMO, WIRE_GEMINI, WIRE_OPENAI_COMPAT, ChatRequest
from tests.gateway.providers.helpers import collect

KEYS = (
    "OPENROUTER_API_KEY",
    "OPENAI_API_KEY",
    "ANTHROPIC_API_KEY",
    "GOOGLE_API_KEY",
    "GROQ_API_KEY",
    "ZAI_API_KEY",
    "OLLAMA_BASE_URL",
)


@pytest.fixture
def no_providers(settings):
    for name in KEYS:
        setattr(settings, name, "")
    settings.DEBUG = False
    return settings


def test_no_provider_configured_enables_only_demo(no_providers):
    configs = provider_configs()
    assert list(configs) == ["demo"]
    assert configs["demo"].wire == WIRE_DEMO


def test_keys_enable_their_providers_and_demo_goes_away(no_providers):
    settings = no_providers
    settings.OPENROUTER_API_KEY = "sk-or-test"
    settings.OPENROUTER_SITE_URL = "https://smartspec.example"
    settings.OPENROUTER_SITE_NAME = "SmartSpec Pro"
    settings.OPENROUTER_BASE_URL = "http://127.0.0.1:9999/api/v1"
    settings.ANTHROPIC_API_KEY = "sk-ant-test"
    settings.GOOGLE_API_KEY = "g-test"
    settings.OLLAMA_BASE_URL = "http://localhost:11434/"
    settings.UPSTREAM_READ_TIMEOUT = 33.0

    configs = provider_configs()
    assert set(configs) == {"openrouter", "anthropic", "google", "ollama"}
    openrouter = configs["openrouter"]
    assert openrouter.wire == WIRE_OPENAI_COMPAT
    assert openrouter.base_url == "http://127.0.0.1:9999/api/v1"
    assert openrouter.api_key == "sk-or-test"
    assert openrouter.headers == {"HTTP-Referer": "https://smartspec.example", "X-Title": "SmartSpec Pro"}
    assert openrouter.read_timeout == 33.0
    assert configs["anthropic"].wire == WIRE_ANTHROPIC
    assert configs["google"].wire == WIRE_GEMINI
    assert configs["ollama"].base_url == "http://localhost:11434/v1"
    assert configs["ollama"].api_key == ""
    assert configs["ollama"].supports_zdr
    assert not configs["anthropic"].supports_zdr
    assert "sk-or-test" not in repr(openrouter)  # keys stay out of reprs and logs


def test_debug_does_not_bring_the_demo_beside_real_providers(no_providers):
    no_providers.GROQ_API_KEY = "gsk-test"
    no_providers.DEBUG = True
    assert set(provider_configs()) == {"groq"}
    no_providers.GROQ_API_KEY = ""
    assert set(provider_configs()) == {"demo"}


def test_configs_are_cached_until_cleared(no_providers):
    first = provider_configs()
    assert provider_configs() is first
    provider_configs.cache_clear()
    assert provider_configs() is not first


@pytest.mark.parametrize(
    ("model_id", "provider"),
    [
        ("openai/gpt-4o", "openai"),
        ("anthropic/claude-3.5-sonnet", "anthropic"),
        ("google/gemini-flash-1.5", "google"),
        ("z-ai/glm-4.7", "zai"),
        ("meta-llama/llama-3.1-70b-instruct", "groq"),
        ("ollama/llama3.2", "ollama"),
        ("mistralai/mistral-large", None),
        ("gpt-4o", None),
        ("openai/", None),
    ],
)
def test_direct_provider_for(model_id, provider):
    assert direct_provider_for(model_id) == provider


def test_every_wire_format_has_an_adapter():
    assert set(ADAPTERS) == {WIRE_OPENAI_COMPAT, WIRE_ANTHROPIC, WIRE_GEMINI, WIRE_DEMO}


# --- demo -----------------------------------------------------------------------

DEMO_REQUEST = ChatRequest(
    model="demo/echo",
    messages=[
        {"role": "system", "content": "Be helpful."},
        {"role": "user", "content": "First question"},
        {"role": "assistant", "content": "First answer"},
        {"role": "user", "content": "How do   credits work?"},
    ],
)


async def test_demo_answers_offline_deterministically_and_reports_no_cost_of_its_own(no_providers, upstream):
    config = provider_configs()["demo"]
    first = await provider_call(config, DEMO_REQUEST)
    second = await provider_call(config, DEMO_REQUEST)
    assert upstream.requests == []  # no network at all
    assert first.content == second.content
    assert first.content.startswith("Demo answer: How do credits work?")
    assert first.provider == "demo"
    assert first.model == "demo/echo"
    assert first.finish_reason == "stop"
    assert first.usage.cost_usd is None  # the gateway prices it from the catalog
    prompt_chars = len("Be helpful.First questionFirst answerHow do   credits work?")
    assert first.usage.prompt_tokens == (prompt_chars + 3) // 4
    assert first.usage.completion_tokens == (len(first.content) + 3) // 4


async def test_demo_stream_comes_in_pieces_that_join_to_the_answer(no_providers, upstream):
    config = provider_configs()["demo"]
    whole = await provider_call(config, DEMO_REQUEST)
    deltas = await collect(provider_stream(config, DEMO_REQUEST))
    pieces = [d.content for d in deltas if d.content]
    assert len(pieces) > 3
    assert "".join(pieces) == whole.content
    assert deltas[-1].finish_reason == "stop"
    assert deltas[-1].usage == whole.usage
    assert upstream.requests == []


async def test_demo_respects_max_tokens(no_providers):
    config = provider_configs()["demo"]
    result = await provider_call(
        config, ChatRequest(model="demo", messages=DEMO_REQUEST.messages, max_tokens=5)
    )
    assert len(result.content) == 20
    assert result.finish_reason == "length"
    assert result.usage.completion_tokens == 5
