"""`POST /api/uploads` and `GET /api/uploads/<key>`: presigned uploads straight from the browser to S3/Spaces.

The API never streams file bytes; it only signs. The limits live in what it signs, because that is what the
storage enforces:
- on S3 (`UPLOAD_METHOD=POST`): a presigned POST whose policy carries `content-length-range`
  1..`UPLOAD_MAX_BYTES`, the exact `Content-Type` and the exact key, expiring after `POST_TTL` (S3 checks
  every condition of the policy: https://docs.aws.amazon.com/AmazonS3/latest/API/sigv4-HTTPPOSTConstructPolicy.html);
- on Spaces (`UPLOAD_METHOD=PUT`): DigitalOcean documents presigned URLs but not POST policies, so a
  presigned PUT whose signature covers `Content-Type` and `Content-Length` (SignedHeaders): the browser must
  send exactly the declared type and size (already checked against the limits here), to exactly this key;
- keys are `<UPLOADS_PREFIX><user id>/<random>/<sanitised name>`: the user never chooses a key, the random
  segment means nobody overwrites an existing object, and the name is reduced to `[A-Za-z0-9._-]`;
- downloads are short-lived presigned GETs, signed only for keys under the caller's own prefix.

Every error is JSON `{"error": <code>, "message": <why>}` (plus `field` for a bad body), like the other
endpoints of app/web.py.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
import secrets
import unicodedata
from dataclasses import dataclass
from typing import Any

from flask import Blueprint, Flask, Response, current_app, jsonify, request

from app import jsonlog
from app.auth import Unauthenticated, User, authenticate
from app.config import CONTENT_TYPES, Settings

log = logging.getLogger("app.uploads")
blueprint = Blueprint("uploads", __name__)

POST_TTL = dt.timedelta(minutes=5)
"""Long enough to start a 10 MB upload on a slow line (S3 checks expiry when the request starts)."""
GET_TTL = dt.timedelta(minutes=5)
MAX_FILENAME_CHARS = 255
"""Longer names are refused, not truncated: a 300-character name is a bug or an attack, not a user's file."""
MAX_KEY_NAME_CHARS = 100
"""The sanitised name in the key is cut to this (keeping the extension); S3 keys stop at 1,024 bytes."""
_UNSAFE_NAME_CHARS = re.compile(r"[^A-Za-z0-9._-]+")
_DOT_RUNS = re.compile(r"\.{2,}")
_RANDOM_SEGMENT = re.compile(r"^[A-Za-z0-9_-]{22}$")  # secrets.token_urlsafe(16)
_KEY_NAME = re.compile(r"^[A-Za-z0-9_-][A-Za-z0-9._-]{0,99}$")


class UploadError(Exception):
    """A refused request: HTTP status, error code and a message for the caller."""

    def __init__(self, status: int, code: str, message: str, field: str | None = None):
        super().__init__(message)
        self.status, self.code, self.message, self.field = status, code, message, field


@dataclass(frozen=True)
class UploadRequest:
    filename: str
    extension: str
    content_type: str
    size: int


def register(app: Flask, settings: Settings) -> None:
    """Mount the endpoints on `app` (called by app.web.create_app)."""
    app.extensions["shipyard.uploads.s3"] = _s3_client(settings)
    app.register_blueprint(blueprint)


# ------------------------------------------------------------------------------------------------ routes
@blueprint.post("/api/uploads")
def create_upload() -> tuple[Response, int]:
    settings = _settings()
    user = _user(settings)
    bucket = _bucket(settings)
    upload = parse_upload_request(request.get_json(silent=True), settings)
    key = new_key(settings.uploads.prefix, user.id, upload.filename, upload.extension)
    expires_at = _utcnow() + POST_TTL
    if settings.uploads.method == "PUT":
        signed = presigned_put(bucket, key, upload)
    else:
        signed = presigned_post(bucket, key, upload, settings.upload_max_bytes)
    log.info("upload signed", extra={"user_id": user.id, "key": key, "size": upload.size})
    return jsonify(key=key, expires_at=_iso(expires_at), **signed), 201


def presigned_post(bucket: str, key: str, upload: UploadRequest, max_bytes: int) -> dict[str, Any]:
    """`{"method": "POST", "url", "fields"}`: the form fields go first in the multipart body, the file last."""
    post = _s3().generate_presigned_post(
        Bucket=bucket,
        Key=key,
        Fields={"Content-Type": upload.content_type},
        Conditions=[{"Content-Type": upload.content_type}, ["content-length-range", 1, max_bytes]],
        ExpiresIn=int(POST_TTL.total_seconds()),
    )
    # botocore adds the exact `key` and `bucket` conditions itself (the key has no ${filename}).
    return {"method": "POST", "url": post["url"], "fields": post["fields"], "headers": {}}


