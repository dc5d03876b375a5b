"""Schemathesis hooks for `cargo xtask contract`: every request carries a valid bearer
token, so the authenticated routes are exercised past their `401`.

The token belongs to a user this hook registers on the fresh server under test
(CONTRACT_BASE_URL, set by xtask) and logs in once; schemathesis refreshes it every
few minutes, well within the server's default token lifetime.
"""

import os
import uuid

import requests
import schemathesis

BASE_URL = os.environ["CONTRACT_BASE_URL"]


@schemathesis.auth(refresh_interval=240)
class BearerToken:
    """A freshly registered user's access token."""

    def get(self, case, context):
        credentials = {
            "username": f"contract-{uuid.uuid4().hex[:12]}",
            "password": "contract-testing-password",
        }
        registered = requests.post(f"{BASE_URL}/auth/register", json=credentials, timeout=30)
        registered.raise_for_status()
        login = requests.post(f"{BASE_URL}/auth/login", json=credentials, timeout=30)
        login.raise_for_status()
        return login.json()["access_token"]

    def set(self, case, data, context):
        case.headers = case.headers or {}
        case.headers["Authorization"] = f"Bearer {data}"
