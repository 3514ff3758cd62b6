"""Room for the web page on the admin listener (server-rendered HTML).

Views go in ``views.py``, Jinja2 templates in ``templates/``, assets in ``static/`` (package
data). They read through the same services as ``proxy.admin.api`` (built once by
``proxy.runtime.services``), parse filters with ``proxy.admin.params``, and answer errors
through ``proxy.admin.responses``. Nothing here yet.
"""
