"""POST /api/uploads and GET /api/uploads/<key> against moto in server mode on 127.0.0.1.

moto accepts a presigned POST without checking its policy conditions (NOTES.md), so besides the real upload
every test that matters for enforcement decodes the policy the endpoint signed and asserts the conditions S3
itself would check: size range, exact Content-Type, exact key, bucket and a near expiry.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import time
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import parse_qs, urlsplit

import boto3
import jwt
import pytest
import requests
from flask import Flask
from flask.testing import FlaskClient

from app.config import Settings
from app.uploads import GET_TTL, POST_TTL, owns_key, s3_endpoint, sanitise
from app.web import create_app

from .app_support import RunningApi, base_env

JWT_SECRET = "j" * 40
BUCKET = "shipyard-test-uploads"
MAX_BYTES = 1000
PNG = b"\x89PNG\r\n\x1a\n" + b"\0" * 200


def token(sub: Any = "user-1", *, secret: str = JWT_SECRET, expires_in: int = 300, **claims: Any) -> str:
    payload = {"sub": sub, "exp": int(time.time()) + expires_in, **claims}
    return jwt.encode(payload, secret, algorithm="HS256")


def bearer(value: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {value}"}


def env_for(moto_endpoint: str, **overrides: str) -> dict[str, str]:
    return {
        "DATABASE_URL": "postgresql://app:pw@127.0.0.1:1/shop?sslmode=disable",
        "SECRET_KEY": "s" * 40,
        "JWT_SECRET_KEY": JWT_SECRET,
        "UPLOADS_BUCKET": BUCKET,
        "UPLOADS_PREFIX": "uploads/",
        "UPLOAD_MAX_BYTES": str(MAX_BYTES),
        "UPLOAD_ALLOWED_TYPES": "jpg,png,pdf,mp4",
        "AWS_REGION": "us-east-1",
        "AWS_ENDPOINT_URL_S3": moto_endpoint,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
    } | overrides


@pytest.fixture(scope="module")
def bucket(moto_endpoint: str) -> str:
    s3 = boto3.client(
        "s3", endpoint_url=moto_endpoint, region_name="us-east-1", aws_access_key_id="t", aws_secret_access_key="t"
    )
    s3.create_bucket(Bucket=BUCKET)
    return BUCKET


@pytest.fixture
def app(moto_endpoint: str, bucket: str) -> Flask:
    return create_app(Settings.from_env(env_for(moto_endpoint)))


@pytest.fixture
def client(app: Flask) -> Iterator[FlaskClient]:
    with app.test_client() as client:
        yield client


def ask(client: FlaskClient, body: Any, *, auth: str | None = None, sub: str = "user-1") -> Any:
    headers = bearer(auth if auth is not None else token(sub))
    if isinstance(body, (bytes, str)):
        return client.post("/api/uploads", data=body, headers=headers | {"Content-Type": "application/json"})
    return client.post("/api/uploads", json=body, headers=headers)


def policy_of(fields: dict[str, str]) -> dict[str, Any]:
    decoded: dict[str, Any] = json.loads(base64.b64decode(fields["policy"]))
    return decoded


GOOD: dict[str, Any] = {"filename": "Invoice March.png", "content_type": "image/png", "size": len(PNG)}


# ------------------------------------------------------------------------------------------------ the path
def test_presigned_post_uploads_a_real_file_and_the_get_link_returns_it(
    client: FlaskClient, moto_endpoint: str
) -> None:
    answer = ask(client, GOOD)
    assert answer.status_code == 201, answer.get_json()
    body = answer.get_json()
    assert {"key", "url", "fields", "expires_at"} <= set(body) and body["method"] == "POST"
    key = body["key"]
    assert key.startswith("uploads/user-1/") and key.endswith("/Invoice_March.png")

    # The browser's multipart form: the signed fields first, the file last (S3 ignores fields after it).
    upload = requests.post(body["url"], data=body["fields"], files={"file": ("x.png", PNG, "image/png")}, timeout=10)
    assert upload.status_code in (200, 204), upload.text

    s3 = boto3.client(
        "s3", endpoint_url=moto_endpoint, region_name="us-east-1", aws_access_key_id="t", aws_secret_access_key="t"
    )
    stored = s3.head_object(Bucket=BUCKET, Key=key)
    assert stored["ContentType"] == "image/png" and stored["ContentLength"] == len(PNG)

    link = client.get(f"/api/uploads/{key}", headers=bearer(token()))
    assert link.status_code == 200, link.get_json()
    assert link.get_json()["content_type"] == "image/png"
    downloaded = requests.get(link.get_json()["url"], timeout=10)
    assert downloaded.status_code == 200 and downloaded.content == PNG


def test_policy_carries_the_limits_s3_enforces(client: FlaskClient) -> None:
    before = dt.datetime.now(dt.UTC)
    body = ask(client, GOOD).get_json()
    policy = policy_of(body["fields"])
    conditions = policy["conditions"]
    assert ["content-length-range", 1, MAX_BYTES] in conditions
    assert {"Content-Type": "image/png"} in conditions
    assert {"key": body["key"]} in conditions
    assert {"bucket": BUCKET} in conditions
    # No starts-with condition: nothing in the form may vary from what was signed.
    assert not [c for c in conditions if isinstance(c, list) and c[0] == "starts-with"]
    assert body["fields"]["key"] == body["key"] and body["fields"]["Content-Type"] == "image/png"
    expiration = dt.datetime.fromisoformat(policy["expiration"].replace("Z", "+00:00"))
    assert before < expiration <= before + POST_TTL + dt.timedelta(seconds=5)
    assert dt.timedelta(minutes=15) >= POST_TTL
    answered = dt.datetime.fromisoformat(body["expires_at"].replace("Z", "+00:00"))
    assert abs((answered - expiration).total_seconds()) <= 5


def test_keys_are_random_per_request_so_nothing_is_overwritten(client: FlaskClient) -> None:
    first, second = (ask(client, GOOD).get_json()["key"] for _ in range(2))
    assert first != second
    assert first.rsplit("/", 1)[1] == second.rsplit("/", 1)[1] == "Invoice_March.png"


def test_get_link_is_short_lived(client: FlaskClient, moto_endpoint: str) -> None:
    body = ask(client, GOOD).get_json()
    requests.post(body["url"], data=body["fields"], files={"file": ("x.png", PNG)}, timeout=10)
    link = client.get(f"/api/uploads/{body['key']}", headers=bearer(token())).get_json()
    assert f"X-Amz-Expires={int(GET_TTL.total_seconds())}" in link["url"]


def test_get_of_own_key_not_uploaded_is_404(client: FlaskClient) -> None:
    key = ask(client, GOOD).get_json()["key"]
    answer = client.get(f"/api/uploads/{key}", headers=bearer(token()))
    assert answer.status_code == 404 and answer.get_json()["error"] == "not_found"


def test_no_bucket_configured_is_503(moto_endpoint: str) -> None:
    app = create_app(Settings.from_env(env_for(moto_endpoint, UPLOADS_BUCKET="")))
    answer = app.test_client().post("/api/uploads", json=GOOD, headers=bearer(token()))
    assert answer.status_code == 503
    assert "UPLOADS_BUCKET" in answer.get_json()["message"]


def test_limits_come_from_the_environment(moto_endpoint: str, bucket: str) -> None:
    app = create_app(Settings.from_env(env_for(moto_endpoint, UPLOAD_MAX_BYTES="5000", UPLOAD_ALLOWED_TYPES="pdf")))
    client = app.test_client()
    pdf = {"filename": "a.pdf", "content_type": "application/pdf", "size": 4000}
    body = client.post("/api/uploads", json=pdf, headers=bearer(token())).get_json()
    assert ["content-length-range", 1, 5000] in policy_of(body["fields"])["conditions"]
    assert client.post("/api/uploads", json=GOOD, headers=bearer(token())).status_code == 415


def test_spaces_mode_signs_a_put_with_type_and_length_in_the_signature(moto_endpoint: str, bucket: str) -> None:
    """DigitalOcean (UPLOAD_METHOD=PUT): the closest equivalent of the POST policy Spaces documents."""
    app = create_app(Settings.from_env(env_for(moto_endpoint, UPLOAD_METHOD="put")))
    client = app.test_client()
    body = client.post("/api/uploads", json=GOOD, headers=bearer(token("user-7"))).get_json()
    assert (body["method"], body["fields"], body["headers"]) == ("PUT", {}, {"Content-Type": "image/png"})
    query = parse_qs(urlsplit(body["url"]).query)
    assert query["X-Amz-SignedHeaders"] == ["content-length;content-type;host"]
    assert query["X-Amz-Expires"] == [str(int(POST_TTL.total_seconds()))]
    assert urlsplit(body["url"]).path == f"/{BUCKET}/{body['key']}"
    put = requests.put(body["url"], data=PNG, headers=body["headers"], timeout=10)
    assert put.status_code == 200, put.text
    link = client.get(f"/api/uploads/{body['key']}", headers=bearer(token("user-7"))).get_json()
    assert link["content_type"] == "image/png" and requests.get(link["url"], timeout=10).content == PNG
    # The signed length is the declared one: over the limit is refused before anything is signed.
    assert client.post("/api/uploads", json=GOOD | {"size": MAX_BYTES + 1}, headers=bearer(token())).status_code == 413


def test_aws_urls_use_the_regional_endpoint() -> None:
    """botocore alone signs for https://s3.amazonaws.com, which redirects for other regions (no CORS upload)."""
    assert s3_endpoint(None, "sa-east-1") == "https://s3.sa-east-1.amazonaws.com"
    assert s3_endpoint(None, "cn-north-1") == "https://s3.cn-north-1.amazonaws.com.cn"
    assert s3_endpoint("https://fra1.digitaloceanspaces.com", "fra1") == "https://fra1.digitaloceanspaces.com"
    settings = Settings.from_env(
        {
            "DATABASE_URL": "postgresql://a:b@h/d",
            "SECRET_KEY": "s" * 40,
            "JWT_SECRET_KEY": JWT_SECRET,
            "UPLOADS_BUCKET": BUCKET,
            "AWS_REGION": "sa-east-1",
            "AWS_ACCESS_KEY_ID": "a",
            "AWS_SECRET_ACCESS_KEY": "b",
        }
    )
    body = create_app(settings).test_client().post("/api/uploads", json=GOOD, headers=bearer(token())).get_json()
    assert body["url"] == f"https://s3.sa-east-1.amazonaws.com/{BUCKET}"
    assert "/sa-east-1/s3/aws4_request" in body["fields"]["x-amz-credential"]


