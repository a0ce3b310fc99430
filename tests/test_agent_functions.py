"""The user's functions as tools: schema from signature, hints and docstring; checked and called.

Also the JSON-schema check the loop runs on every call, and docstring reading
in the three styles.  pydantic is the real one (it comes with the ``mcp`` SDK
of the ``agent`` extra).
"""

from __future__ import annotations

import enum
import types
from typing import Annotated, Literal, Optional

import pydantic
import pytest

from ipyg4f.agent import docstrings
from ipyg4f.agent.functions import function_tool, resolve, schema_of
from ipyg4f.agent.schema import check, parse_arguments
from ipyg4f.agent.tool import FUNCTION, ToolError, result_text


class Colour(enum.Enum):
    RED = "red"
    BLUE = "blue"


def scale(values: list[float], factor: float = 2.0, *, unit: Optional[str] = None,
          mode: Literal["fast", "exact"] = "fast", colour: Colour = Colour.RED) -> list[float]:
    """Scale numbers by a factor.

    Longer text that is not the summary.

    Args:
        values: the numbers to scale
        factor (float): how much; may run
            over two lines
        unit: an optional unit
    Returns:
        the scaled numbers
    """
    return [v * factor for v in values]


def test_the_schema_comes_from_the_signature_hints_and_google_docstring():
    tool = function_tool(scale)
    assert tool.name == "scale" and tool.kind == FUNCTION
    assert tool.description == "Scale numbers by a factor."
    p = tool.parameters
    assert p["required"] == ["values"] and p["additionalProperties"] is False
    props = p["properties"]
    assert props["values"] == {"type": "array", "items": {"type": "number"}, "description": "the numbers to scale"}
    assert props["factor"] == {"type": "number", "description": "how much; may run over two lines", "default": 2.0}
    assert props["unit"]["anyOf"] == [{"type": "string"}, {"type": "null"}]
    assert props["mode"] == {"enum": ["fast", "exact"], "default": "fast"}
    assert props["colour"] == {"enum": ["red", "blue"], "default": "red"}
    assert "Returns" not in str(props)
    assert tool.spec()["function"]["name"] == "scale"


def test_calling_converts_enums_and_passes_keywords():
    seen = {}

    def paint(colour: Colour, /, times: int = 1) -> str:
        seen.update(colour=colour, times=times)
        return "painted"

    tool = function_tool(paint)
    assert tool.call({"colour": "blue", "times": 3.0}) == "painted"
    assert seen == {"colour": Colour.BLUE, "times": 3} and type(seen["times"]) is int


@pytest.mark.parametrize("doc", [
    "Find rows.\n\nParameters\n----------\nquery : str\n    what to look for,\n    in SQL\nlimit : int\n    most rows\n",
    "Find rows.\n\n:param query: what to look for,\n    in SQL\n:param int limit: most rows\n:returns: rows\n",
    "Find rows.\n\nArgs:\n    query (str): what to look for,\n        in SQL\n    limit: most rows\n",
])
def test_parameter_descriptions_in_numpy_rest_and_google_style(doc):
    assert docstrings.parameters(doc) == {"query": "what to look for, in SQL", "limit": "most rows"}
    assert docstrings.summary(doc) == "Find rows."


def test_a_function_without_docstring_or_hints_still_becomes_a_tool():
    def anything(a, b=None, *args, **kwargs):
        return a

    tool = function_tool(anything)
    assert tool.description.startswith("Calls anything(")
    assert tool.parameters["properties"] == {"a": {}, "b": {"default": None}}
    assert tool.parameters["required"] == ["a"]


class Query(pydantic.BaseModel):
    table: str
    limit: int = 10


class Where(pydantic.BaseModel):
    column: str
    query: Query


