"""The notebook agent's core: tools the model may call, and the loop that calls them.

Nothing here is wired into ``%%chat`` yet (see ``docs/agent.md``); every module is
usable and tested on its own.

``tool``       :class:`Tool` (name, description, JSON schema, call), :class:`ToolError`, result text
``schema``     JSON arguments checked against a tool's JSON schema (the subset tools use)
``docstrings`` a docstring's summary and parameter descriptions (Google, NumPy, reST)
``functions``  a Python callable -> a :class:`Tool` (signature, type hints, docstring, pydantic)
``notebook``   the read-only ``notebook`` toolset: list_variables, describe, read_cells, last_error
``python``     ``run_python``: code run in the user's namespace, its output returned
``approval``   ask / auto / never, and the policy that decides which call asks
``calls``      :class:`ToolCallPart`, the stream event carrying a call's id, name and arguments
``loop``       the tool loop: request, stream, run the calls, send the results back, repeat
``mcp``        the tools of MCP servers (the ``mcp`` SDK, imported only when used)
``toolsets``   ``--tools`` names -> the tools of a cell (builtin sets, functions, ``mcp:NAME``)
``bridge``     :class:`CellThread`: the loop's sync work on the cell's thread, Ctrl-C included
"""