# ------------------------------------------------------------------------------------------------ hostile input
def _error(answer: Any) -> tuple[int, str, str | None]:
    body = answer.get_json()
    assert answer.is_json and isinstance(body, dict), answer.data
    assert body["message"], body
    return answer.status_code, body["error"], body.get("field")


@pytest.mark.parametrize(
    ("body", "status", "field"),
    [
        pytest.param(GOOD | {"filename": "../../etc/passwd.png"}, 400, "filename", id="traversal-slash"),
        pytest.param(GOOD | {"filename": "..\\..\\boot.png"}, 400, "filename", id="traversal-backslash"),
        pytest.param(GOOD | {"filename": "uploads/user-2/x/a.png"}, 400, "filename", id="someone-elses-key-as-name"),
        pytest.param(GOOD | {"filename": "a\x00.png"}, 400, "filename", id="nul-byte"),
        pytest.param(GOOD | {"filename": "a\nb.png"}, 400, "filename", id="newline"),
        pytest.param(GOOD | {"filename": "invoice\u202egnp.exe"}, 400, "filename", id="rtl-override"),
        pytest.param(GOOD | {"filename": "a" * 296 + ".png"}, 400, "filename", id="300-char-name"),
        pytest.param(GOOD | {"filename": ".png"}, 400, "filename", id="dotfile"),
        pytest.param(GOOD | {"filename": "   "}, 400, "filename", id="blank-name"),
        pytest.param(GOOD | {"size": 10**18}, 413, "size", id="huge-size"),
        pytest.param(GOOD | {"size": MAX_BYTES + 1}, 413, "size", id="one-byte-over"),
        pytest.param(GOOD | {"size": -1}, 400, "size", id="negative-size"),
        pytest.param(GOOD | {"size": 0}, 400, "size", id="zero-size"),
        pytest.param(GOOD | {"size": "100"}, 400, "size", id="size-as-string"),
        pytest.param(GOOD | {"size": 1.5}, 400, "size", id="size-as-float"),
        pytest.param(GOOD | {"size": True}, 400, "size", id="size-as-bool"),
        pytest.param(GOOD | {"filename": ["a.png"]}, 400, "filename", id="filename-as-list"),
        pytest.param(GOOD | {"content_type": 7}, 400, "content_type", id="content-type-as-number"),
        pytest.param({"content_type": "image/png", "size": 10}, 400, "filename", id="missing-filename"),
        pytest.param({"filename": "a.png", "size": 10}, 400, "content_type", id="missing-content-type"),
        pytest.param({"filename": "a.png", "content_type": "image/png"}, 400, "size", id="missing-size"),
        pytest.param(GOOD | {"size": None}, 400, "size", id="null-size"),
        pytest.param(
            GOOD | {"filename": "report.pdf", "content_type": "image/png"}, 415, "content_type", id="pdf-as-png"
        ),
        pytest.param(
            GOOD | {"filename": "run.exe", "content_type": "application/x-msdownload"}, 415, "filename", id="exe"
        ),
        pytest.param(GOOD | {"filename": "page.html", "content_type": "text/html"}, 415, "filename", id="html"),
        pytest.param(GOOD | {"filename": "noextension"}, 415, "filename", id="no-extension"),
        pytest.param(
            GOOD | {"content_type": "image/png; charset=utf-8"}, 415, "content_type", id="content-type-params"
        ),
        pytest.param(GOOD | {"filename": "a.png.html", "content_type": "text/html"}, 415, "filename", id="double-ext"),
    ],
)
def test_hostile_body_is_refused_naming_the_field(
    client: FlaskClient, body: dict[str, Any], status: int, field: str
) -> None:
    assert _error(ask(client, body))[::2] == (status, field)


