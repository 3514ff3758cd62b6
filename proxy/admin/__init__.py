"""The admin listener (default 127.0.0.1:8081): health, the JSON API under ``/api``
(``api/``), ``/metrics``, ``/openapi.json``, and the room for the web page (``ui/``).

``app`` mounts the routes, ``responses`` holds the one JSON answer shape and the error
middleware, ``params`` the strict query-parameter parsers every front end shares.
"""
