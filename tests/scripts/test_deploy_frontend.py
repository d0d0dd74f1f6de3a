"""scripts/deploy_frontend.py: per-file headers, upload order and change detection, against moto on 127.0.0.1."""

from __future__ import annotations

import json
import os
import subprocess
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto.server import ThreadedMotoServer

from scripts.deploy_frontend import (
    IMMUTABLE_CACHE_CONTROL,
    DeployError,
    cache_control_for,
    collect_files,
    content_type_for,
    deploy,
    invalidation_paths,
    main,
    parse_immutable_paths,
    wait_for_invalidation,
)

ASSETS = ("/assets/*",)
PROJECT_ROOT = Path(__file__).resolve().parents[2]


# ---------------------------------------------------------------------------------------------------------
# Pure decisions
# ---------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "patterns", "expected"),
    [
        ("assets/index-3f9a1c2b.js", ASSETS, IMMUTABLE_CACHE_CONTROL),
        ("assets/img/logo-9d8e7f.png", ASSETS, IMMUTABLE_CACHE_CONTROL),  # `*` spans folders, as in CloudFront
        ("index.html", ASSETS, "no-cache"),
        ("favicon.ico", ASSETS, "no-cache"),
        ("robots.txt", ASSETS, "no-cache"),
        ("Assets/app.js", ASSETS, "no-cache"),  # CloudFront path patterns are case-sensitive
        ("static/js/main.1a2b.js", ASSETS, "no-cache"),
        ("static/js/main.1a2b.js", ("/static/*", "/fonts/*"), IMMUTABLE_CACHE_CONTROL),
        ("index.html", ("/*.html",), "no-cache"),  # index.html is never immutable, whatever the pattern
    ],
)
def test_cache_control_per_path(key: str, patterns: tuple[str, ...], expected: str) -> None:
    assert cache_control_for(key, patterns) == expected


@pytest.mark.parametrize(
    ("key", "expected"),
    [
        ("index.html", "text/html; charset=utf-8"),
        ("assets/index-3f9a1c2b.js", "text/javascript; charset=utf-8"),
        ("assets/worker-1a.mjs", "text/javascript; charset=utf-8"),
        ("assets/index-77aa.css", "text/css; charset=utf-8"),
        ("assets/index-77aa.js.map", "application/json; charset=utf-8"),
        ("manifest.webmanifest", "application/manifest+json; charset=utf-8"),
        ("logo.svg", "image/svg+xml; charset=utf-8"),
        ("favicon.ico", "image/x-icon"),
        ("assets/photo.PNG", "image/png"),
        ("assets/inter-latin.woff2", "font/woff2"),
        ("assets/engine-5f.wasm", "application/wasm"),
        ("robots.txt", "text/plain; charset=utf-8"),
        ("data.unknownext", "application/octet-stream"),
    ],
)
def test_content_type_per_path(key: str, expected: str) -> None:
    assert content_type_for(key) == expected


def test_immutable_paths_parse_from_the_stack_output_or_a_list() -> None:
    assert parse_immutable_paths('["/assets/*", "/fonts/*"]') == ("/assets/*", "/fonts/*")
    assert parse_immutable_paths("/assets/*, /static/*") == ("/assets/*", "/static/*")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "--immutable-paths is empty"),
        ("[oops", "--immutable-paths: not a JSON list"),
        ('{"a": 1}', "--immutable-paths: must be a JSON list of strings"),
        ('["assets/*"]', "--immutable-paths: 'assets/*' must start with '/'"),
        ('["/*"]', "--immutable-paths: '/*' would make index.html immutable"),
    ],
)
def test_bad_immutable_paths_name_the_option(text: str, message: str) -> None:
    with pytest.raises(DeployError, match="^" + message.replace("[", r"\[").replace("*", r"\*")):
        parse_immutable_paths(text)


