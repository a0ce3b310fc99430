"""The loop with real third-party software: the bundled Qwen2.5-Coder-0.5B-Instruct through the
``Local`` provider (llama.cpp in process, xllamacpp) calls the notebook's ``describe`` on a DataFrame
question; the loop runs the real tool on the real frame and sends its description back."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from ipyg4f.agent.loop import DONE, ToolLoop
from ipyg4f.agent.notebook import notebook_tools
from ipyg4f.providers.local import Local

pytestmark = pytest.mark.local_model


class Shell:
    user_ns = {"df": pd.DataFrame({"price": [1.0, 2.0, None, 7.0], "item": ["a", "b", "c", "d"]})}
    user_ns_hidden: dict = {}
    execution_count = 1


async def test_the_default_model_asks_to_describe_the_frame_and_gets_its_description():
    if not Local.is_available():
        pytest.fail("ipyg4f[local] is a pinned test dependency: pip install -e '.[local,test]'")
    tools = [t for t in notebook_tools(Shell(), 2000) if t.name in ("describe", "list_variables")]
    sent = []

    async def request(messages, specs):
        sent.append(json.loads(json.dumps(messages)))
        if len(sent) == 1:  # the real model decides what to call
            async for item in Local.create_async_generator("", messages, tools=specs, max_tokens=96):
                yield item
        else:  # the answer after the tool result is scripted: this test is about the call
            yield "One null."

    loop = ToolLoop(tools, max_steps=3)
    question = "How many null values does the price column of the DataFrame df have?"
    assert await loop.run(request, [{"role": "user", "content": question}]) == "One null."
    assert loop.outcome == DONE
    [step] = loop.steps
    assert step.tool == "describe" and json.loads(step.arguments) == {"name": "df"} and not step.error
    assistant, tool = sent[1][1], sent[1][2]
    assert assistant["tool_calls"][0]["function"]["name"] == "describe"
    assert tool["role"] == "tool" and tool["tool_call_id"] == assistant["tool_calls"][0]["id"]
    assert "'price': float64, 1 null" in tool["content"]