@pytest.mark.parametrize(
    "raw",
    [pytest.param(b"not json", id="not-json"), pytest.param(b"[1, 2]", id="json-list"), pytest.param(b"", id="empty")],
)
def test_body_that_is_not_a_json_object_is_400(client: FlaskClient, raw: bytes) -> None:
    assert _error(ask(client, raw))[:2] == (400, "bad_request")


def _none_alg_token() -> str:
    header = base64.urlsafe_b64encode(json.dumps({"alg": "none", "typ": "JWT"}).encode()).rstrip(b"=")
    claims = {"sub": "user-1", "exp": int(time.time()) + 300}
    payload = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=")
    return f"{header.decode()}.{payload.decode()}."


@pytest.mark.parametrize(
    "headers",
    [
        pytest.param({}, id="no-header"),
        pytest.param({"Authorization": "Basic dXNlcjpwdw=="}, id="basic-scheme"),
        pytest.param({"Authorization": "Bearer "}, id="empty-token"),
        pytest.param(bearer("garbage"), id="garbage-token"),
        pytest.param(bearer(token(secret="x" * 40)), id="forged-signature"),
        pytest.param(bearer(token(expires_in=-60)), id="expired"),
        pytest.param(bearer(_none_alg_token()), id="alg-none"),
        pytest.param(bearer(jwt.encode({"sub": "user-1"}, JWT_SECRET, algorithm="HS256")), id="no-exp"),
        pytest.param(bearer(jwt.encode({"exp": int(time.time()) + 60}, JWT_SECRET, algorithm="HS256")), id="no-sub"),
        pytest.param(bearer(token(sub="../user-2")), id="sub-traversal"),
        pytest.param(bearer(token(sub="a" * 65)), id="sub-too-long"),
        pytest.param(
            bearer(jwt.encode({"sub": "user-1", "exp": int(time.time()) + 60}, JWT_SECRET, algorithm="HS512")),
            id="hs512-not-the-pinned-algorithm",
        ),
    ],
)
def test_bad_token_is_401_json(client: FlaskClient, headers: dict[str, str]) -> None:
    answer = client.post("/api/uploads", json=GOOD, headers=headers)
    assert _error(answer)[:2] == (401, "unauthorized")
    assert answer.headers["WWW-Authenticate"].startswith("Bearer")
    link = client.get("/api/uploads/uploads/user-1/x/a.png", headers=headers)
    assert link.status_code == 401


