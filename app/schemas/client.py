"""A minimal blocking Schema Registry REST client (urllib) for the governance commands."""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

__all__ = ["RegistryHTTPError", "RegistryUnreachable", "SchemaRegistryHTTP"]

_MEDIA_TYPE = "application/vnd.schemaregistry.v1+json"


class RegistryUnreachable(ConnectionError):
    """No HTTP answer from the registry (refused, timed out, bad URL)."""


class RegistryHTTPError(Exception):
    """An error response: HTTP status plus Confluent's ``error_code`` and ``message``."""

    def __init__(self, status: int, error_code: int, message: str) -> None:
        super().__init__(f"HTTP {status}, error_code {error_code}: {message}")
        self.status = status
        self.error_code = error_code
        self.message = message


class SchemaRegistryHTTP:
    """The few registry calls governance needs; subjects are URL-encoded, bodies are JSON."""

    def __init__(self, url: str, timeout: float = 10.0) -> None:
        self.url = url.rstrip("/")
        self.timeout = timeout

    def request(self, method: str, path: str, body: Any = None, **query: Any) -> Any:
        target = self.url + path
        if query:
            target += "?" + urllib.parse.urlencode(
                {k: str(v).lower() if isinstance(v, bool) else v for k, v in query.items()}
            )
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(target, data=data, method=method)
        request.add_header("Accept", _MEDIA_TYPE)
        if data is not None:
            request.add_header("Content-Type", _MEDIA_TYPE)
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                raw = response.read()
        except urllib.error.HTTPError as exc:
            raw = exc.read()
            try:
                payload = json.loads(raw)
                code, message = int(payload["error_code"]), str(payload["message"])
            except (ValueError, KeyError, TypeError):
                code, message = exc.code, raw.decode(errors="replace") or str(exc.reason)
            raise RegistryHTTPError(exc.code, code, message) from None
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise RegistryUnreachable(
                f"cannot reach the schema registry at {self.url}: {reason}"
            ) from exc
        return json.loads(raw) if raw else None

    @staticmethod
    def _subject(subject: str) -> str:
        return urllib.parse.quote(subject, safe="")

    def register(self, subject: str, schema: str) -> int:
        path = f"/subjects/{self._subject(subject)}/versions"
        return int(self.request("POST", path, {"schema": schema})["id"])

    def lookup(self, subject: str, schema: str) -> dict[str, Any]:
        return self.request("POST", f"/subjects/{self._subject(subject)}", {"schema": schema})

    def subjects(self) -> list[str]:
        return list(self.request("GET", "/subjects"))

    def versions(self, subject: str) -> list[int]:
        return list(self.request("GET", f"/subjects/{self._subject(subject)}/versions"))

    def version(self, subject: str, version: int | str) -> dict[str, Any]:
        return self.request("GET", f"/subjects/{self._subject(subject)}/versions/{version}")

    def compatibility_level(self, subject: str) -> str:
        path = f"/config/{self._subject(subject)}"
        return str(self.request("GET", path, defaultToGlobal=True)["compatibilityLevel"])

    def test_compatibility(self, subject: str, schema: str) -> dict[str, Any]:
        """Against every version a registration would be checked against (per the level)."""
        path = f"/compatibility/subjects/{self._subject(subject)}/versions"
        return self.request("POST", path, {"schema": schema}, verbose=True)