def presigned_put(bucket: str, key: str, upload: UploadRequest) -> dict[str, Any]:
    """`{"method": "PUT", "url", "headers"}`: Content-Type and Content-Length are in the signature, so any
    other type or size is refused with 403 SignatureDoesNotMatch (the browser sets Content-Length itself)."""
    url = _s3().generate_presigned_url(
        "put_object",
        Params={"Bucket": bucket, "Key": key, "ContentType": upload.content_type, "ContentLength": upload.size},
        ExpiresIn=int(POST_TTL.total_seconds()),
    )
    return {"method": "PUT", "url": url, "fields": {}, "headers": {"Content-Type": upload.content_type}}


@blueprint.get("/api/uploads/<path:key>")
def download_link(key: str) -> tuple[Response, int]:
    settings = _settings()
    user = _user(settings)
    bucket = _bucket(settings)
    if not owns_key(settings.uploads.prefix, user.id, key):
        # Same answer as for a missing object: another user's key is not confirmed to exist.
        raise UploadError(404, "not_found", "no such upload")
    try:
        head = _s3().head_object(Bucket=bucket, Key=key)
    except Exception as error:
        # Without s3:ListBucket, S3 answers 403 rather than 404 for a missing key
        # (https://docs.aws.amazon.com/AmazonS3/latest/API/API_HeadObject.html, "Permissions").
        if _status_of(error) in (403, 404):
            raise UploadError(404, "not_found", "no such upload") from None
        raise
    url = _s3().generate_presigned_url(
        "get_object", Params={"Bucket": bucket, "Key": key}, ExpiresIn=int(GET_TTL.total_seconds())
    )
    return (
        jsonify(
            key=key,
            url=url,
            expires_at=_iso(_utcnow() + GET_TTL),
            content_type=head.get("ContentType"),
            size=head.get("ContentLength"),
        ),
        200,
    )


@blueprint.errorhandler(UploadError)
def upload_error(error: UploadError) -> tuple[Response, int]:
    body: dict[str, Any] = {"error": error.code, "message": error.message}
    if error.field is not None:
        body["field"] = error.field
    response = jsonify(body)
    if error.status == 401:
        # RFC 6750 section 3: a 401 for a bearer-protected resource says which scheme it wants.
        response.headers["WWW-Authenticate"] = 'Bearer error="invalid_token"'
    if error.status in (413, 415, 503):
        jsonlog.log_event(
            log,
            jsonlog.UPLOAD_FAILED,
            f"upload refused: {error.message}",
            level=logging.WARNING if error.status != 503 else logging.ERROR,
            reason=error.code,
            path=request.path,
        )
    return response, error.status


# ------------------------------------------------------------------------------------------------ checks
def parse_upload_request(body: Any, settings: Settings) -> UploadRequest:
    """Validate `{"filename", "content_type", "size"}`; 400 names the field, 413 size, 415 type."""
    if not isinstance(body, dict):
        raise UploadError(400, "bad_request", 'expected a JSON object {"filename", "content_type", "size"}')
    filename = _required(body, "filename", str)
    content_type = _required(body, "content_type", str)
    size = _required(body, "size", int)
    check_filename(filename)
    if size < 1:
        raise UploadError(400, "bad_request", f"size must be at least 1 byte, got {size}", "size")
    if size > settings.upload_max_bytes:
        raise UploadError(
            413, "too_large", f"size {size} is over the limit of {settings.upload_max_bytes} bytes", "size"
        )
    extension = filename.rpartition(".")[2].lower() if "." in filename else ""
    if extension not in settings.upload_allowed_types:
        allowed = ", ".join(settings.upload_allowed_types)
        raise UploadError(
            415, "unsupported_type", f"file type {extension or '(none)'!r} not allowed ({allowed})", "filename"
        )
    expected = CONTENT_TYPES[extension]
    if content_type.strip().lower() != expected:
        raise UploadError(
            415, "unsupported_type", f"content_type must be {expected} for a .{extension} file", "content_type"
        )
    return UploadRequest(filename=filename, extension=extension, content_type=expected, size=size)


def _required(body: dict[str, Any], name: str, kind: type) -> Any:
    if name not in body or body[name] is None:
        raise UploadError(400, "bad_request", f"{name} is required", name)
    value = body[name]
    # bool is an int in Python; `"size": true` is a wrong type, not 1 byte.
    if not isinstance(value, kind) or isinstance(value, bool):
        raise UploadError(400, "bad_request", f"{name} must be a {'string' if kind is str else 'whole number'}", name)
    return value


