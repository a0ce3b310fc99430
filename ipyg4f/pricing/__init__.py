"""What answers cost and how much of the model's window they fill (issue 22).

``rates`` (a model's price: ``ChatConfig.prices``, else the ``genai-prices`` snapshot for paid APIs),
``window`` (a model's context window: Local's, a llama.cpp/vLLM server's, the user's or the
database's), ``meter`` (one answer's tokens, cost and context, for footers and history), ``fit`` (a
request cut to the window and kept within ``ChatConfig.budget``), ``budget`` (a ``--map`` batch's
estimate and running cost), ``report`` (``%chat cost``).  Nothing here touches the network but a
nearby llama.cpp/vLLM server's ``/props``, asked off the answer's path.
"""