def test_another_users_key_is_404_like_a_missing_one(client: FlaskClient) -> None:
    body = ask(client, GOOD, sub="user-2").get_json()
    requests.post(body["url"], data=body["fields"], files={"file": ("x.png", PNG)}, timeout=10)
    assert client.get(f"/api/uploads/{body['key']}", headers=bearer(token("user-2"))).status_code == 200
    stolen = client.get(f"/api/uploads/{body['key']}", headers=bearer(token("user-1")))
    missing = client.get(f"/api/uploads/{body['key']}x", headers=bearer(token("user-2")))
    assert _error(stolen)[:2] == _error(missing)[:2] == (404, "not_found")
    assert stolen.get_json() == missing.get_json()


@pytest.mark.parametrize(
    "key",
    [
        "uploads/user-1/../user-2/AAAAAAAAAAAAAAAAAAAAAA/a.png",
        "uploads/user-1/AAAAAAAAAAAAAAAAAAAAAA/../../user-2/a.png",
        "uploads/user-10/AAAAAAAAAAAAAAAAAAAAAA/a.png",
        "uploads/user-1",
        "other/user-1/AAAAAAAAAAAAAAAAAAAAAA/a.png",
    ],
)
def test_only_own_keys_of_the_issued_shape_are_signed(key: str) -> None:
    assert not owns_key("uploads/", "user-1", key)