def test_a_pydantic_parameter_gives_its_schema_and_is_called_with_a_validated_instance():
    got = []

    def run(where: Where, dry: bool = False) -> str:
        """Run a query."""
        got.append(where)
        return "ok"

    tool = function_tool(run)
    schema = tool.parameters
    assert schema["properties"]["where"]["properties"]["query"] == {"$ref": "#/$defs/Query"}
    assert "Query" in schema["$defs"]
    args = {"where": {"column": "x", "query": {"table": "t"}}}
    assert check(schema, args) is None
    assert tool.call(args) == "ok"
    assert isinstance(got[0], Where) and got[0].query.limit == 10
    # the $ref is followed: a wrong nested type is caught before the call
    assert check(schema, {"where": {"column": "x", "query": {"table": 3}}}) == \
        "where.query.table: expected string, not a number"
    with pytest.raises(ToolError, match="where.query.limit"):
        tool.call({"where": {"column": "x", "query": {"table": "t", "limit": "many"}}})


def test_annotated_text_describes_a_parameter_and_dicts_and_tuples_have_schemas():
    def f(a: Annotated[int, "how many"], b: dict[str, int], c: tuple[int, ...], d: int | None = None):
        """F."""

    props = function_tool(f).parameters["properties"]
    assert props["a"] == {"type": "integer", "description": "how many"}
    assert props["b"] == {"type": "object", "additionalProperties": {"type": "integer"}}
    assert props["c"] == {"type": "array", "items": {"type": "integer"}}
    assert props["d"]["anyOf"] == [{"type": "integer"}, {"type": "null"}]
    assert schema_of(bool) == {"type": "boolean"}


@pytest.mark.parametrize("arguments, problem", [
    ({}, "arguments: missing required 'values'"),
    ({"values": [1], "speed": 2}, "arguments: unexpected 'speed'"),
    ({"values": "1,2"}, "values: expected array, not a string"),
    ({"values": [1, "x"]}, "values[1]: expected number, not a string"),
    ({"values": [1], "factor": True}, "factor: expected number, not a boolean"),
    ({"values": [1], "mode": "slow"}, 'mode: "slow" is not one of "fast", "exact"'),
    ({"values": [1], "unit": 5}, "unit: expected string or null, not a number"),
])
def test_arguments_that_do_not_fit_get_one_short_line(arguments, problem):
    found = check(function_tool(scale).parameters, arguments)
    assert found is not None and found.startswith(problem), found


def test_arguments_that_fit_pass_and_integers_written_as_floats_are_integers():
    assert check(function_tool(scale).parameters, {"values": [1, 2.5], "unit": None, "mode": "exact"}) is None
    assert check({"type": "integer"}, 3.0) is None
    assert check({"type": "integer"}, 3.5) == "arguments: expected integer, not a number"


@pytest.mark.parametrize("text, message", [
    ("{'a': 1}", "not valid JSON"),
    ('{"a": ', "not valid JSON"),
    ("[1, 2]", "must be a JSON object, not an array"),
])
def test_arguments_that_are_not_a_json_object(text, message):
    with pytest.raises(ValueError, match=message):
        parse_arguments(text)
    assert parse_arguments("") == {} and parse_arguments('{"a": 1}') == {"a": 1}


def test_dotted_names_resolve_in_the_namespace_and_name_a_valid_tool():
    db = types.SimpleNamespace(query=lambda sql: f"rows for {sql}", size=3)
    ns = {"db": db, "add": lambda a, b: a + b}
    func = resolve("db.query", ns)
    tool = function_tool(func, "db.query")
    assert tool.name == "db_query" and tool.shown == "db.query"
    assert tool.call({"sql": "x"}) == "rows for x"
    for name, message in [("nope", "'nope' is not defined"), ("db.size", "is a int, not a function"),
                          ("db.missing", "'missing' not found"), ("db._secret", "private"),
                          ("db.query()", "not a name")]:
        with pytest.raises(ToolError, match=message):
            resolve(name, ns)


def test_results_are_text_or_a_typed_description():
    assert result_text("plain") == "plain"
    assert result_text(None) == "done (returned None)"
    assert result_text([1, 2]) == "list of 2 items:\n  1\n  2"
