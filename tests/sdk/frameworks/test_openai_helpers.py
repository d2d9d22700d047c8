"""The official Python SDK's structured-output helpers: `chat.completions.parse` and
`responses.parse` with a Pydantic model, and a strict function tool parsed back."""

from __future__ import annotations

import openai
from conftest import API_KEY, Person


def client(base_url: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=base_url, api_key=API_KEY, max_retries=0)


def test_chat_completions_parse(base_url):
    completion = client(base_url).chat.completions.parse(
        model="gpt-4o-mini",
        messages=[{"role": "user", "content": "Describe a person."}],
        response_format=Person,
    )
    message = completion.choices[0].message
    assert completion.choices[0].finish_reason == "stop"
    assert isinstance(message.parsed, Person)
    assert message.parsed == Person.model_validate_json(message.content)


def test_chat_completions_parse_with_tool(base_url):
    tool = openai.pydantic_function_tool(Person, name="save_person")
    completion = client(base_url).chat.completions.parse(
        model="gpt-5-mini",
        messages=[{"role": "user", "content": "Save a person."}],
        tools=[tool],
        tool_choice="required",
    )
    choice = completion.choices[0]
    assert choice.finish_reason == "tool_calls"
    call = choice.message.tool_calls[0]
    assert call.function.name == "save_person"
    assert isinstance(call.function.parsed_arguments, Person)


def test_responses_parse(base_url):
    response = client(base_url).responses.parse(
        model="gpt-5-mini",
        input="Describe a person.",
        text_format=Person,
    )
    assert response.status == "completed"
    assert isinstance(response.output_parsed, Person)


def test_n_choices_and_length(base_url):
    c = client(base_url)
    many = c.chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "Hi"}], n=3
    )
    assert [choice.index for choice in many.choices] == [0, 1, 2]
    short = c.chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "Hi"}], max_completion_tokens=5
    )
    assert short.choices[0].finish_reason == "length"
    assert short.usage.completion_tokens == 5


def test_embeddings_dimensions_base64(base_url):
    # The SDK asks for base64 by default and decodes it.
    r = client(base_url).embeddings.create(model="text-embedding-3-large", input="flexgate")
    assert len(r.data[0].embedding) == 3072
    r = client(base_url).embeddings.create(model="text-embedding-3-small", input="flexgate", dimensions=256)
    assert len(r.data[0].embedding) == 256
    assert abs(sum(x * x for x in r.data[0].embedding) - 1.0) < 1e-3
