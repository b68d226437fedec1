"""Malformed paths, keys and query parameters never make a route answer 500 or a stack trace:
random ones (hypothesis) against a real worker, each answered 2xx/3xx, or 400/404/503 with a
JSON error under /tables/."""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

pytestmark = pytest.mark.integration

TABLES = ["agg.telemetry.buffering", "agg.orders.summary", "nope", "agg.", ""]
SEGMENTS = st.one_of(
    st.sampled_from(TABLES),
    st.text(max_size=40),
    st.sampled_from(["..", ".", "%", "%zz", "%00", "|", "a|b|c", "%7C%7C", "\u00e9\u4e2d", " "]),
)
ODD_VALUES = ["0", "-1", "1e9", "10001", "nan", "events", "events ", "%"]
QUERIES = st.lists(
    st.tuples(
        st.sampled_from(["limit", "sort", "key", "", "limit[]", "x"]),
        st.one_of(st.text(max_size=12), st.sampled_from(ODD_VALUES)),
    ),
    max_size=3,
)


def get(url: str) -> tuple[int, bytes, str]:
    request = urllib.request.Request(url, headers={"Accept": "*/*"})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read(), response.headers.get("Content-Type", "")
    except urllib.error.HTTPError as error:
        return error.code, error.read(), error.headers.get("Content-Type", "")


def test_random_routes_never_answer_500(start_worker_process) -> None:
    url = start_worker_process("sp-web-fuzz").url

    @settings(max_examples=250, deadline=None, suppress_health_check=list(HealthCheck))
    @given(segments=st.lists(SEGMENTS, min_size=1, max_size=4), query=QUERIES,
           raw=st.booleans())  # fmt: skip
    def check(segments: list[str], query: list[tuple[str, str]], raw: bool) -> None:
        quote = (lambda s: s) if raw else (lambda s: urllib.parse.quote(s, safe=""))
        path = "/tables/" + "/".join(quote(s) for s in segments) + "/"
        qs = urllib.parse.urlencode(query)
        target = f"{url}{urllib.parse.quote(path, safe='/%') if raw else path}"
        status, body, content_type = get(f"{target}?{qs}" if qs else target)
        assert status < 500 or status == 503, (path, qs, status, body[:300])
        assert b"Traceback" not in body, (path, qs)
        if status >= 400:
            assert "json" in content_type, (path, qs, status, content_type)
            assert json.loads(body)["error"], (path, qs)

    check()
