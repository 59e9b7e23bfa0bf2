"""``segedge serve``: the proven model behind HTTP, a browser page and Prometheus metrics.

The serve stage sits beside bench on the device side: it imports ``segedge.edge`` (the same
``Segmenter`` and camera ``Pipeline`` that ``segedge predict`` runs, so what is served is what the
bundle's proof covered) and ``segedge.data`` (the one image reader), never TensorFlow. Starlette,
uvicorn, prometheus-client and python-multipart come from the ``serve`` extra and are imported only
by the modules that need them, so ``segedge --help`` works without the extra.
"""
