"""Security settings that must not regress: localhost binding and XSRF, pinned dependencies, no secrets
handed to workers, no code path that unpickles or evaluates, safe names, documented limits."""
from __future__ import annotations

import ast
import re
import tomllib
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import dlcore
from dlcore.data.user import safe_name

ROOT = Path(__file__).resolve().parents[2]


def test_server_binds_to_localhost_with_xsrf():
    config = tomllib.loads((ROOT / ".streamlit" / "config.toml").read_text())
    server = config["server"]
    assert server["address"] in ("localhost", "127.0.0.1")
    assert server["enableXsrfProtection"] is True
    assert server.get("enableCORS", True) is True
    assert server["maxUploadSize"] == dlcore.config.Limits.upload_bytes.default  # the same MB as DLE_MAX_UPLOAD_MB
    assert config.get("browser", {}).get("gatherUsageStats") is False


@pytest.mark.parametrize("name", ["requirements.txt", "requirements-dev.txt"])
def test_dependencies_are_pinned(name):
    lines = [ln.split("#")[0].strip() for ln in (ROOT / name).read_text().splitlines()]
    reqs = [ln for ln in lines if ln and not ln.startswith("-r ")]
    assert reqs
    loose = [r for r in reqs if not re.fullmatch(r"[A-Za-z0-9_.\-\[\],]+==[A-Za-z0-9_.+\-]+", r)]
    assert not loose, f"unpinned in {name}: {loose}"


def test_workers_do_not_inherit_secrets(monkeypatch):
    from dlcore.train.jobs import _worker_env

    secrets = ["AWS_SECRET_ACCESS_KEY", "GITHUB_TOKEN", "DB_PASSWORD", "OPENAI_API_KEY", "MY_APIKEY",
               "SSH_PRIVATE_KEY", "GOOGLE_APPLICATION_CREDENTIALS", "HF_TOKEN", "BASIC_AUTH", "STREAMLIT_COOKIE"]
    kept = ["DLE_DATA_DIR", "DLE_MAX_CONCURRENT_RUNS", "PATH", "HOME", "CUDA_VISIBLE_DEVICES", "OMP_NUM_THREADS"]
    for name in secrets + kept:
        monkeypatch.setenv(name, f"value-of-{name}")
    env = _worker_env()
    assert not [n for n in secrets if n in env]
    assert all(env[n] == f"value-of-{n}" for n in kept)
    assert str(ROOT) in env["PYTHONPATH"].split(":")


DANGEROUS = {("pickle", "load"), ("pickle", "loads"), ("torch", "load"), ("joblib", "load"), ("yaml", "load"),
             ("marshal", "loads"), ("os", "system"), ("dill", "load"), ("cloudpickle", "load")}


def _findings(path: Path) -> list[str]:
    out = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if not isinstance(node, ast.Call):
            continue
        f = node.func
        if isinstance(f, ast.Name) and f.id in ("eval", "exec", "__import__"):
            out.append(f"{path.name}:{node.lineno} {f.id}()")
        if isinstance(f, ast.Attribute) and isinstance(f.value, ast.Name) and (f.value.id, f.attr) in DANGEROUS:
            out.append(f"{path.name}:{node.lineno} {f.value.id}.{f.attr}()")
        if any(k.arg == "shell" and isinstance(k.value, ast.Constant) and k.value.value for k in node.keywords):
            out.append(f"{path.name}:{node.lineno} shell=True")
        if isinstance(f, ast.Attribute) and f.attr == "open" and isinstance(f.value, ast.Name) and f.value.id == "Image" \
                and not any(k.arg == "formats" for k in node.keywords):
            out.append(f"{path.name}:{node.lineno} Image.open without formats=")
    return out


def test_no_code_path_unpickles_or_evaluates():
    files = [*(ROOT / "dlcore").rglob("*.py"), *(ROOT / "app_pages").rglob("*.py"), ROOT / "app.py"]
    found = [f for p in files if p.exists() for f in _findings(p)]
    assert not found, found


@settings(max_examples=200, derandomize=True, database=None)
@given(st.text())
def test_safe_name_is_always_a_plain_file_name(name):
    slug = safe_name(name)
    assert re.fullmatch(r"[A-Za-z0-9._-]{1,40}", slug) and not slug.startswith(".") and slug not in (".", "..")


@pytest.mark.parametrize("run_id", ["../x", "a/b", "..\\x", ".hidden", ""])
def test_run_ids_cannot_leave_the_runs_folder(run_id, sandbox):
    with pytest.raises(dlcore.RunNotFound):
        dlcore.RunStore().run_dir(run_id)


def test_every_limit_is_documented():
    doc = (ROOT / "docs" / "security.md").read_text()
    for row in dlcore.LIMITS.describe():
        default = f"{row['default']:,}" + (" MB" if row["unit"] else "")
        assert re.search(rf"`{row['env']}` \| {re.escape(default)} \|", doc), f"{row['env']} ({default}) not in the table"
    for needle in ("st.login", "enableXsrfProtection", "reverse proxy", "TLS"):
        assert needle in doc