def test_sanitised_names() -> None:
    assert sanitise("résumé final (2).PDF", "pdf") == "resume_final_2.pdf"
    assert sanitise("日本語.png", "png") == "file.png"
    assert len(sanitise("a" * 250 + ".png", "png")) == 100


@pytest.mark.parametrize(
    ("filename", "stored_as"),
    [
        ("a..b.png", "a.b.png"),
        ("a\uff0fb.png", "a_b.png"),  # FULLWIDTH SOLIDUS: NFKD makes it "/", which is then replaced
        ("x\u2025\u2025y.png", "x.y.png"),  # TWO DOT LEADER: NFKD makes it ".."
        ("résumé.png", "resume.png"),
    ],
)
def test_unicode_names_land_under_the_user_and_stay_downloadable(
    client: FlaskClient, filename: str, stored_as: str
) -> None:
    body = ask(client, GOOD | {"filename": filename}).get_json()
    assert body["key"].startswith("uploads/user-1/") and body["key"].endswith("/" + stored_as)
    assert owns_key("uploads/", "user-1", body["key"])
    requests.post(body["url"], data=body["fields"], files={"file": ("x.png", PNG)}, timeout=10)
    assert client.get(f"/api/uploads/{body['key']}", headers=bearer(token())).status_code == 200


def test_types_and_sizes_through_gunicorn(
    start_api: Callable[..., RunningApi], moto_endpoint: str, bucket: str
) -> None:
    """The same endpoint through the image's CMD, configured only by environment variables."""
    env = (
        base_env("postgresql://app:pw@127.0.0.1:1/shop?sslmode=disable")
        | {k: v for k, v in env_for(moto_endpoint).items() if k != "DATABASE_URL"}
        | {"STACK": "staging"}
    )
    api = start_api(env)
    headers = bearer(token("user-9")) | {"Content-Type": "application/json"}
    created = requests.post(f"{api.base_url}/api/uploads", json=GOOD, headers=headers, timeout=10)
    assert created.status_code == 201, created.text
    assert created.json()["key"].startswith("uploads/user-9/")
    too_big = requests.post(
        f"{api.base_url}/api/uploads", json=GOOD | {"size": MAX_BYTES * 2}, headers=headers, timeout=10
    )
    assert too_big.status_code == 413 and too_big.json()["field"] == "size"
    [refused] = [line for line in api.log_lines() if line.get("event") == "upload_failed"]
    assert (refused["reason"], refused["stack"]) == ("too_large", "staging")
