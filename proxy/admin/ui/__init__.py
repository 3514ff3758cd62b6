"""The Monitor: the web page on the admin listener (server-rendered HTML under ``/ui/``).

``routes`` mounts it on the admin app; one module per view (``traces_view``, ``trace_view``,
``datasets_view``, ``trends_view``, ``login_view``); ``guard`` (with the pure ``signing``)
decides who may read and which writes are accepted; ``present``, ``charts`` and ``forms`` are
pure helpers for what the templates show and what the forms send. Jinja2 templates are in
``templates/``, the stylesheet and icon in ``static/`` (package data; no script at all). Views
read and write through the admin API's own services and checks (``proxy.admin.params``,
``proxy.admin.api``), so the page accepts exactly what the API accepts.
"""