def test_invalidation_covers_index_and_changed_pages_but_not_hashed_assets(tmp_path: Path) -> None:
    dist = _build(tmp_path / "dist")
    files = collect_files(dist, ASSETS)
    assert invalidation_paths(files) == ["/", "/index.html", "/favicon.ico", "/robots.txt"]
    assert invalidation_paths([]) == ["/", "/index.html"]
    for index in range(20):
        (dist / f"page-{index}.html").write_text("<p>page</p>")
    assert invalidation_paths(collect_files(dist, ASSETS)) == ["/*"]


def test_upload_order_puts_assets_first_and_index_html_last(tmp_path: Path) -> None:
    keys = [f.key for f in collect_files(_build(tmp_path / "dist"), ASSETS)]
    assert keys == [
        "assets/index-3f9a1c2b.js",
        "assets/index-77aa0b1c.css",
        "favicon.ico",
        "robots.txt",
        "index.html",
    ]


def test_a_folder_that_is_not_a_build_is_refused(tmp_path: Path) -> None:
    with pytest.raises(DeployError, match=r"--dist .*missing: not a directory"):
        collect_files(tmp_path / "missing", ASSETS)
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "main.ts").write_text("export {}")
    with pytest.raises(DeployError, match=r"--dist .*src: has no index.html"):
        collect_files(tmp_path / "src", ASSETS)


def test_polling_an_invalidation_is_bounded() -> None:
    class NeverDone:
        calls = 0

        def get_invalidation(self, **_: Any) -> dict[str, Any]:
            self.calls += 1
            return {"Invalidation": {"Status": "InProgress"}}

    pauses: list[float] = []
    cloudfront = NeverDone()
    with pytest.raises(DeployError, match="still not complete after 3 checks"):
        wait_for_invalidation(cloudfront, "E123", "I456", 10.0, 3, pauses.append)
    assert cloudfront.calls == 3
    assert pauses == [10.0, 10.0]


# ---------------------------------------------------------------------------------------------------------
# Against moto (S3 + CloudFront) on 127.0.0.1
# ---------------------------------------------------------------------------------------------------------


@dataclass
class Cloud:
    endpoint: str
    s3: Any
    cloudfront: Any
    bucket: str
    distribution_id: str
    put_keys: list[str]


