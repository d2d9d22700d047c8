"""The OpenAI Agents SDK (`openai-agents`) through flexgate: an agent with a function
tool runs to completion, on the Responses API (its default) and on Chat Completions;
the tool is really called, and the run ends with a text answer."""

from __future__ import annotations

import pytest
from agents import (
    Agent,
    OpenAIChatCompletionsModel,
    OpenAIResponsesModel,
    Runner,
    function_tool,
    set_tracing_disabled,
)
from conftest import API_KEY
from openai import AsyncOpenAI

# Traces would otherwise be exported to the real platform.
set_tracing_disabled(True)


@pytest.mark.parametrize("api", ["responses", "chat_completions"])
def test_agent_calls_its_tool_and_finishes(base_url, api):
    calls: list[tuple[str, int]] = []

    @function_tool
    def get_weather(city: str, days: int) -> str:
        """The weather forecast for a city over some days."""
        calls.append((city, days))
        return f"sunny in {city} for {days} days"

    client = AsyncOpenAI(base_url=base_url, api_key=API_KEY, max_retries=0)
    model_class = OpenAIResponsesModel if api == "responses" else OpenAIChatCompletionsModel
    agent = Agent(
        name="forecaster",
        instructions="Answer with the forecast.",
        tools=[get_weather],
        model=model_class(model="gpt-4o-mini", openai_client=client),
    )
    result = Runner.run_sync(agent, "What is the weather in Paris this week?", max_turns=4)
    assert len(calls) == 1, "the agent called its tool once"
    assert isinstance(calls[0][0], str) and isinstance(calls[0][1], int)
    assert isinstance(result.final_output, str) and result.final_output
