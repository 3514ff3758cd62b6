"""One JSON POST over the standard library (``urllib``), its failures turned into ours.

Feedback is one small request per user action, so a pooled HTTP client buys nothing here, and
the standard library keeps this package free of dependencies (the SDKs bring different HTTP
packages in different versions). The async client runs this in a thread.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from feedback_proxy.errors import ProxyUnreachable, refused


def post_json(url: str, body: Mapping[str, Any], headers: Mapping[str, str], timeout: float) -> Any:
    """The parsed JSON answer of a 2xx; raises ProxyRefused or ProxyUnreachable."""
    import urllib.error  # here, not at the top: urllib.request pulls in http.client and ssl
    import urllib.request  # (~60 ms), which an app importing this package may never need

    request = urllib.request.Request(
        url,
        data=json.dumps(body).encode("utf-8"),
        headers={"Content-Type": "application/json", "Accept": "application/json", **headers},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return _json(response.read())
    except urllib.error.HTTPError as error:
        with error:
            raise refused(error.code, _json(error.read())) from None
    except (urllib.error.URLError, OSError) as error:
        raise ProxyUnreachable(f"{url}: {getattr(error, 'reason', error)}") from None


def _json(raw: bytes) -> Any:
    try:
        return json.loads(raw) if raw else None
    except ValueError:
        return None