def check_filename(filename: str) -> None:
    """Refuse names that are paths, hidden files, control characters or absurd lengths."""
    if not filename.strip():
        raise UploadError(400, "bad_request", "filename is empty", "filename")
    if len(filename) > MAX_FILENAME_CHARS:
        raise UploadError(400, "bad_request", f"filename is longer than {MAX_FILENAME_CHARS} characters", "filename")
    if "/" in filename or "\\" in filename:
        raise UploadError(400, "bad_request", "filename must be a name, not a path (no / or \\)", "filename")
    # Cc: control characters (NUL, newline...); Cf: format characters such as the right-to-left override
    # that makes "gpj.exe" display as "exe.jpg".
    if any(unicodedata.category(char) in ("Cc", "Cf") for char in filename):
        raise UploadError(400, "bad_request", "filename contains control characters", "filename")
    if filename.startswith("."):
        raise UploadError(400, "bad_request", "filename must not start with a dot", "filename")


def sanitise(filename: str, extension: str) -> str:
    """An ASCII `[A-Za-z0-9._-]` name for the key: accents folded (`résumé` -> `resume`), the rest `_`."""
    ascii_name = unicodedata.normalize("NFKD", filename).encode("ascii", "ignore").decode()
    stem = ascii_name[: -(len(extension) + 1)] if ascii_name.lower().endswith("." + extension) else ascii_name
    stem = _UNSAFE_NAME_CHARS.sub("_", stem)
    # No dot runs: `..` is harmless in a flat S3 key, but no key we hand out should look like a path step.
    stem = _DOT_RUNS.sub(".", stem).strip("._-")[: MAX_KEY_NAME_CHARS - len(extension) - 1].rstrip(".")
    return f"{stem or 'file'}.{extension}"


def new_key(prefix: str, user_id: str, filename: str, extension: str) -> str:
    return f"{prefix}{user_id}/{secrets.token_urlsafe(16)}/{sanitise(filename, extension)}"


def owns_key(prefix: str, user_id: str, key: str) -> bool:
    """True only for a key of the shape `new_key` makes, under this user's own prefix."""
    own = f"{prefix}{user_id}/"
    if not key.startswith(own):
        return False
    random_part, _, name = key[len(own) :].partition("/")
    return bool(_RANDOM_SEGMENT.match(random_part) and _KEY_NAME.match(name) and ".." not in name)


# ------------------------------------------------------------------------------------------------ plumbing
def _settings() -> Settings:
    settings: Settings = current_app.extensions["shipyard.settings"]
    return settings


def _user(settings: Settings) -> User:
    try:
        return authenticate(request.headers.get("Authorization"), settings.jwt_secret_key)
    except Unauthenticated as error:
        raise UploadError(401, "unauthorized", str(error)) from None


def _bucket(settings: Settings) -> str:
    if settings.uploads_bucket is None:
        raise UploadError(503, "uploads_unavailable", "uploads are not configured on this server (no UPLOADS_BUCKET)")
    return settings.uploads_bucket


def _s3() -> Any:
    return current_app.extensions["shipyard.uploads.s3"]


def _s3_client(settings: Settings) -> Any:
    """One client per process (boto3 clients are thread-safe; gunicorn's gthread workers share it).

    SigV4 everywhere: S3 in newer regions and Spaces accept nothing else for presigned requests. boto3 is
    imported here, not at module load, so the health endpoints do not pay for it on import.
    """
    import boto3
    from botocore.config import Config

    uploads = settings.uploads
    return boto3.client(
        "s3",
        region_name=uploads.region,
        endpoint_url=s3_endpoint(uploads.endpoint_url, uploads.region),
        aws_access_key_id=uploads.access_key_id,
        aws_secret_access_key=uploads.secret_access_key,
        config=Config(signature_version="s3v4"),
    )


def s3_endpoint(endpoint_url: str | None, region: str | None) -> str | None:
    """The configured endpoint, else S3's regional one.

    Without an endpoint botocore presigns against the global `https://s3.amazonaws.com` even for a bucket in
    sa-east-1; S3 answers such a request with a redirect to the bucket's region, which a browser's CORS upload
    cannot follow. The regional endpoint needs no redirect
    (https://docs.aws.amazon.com/AmazonS3/latest/userguide/VirtualHosting.html, "Legacy global endpoint").
    """
    if endpoint_url is not None or region is None:
        return endpoint_url
    suffix = "amazonaws.com.cn" if region.startswith("cn-") else "amazonaws.com"
    return f"https://s3.{region}.{suffix}"


def _status_of(error: Exception) -> int | None:
    response = getattr(error, "response", None)
    if isinstance(response, dict):
        status = response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        return int(status) if status is not None else None
    return None


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _iso(moment: dt.datetime) -> str:
    return moment.replace(microsecond=0).isoformat().replace("+00:00", "Z")
