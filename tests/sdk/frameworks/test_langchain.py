"""LangChain's OpenAI integration (`langchain-openai`) through flexgate: invoke, stream
with usage, structured output, forced tool calls and embeddings with `dimensions`."""

from __future__ import annotations

from conftest import API_KEY, Person
from langchain_core.tools import tool
from langchain_openai import ChatOpenAI, OpenAIEmbeddings


def chat(base_url: str, **kwargs) -> ChatOpenAI:
    return ChatOpenAI(model="gpt-4o-mini", base_url=base_url, api_key=API_KEY, max_retries=0, **kwargs)


@tool
def get_weather(city: str, days: int) -> str:
    """The weather forecast for a city over some days."""
    return f"sunny in {city} for {days} days"


def test_invoke(base_url):
    message = chat(base_url).invoke("Say hello.")
    assert isinstance(message.content, str) and message.content
    assert message.usage_metadata["total_tokens"] > 0


def test_stream_with_usage(base_url):
    chunks = list(chat(base_url, stream_usage=True).stream("Say hello."))
    text = "".join(c.content for c in chunks if isinstance(c.content, str))
    assert text
    usage = [c.usage_metadata for c in chunks if c.usage_metadata]
    assert usage, "stream_usage=True must deliver usage"
    assert usage[-1]["output_tokens"] > 0 and usage[-1]["input_tokens"] > 0


def test_with_structured_output(base_url):
    person = chat(base_url).with_structured_output(Person).invoke("Describe a person.")
    assert isinstance(person, Person)


def test_bind_tools_required(base_url):
    message = chat(base_url).bind_tools([get_weather], tool_choice="required").invoke("Weather in Paris?")
    assert message.tool_calls, "tool_choice='required' must return tool calls"
    call = message.tool_calls[0]
    assert call["name"] == "get_weather"
    assert isinstance(call["args"]["city"], str) and isinstance(call["args"]["days"], int)
    assert get_weather.invoke(call["args"])


def test_embeddings_with_dimensions(base_url):
    # `check_embedding_ctx_length=False` sends the text as it is; otherwise LangChain
    # would fetch a tokenizer file from the internet first.
    embeddings = OpenAIEmbeddings(
        model="text-embedding-3-small",
        dimensions=256,
        base_url=base_url,
        api_key=API_KEY,
        check_embedding_ctx_length=False,
    )
    assert len(embeddings.embed_query("flexgate")) == 256
    vectors = embeddings.embed_documents(["one", "two", "three"])
    assert [len(v) for v in vectors] == [256, 256, 256]
    assert vectors[0] != vectors[1]
