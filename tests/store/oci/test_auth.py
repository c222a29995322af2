"""Registry credentials and challenges, against an in-memory transport."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import httpx
import pytest

from mlxctl.errors import Unavailable
from mlxctl.store.oci.auth import (
    Challenge,
    Credentials,
    CredentialStore,
    RegistryAuth,
    docker_credentials,
    normalize_host,
    parse_challenges,
)
from mlxctl.store.oci.client import parse_reference

BASIC = Credentials("ann", "pa:ss")


def test_challenges_are_parsed_like_container_tools_do() -> None:
    header = (
        'Bearer realm="https://auth.example/token",service="registry.example",'
        'scope="repository:team/model:pull,push repository:team/base:pull"'
    )
    assert parse_challenges(header) == [
        Challenge(
            "bearer",
            {
                "realm": "https://auth.example/token",
                "service": "registry.example",
                "scope": "repository:team/model:pull,push repository:team/base:pull",
            },
        )
    ]
    assert parse_challenges('Basic realm="x", Bearer realm="y\\"z",service=s') == [
        Challenge("basic", {"realm": "x"}),
        Challenge("bearer", {"realm": 'y"z', "service": "s"}),
    ]
    assert parse_challenges("") == []


def test_references_and_hosts() -> None:
    ref = parse_reference("oci://localhost:5000/team/tiny:v1")
    assert (ref.host, ref.repository, ref.tag, ref.reference) == (
        "localhost:5000",
        "team/tiny",
        "v1",
        "v1",
    )
    pinned = parse_reference("ghcr.io/a/b@sha256:" + "a" * 64)
    assert pinned.reference == "sha256:" + "a" * 64 and str(pinned).startswith("ghcr.io/a/b@")
    assert parse_reference("docker.io/ubuntu").repository == "library/ubuntu"
    assert normalize_host("https://index.docker.io/v1/") == "docker.io"


def test_saved_credentials_are_private_and_docker_config_is_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = CredentialStore(tmp_path / "home" / "auth.json")
    store.save("Registry.Example:5000", BASIC)
    assert (tmp_path / "home" / "auth.json").stat().st_mode & 0o777 == 0o600
    assert store.get("http://registry.example:5000/v2/") == BASIC
    assert store.remove("registry.example:5000") and store.get("registry.example:5000") is None

    docker = tmp_path / "docker"
    docker.mkdir()
    auths = {
        "https://index.docker.io/v1/": {"auth": base64.b64encode(b"hub:token").decode()},
        "ghcr.io": {"username": "gh", "password": "pat"},
    }
    (docker / "config.json").write_text(json.dumps({"auths": auths}))
    monkeypatch.setenv("DOCKER_CONFIG", str(docker))
    assert docker_credentials("docker.io") == Credentials("hub", "token")
    assert docker_credentials("ghcr.io") == Credentials("gh", "pat")
    assert docker_credentials("quay.io") is None


def test_basic_challenge_then_no_credentials_to_a_redirect_host() -> None:
    seen: list[tuple[str, str | None]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append((request.url.host, request.headers.get("Authorization")))
        if request.url.host == "cdn.example":
            return httpx.Response(200, content=b"blob")
        if request.headers.get("Authorization") != BASIC.basic():
            return httpx.Response(401, headers={"WWW-Authenticate": 'Basic realm="r"'})
        return httpx.Response(307, headers={"Location": "https://cdn.example/signed?sig=1"})

    auth = RegistryAuth("reg.example", BASIC)
    with httpx.Client(
        transport=httpx.MockTransport(handler), auth=auth, follow_redirects=True
    ) as c:
        assert c.get("https://reg.example/v2/team/m/blobs/sha256:00").content == b"blob"
        c.get("https://reg.example/v2/team/m/blobs/sha256:01")
    assert seen[:3] == [
        ("reg.example", None),
        ("reg.example", BASIC.basic()),
        ("cdn.example", None),  # signed storage URLs never see the password
    ]
    assert seen[3] == ("reg.example", BASIC.basic())  # then sent up front


def test_bearer_tokens_are_fetched_once_per_repository_and_access() -> None:
    token_requests: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.host == "auth.example":
            token_requests.append(request)
            if request.headers.get("Authorization") != BASIC.basic():
                return httpx.Response(401)
            return httpx.Response(200, json={"token": "T1"})
        if request.headers.get("Authorization") == "Bearer T1":
            return httpx.Response(200)
        challenge = (
            'Bearer realm="https://auth.example/token",service="reg",scope="repository:team/m:pull"'
        )
        return httpx.Response(401, headers={"WWW-Authenticate": challenge})

    with httpx.Client(
        transport=httpx.MockTransport(handler), auth=RegistryAuth("reg.example", BASIC)
    ) as c:
        for blob in ("00", "01", "02"):
            assert c.head(f"https://reg.example/v2/team/m/blobs/sha256:{blob}").status_code == 200
    assert len(token_requests) == 1
    params = token_requests[0].url.params
    assert (params["service"], params["scope"], params["account"]) == (
        "reg",
        "repository:team/m:pull",
        "ann",
    )

    wrong = RegistryAuth("reg.example", Credentials("ann", "nope"))
    with (
        httpx.Client(transport=httpx.MockTransport(handler), auth=wrong) as c,
        pytest.raises(Unavailable, match="rejected the credentials of 'ann'"),
    ):
        c.head("https://reg.example/v2/team/m/blobs/sha256:00")