@pytest.fixture
def cloud(monkeypatch: pytest.MonkeyPatch) -> Iterator[Cloud]:
    for name in ("AWS_PROFILE", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL_CLOUDFRONT"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        endpoint = f"http://{host}:{port}"
        # moto keeps its state per process, not per server: start from an empty cloud.
        urllib.request.urlopen(urllib.request.Request(f"{endpoint}/moto-api/reset", method="POST"), timeout=10)
        s3 = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1")
        cloudfront = boto3.client("cloudfront", endpoint_url=endpoint, region_name="us-east-1")
        bucket = "shipyard-test-frontend-123456789012"
        s3.create_bucket(Bucket=bucket)
        distribution = cloudfront.create_distribution(
            DistributionConfig={
                "CallerReference": "test",
                "Comment": "",
                "Enabled": True,
                "Origins": {
                    "Quantity": 1,
                    "Items": [
                        {
                            "Id": "spa-bucket",
                            "DomainName": f"{bucket}.s3.us-east-1.amazonaws.com",
                            "S3OriginConfig": {"OriginAccessIdentity": ""},
                        }
                    ],
                },
                "DefaultCacheBehavior": {
                    "TargetOriginId": "spa-bucket",
                    "ViewerProtocolPolicy": "redirect-to-https",
                    "CachePolicyId": "4135ea2d-6df8-44a3-9df3-4b5a84be39ad",
                },
            }
        )
        put_keys: list[str] = []
        s3.meta.events.register(
            "before-parameter-build.s3.PutObject", lambda params, **_: put_keys.append(params["Key"])
        )
        yield Cloud(endpoint, s3, cloudfront, bucket, distribution["Distribution"]["Id"], put_keys)
    finally:
        server.stop()


def _build(dist: Path) -> Path:
    (dist / "assets").mkdir(parents=True)
    (dist / "index.html").write_text(
        '<!doctype html><script type="module" src="/assets/index-3f9a1c2b.js"></script>'
        '<link rel="stylesheet" href="/assets/index-77aa0b1c.css">'
    )
    (dist / "assets" / "index-3f9a1c2b.js").write_text("console.log('v1')")
    (dist / "assets" / "index-77aa0b1c.css").write_text("body{margin:0}")
    (dist / "favicon.ico").write_bytes(b"\x00\x00\x01\x00")
    (dist / "robots.txt").write_text("User-agent: *\nAllow: /\n")
    (dist / ".DS_Store").write_bytes(b"junk")
    return dist


def _invalidated_paths(cloud: Cloud, invalidation_id: str) -> list[str]:
    invalidation = cloud.cloudfront.get_invalidation(DistributionId=cloud.distribution_id, Id=invalidation_id)
    return list(invalidation["Invalidation"]["InvalidationBatch"]["Paths"]["Items"])


def test_first_deploy_uploads_everything_with_its_headers_then_invalidates(cloud: Cloud, tmp_path: Path) -> None:
    dist = _build(tmp_path / "dist")
    report = deploy(cloud.s3, cloud.cloudfront, bucket=cloud.bucket, distribution_id=cloud.distribution_id, dist=dist)
    assert cloud.put_keys == [
        "assets/index-3f9a1c2b.js",
        "assets/index-77aa0b1c.css",
        "favicon.ico",
        "robots.txt",
        "index.html",
    ]
    assert report.uploaded == cloud.put_keys and report.unchanged == []
    expected = {
        "index.html": ("no-cache", "text/html; charset=utf-8"),
        "assets/index-3f9a1c2b.js": (IMMUTABLE_CACHE_CONTROL, "text/javascript; charset=utf-8"),
        "assets/index-77aa0b1c.css": (IMMUTABLE_CACHE_CONTROL, "text/css; charset=utf-8"),
        "favicon.ico": ("no-cache", "image/x-icon"),
        "robots.txt": ("no-cache", "text/plain; charset=utf-8"),
    }
    for key, (cache_control, content_type) in expected.items():
        stored = cloud.s3.get_object(Bucket=cloud.bucket, Key=key)
        assert (stored["CacheControl"], stored["ContentType"]) == (cache_control, content_type), key
        assert stored["Body"].read() == (dist / key).read_bytes()
    listed = cloud.s3.list_objects_v2(Bucket=cloud.bucket)["Contents"]
    assert ".DS_Store" not in {item["Key"] for item in listed}
    assert report.invalidation_id is not None
    assert _invalidated_paths(cloud, report.invalidation_id) == ["/", "/index.html", "/favicon.ico", "/robots.txt"]


def test_a_rerun_uploads_only_what_changed(cloud: Cloud, tmp_path: Path) -> None:
    dist = _build(tmp_path / "dist")
    target = {"bucket": cloud.bucket, "distribution_id": cloud.distribution_id, "dist": dist}
    deploy(cloud.s3, cloud.cloudfront, **target)  # type: ignore[arg-type]
    cloud.put_keys.clear()

    unchanged = deploy(cloud.s3, cloud.cloudfront, **target)  # type: ignore[arg-type]
    assert cloud.put_keys == [] and unchanged.uploaded == []
    assert unchanged.invalidation_id is not None
    assert _invalidated_paths(cloud, unchanged.invalidation_id) == ["/", "/index.html"]

    # A new build: a new hashed bundle and an index.html naming it.
    (dist / "assets" / "index-4b0c9d1e.js").write_text("console.log('v2')")
    (dist / "index.html").write_text('<!doctype html><script type="module" src="/assets/index-4b0c9d1e.js"></script>')
    second = deploy(cloud.s3, cloud.cloudfront, **target)  # type: ignore[arg-type]
    assert cloud.put_keys == ["assets/index-4b0c9d1e.js", "index.html"]
    assert second.uploaded == cloud.put_keys
    # The old bundle stays: a browser still on the previous index.html may yet load it.
    cloud.s3.head_object(Bucket=cloud.bucket, Key="assets/index-3f9a1c2b.js")
    assert second.invalidation_id is not None
    assert _invalidated_paths(cloud, second.invalidation_id) == ["/", "/index.html"]


def test_waiting_returns_once_cloudfront_reports_the_invalidation_complete(cloud: Cloud, tmp_path: Path) -> None:
    pauses: list[float] = []
    report = deploy(
        cloud.s3,
        cloud.cloudfront,
        bucket=cloud.bucket,
        distribution_id=cloud.distribution_id,
        dist=_build(tmp_path / "dist"),
        wait=True,
        poll_seconds=0.0,
        max_polls=2,
        sleep=pauses.append,
    )
    assert report.invalidation_id is not None
    assert pauses == []  # moto completes invalidations at once: the first poll sees it done


def test_command_line_with_stack_outputs_deploys(
    cloud: Cloud, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    dist = _build(tmp_path / "dist")
    args = [
        "--dist",
        str(dist),
        "--bucket",
        cloud.bucket,
        "--distribution-id",
        cloud.distribution_id,
        "--immutable-paths",
        json.dumps(["/assets/*"]),
        "--endpoint-url",
        cloud.endpoint,
        "--region",
        "us-east-1",
    ]
    assert main([*args, "--dry-run"]) == 0
    assert "would upload 5 file(s), 0 unchanged" in capsys.readouterr().out
    assert "Contents" not in cloud.s3.list_objects_v2(Bucket=cloud.bucket)
    invalidations = cloud.cloudfront.list_invalidations(DistributionId=cloud.distribution_id)["InvalidationList"]
    assert invalidations.get("Items", []) == []

    assert main(args) == 0
    out = capsys.readouterr().out
    assert "uploaded 5 file(s), 0 unchanged" in out
    assert "invalidation " in out and "/ /index.html /favicon.ico /robots.txt" in out
    assert len(cloud.s3.list_objects_v2(Bucket=cloud.bucket)["Contents"]) == 5


def test_command_line_refuses_empty_stack_outputs(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code = main(["--dist", str(tmp_path), "--bucket", "", "--distribution-id", "E123"])
    assert code == 2
    assert "deploy-frontend: --bucket is empty" in capsys.readouterr().err


def test_make_target_reads_the_stack_outputs_and_deploys(cloud: Cloud, tmp_path: Path) -> None:
    """`make deploy-frontend` end to end; only the Pulumi CLI (not installed here) is a stand-in script that
    prints the stack outputs the way `pulumi stack output` does."""
    outputs = {
        "frontendBucket": cloud.bucket,
        "cloudfrontDistributionId": cloud.distribution_id,
        "frontendImmutablePaths": json.dumps(["/assets/*"]),
        "region": "us-east-1",
    }
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake_pulumi = bin_dir / "pulumi"
    fake_pulumi.write_text(
        "#!/usr/bin/env python3\n"
        "import json, sys\n"
        f"outputs = {outputs!r}\n"
        "assert sys.argv[1:3] == ['stack', 'output'] and sys.argv[-2:] == ['--stack', 'prod'], sys.argv\n"
        "print(outputs[sys.argv[3]])\n"
    )
    fake_pulumi.chmod(0o755)
    dist = _build(tmp_path / "dist")
    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}", "AWS_ENDPOINT_URL": cloud.endpoint}
    # -o: the venv is already installed; never let the test reach for a package index.
    result = subprocess.run(
        ["make", "-s", "-o", ".venv/.installed", "deploy-frontend", "STACK=prod", f"DIST={dist}"],
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "uploaded 5 file(s), 0 unchanged" in result.stdout
    stored = cloud.s3.head_object(Bucket=cloud.bucket, Key="assets/index-3f9a1c2b.js")
    assert stored["CacheControl"] == IMMUTABLE_CACHE_CONTROL
    items = cloud.cloudfront.list_invalidations(DistributionId=cloud.distribution_id)["InvalidationList"]["Items"]
    assert len(items) == 1


def test_make_target_without_dist_prints_its_usage() -> None:
    result = subprocess.run(
        ["make", "-s", "-o", ".venv/.installed", "deploy-frontend", "STACK=prod"],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode != 0
    assert "usage: make deploy-frontend STACK=<stack> DIST=" in result.stderr
