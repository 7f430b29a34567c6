"""The suite's secret scan: what it recognises, how it reports, that it fails the run, and that capturing every
record down to TRACE changes nothing other tests observe."""

from __future__ import annotations

import base64
import logging
import uuid
from pathlib import Path

import pytest
import yaml

from kube.logging import TRACE
from tests import logscan

pytest_plugins = ["pytester"]

TOKEN = "eyJhbGciOiJSUzI1NiIsImtpZCI6InRlc3QifQ.eyJzdWIiOiJzeXN0ZW06c2VydmljZWFjY291bnQ6eDp5In0.c2lnbmF0dXJlX29mX3Rlc3Q"
KEY_LINES = ["MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQC7pRZqG1x9Ysyd", "lnK3y0vbgq4n1o5x8wJx2y8mY3tE"]
PEM = "-----BEGIN PRIVATE KEY-----\n" + "\n".join(KEY_LINES) + "\n-----END PRIVATE KEY-----\n"


def kubeconfig(token: str, key_pem: str) -> dict[str, object]:
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "users": [
            {"name": "sa", "user": {"token": token}},
            {"name": "admin", "user": {"client-key-data": base64.b64encode(key_pem.encode()).decode()}},
        ],
    }


def test_kubeconfig_tokens_and_client_keys_become_known_secrets(tmp_path: Path) -> None:
    path = tmp_path / "tenant.kubeconfig"
    path.write_text(yaml.safe_dump(kubeconfig(TOKEN, PEM)))
    secrets = logscan.Secrets()
    secrets.add_file(path)
    assert TOKEN in secrets.known
    assert KEY_LINES[0] in secrets.known  # the decoded key's first body line
    assert all(len(s) >= logscan.MIN_SECRET_LENGTH for s in secrets.known)


@pytest.mark.parametrize("content", ["users: 5\n", "users: [7, {user: 3}]\n", "- users:\n", "users: {a: b}\n"])
def test_broken_kubeconfigs_are_passed_over(tmp_path: Path, content: str) -> None:
    path = tmp_path / "broken.kubeconfig"
    path.write_text(content)
    secrets = logscan.Secrets()
    secrets.add_file(path)
    assert secrets.known == {}


def test_a_known_secret_is_found_with_its_line_and_never_shown(tmp_path: Path) -> None:
    secrets = logscan.Secrets()
    secrets.add(TOKEN, "token of kubeconfig x")
    log = tmp_path / "ccm-output.txt"
    log.write_text(f'level=info msg=ok\nlevel=debug msg="request" header="{TOKEN[:3]}" token_was={TOKEN}\n')
    [finding] = logscan.scan_file(log, secrets, shapes=False)
    assert (finding.path, finding.line, finding.kind) == (log, 2, "token of kubeconfig x")
    assert TOKEN not in str(finding) and f"<{len(TOKEN)} secret chars>" in str(finding)


@pytest.mark.parametrize(
    ("line", "kind"),
    [
        ("Authorization: Bearer abcdefghijklmnopqrstuvwxyz012345", "Authorization header"),
        ('headers={"Authorization": "Basic dXNlcjpwYXNzd29yZA=="}', "Authorization header"),
        ("retrying with bearer abcdefghijklmnopqrstuvwxyz012345", "bearer token"),
        (f"token={TOKEN}", "JWT"),
        ("-----BEGIN EC PRIVATE KEY-----", "PEM private key"),
    ],
)
def test_anything_shaped_like_a_credential_is_found(tmp_path: Path, line: str, kind: str) -> None:
    log = tmp_path / "line.txt"
    log.write_text(line + "\n")
    assert kind in {f.kind for f in logscan.scan_file(log, logscan.Secrets())}


@pytest.mark.parametrize(
    "line",
    [
        "Authorization: Bearer [REDACTED]",
        'E1124 authentication.go:74] "Unable to authenticate the request" err="invalid bearer token"',
        'FLAG: --authorization-mode="[Node,RBAC]"',
        "-----BEGIN CERTIFICATE-----",
    ],
)
def test_masked_values_and_ordinary_lines_are_not_findings(tmp_path: Path, line: str) -> None:
    log = tmp_path / "line.txt"
    log.write_text(line + "\n")
    assert logscan.scan_file(log, logscan.Secrets()) == []


def test_log_files_are_under_logs_directories_or_named_as_logs(tmp_path: Path) -> None:
    for name in ("h/logs/kube-apiserver.log", "h/logs/cdi", "t/ccm.log", "t/csi.err", "h/pki/ca.key", "t/x.json"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text("x")
    found = {p.relative_to(tmp_path).as_posix() for p in logscan.log_files(tmp_path)}
    assert found == {"h/logs/kube-apiserver.log", "h/logs/cdi", "t/ccm.log", "t/csi.err"}


def spooled(request: pytest.FixtureRequest) -> str:
    scan = logscan.active(request.config)
    assert scan is not None, "the plugin is enabled from tests/conftest.py"
    scan.flush()
    return scan.spool_path.read_text()


def test_trace_records_are_spooled_but_reach_no_other_handler(
    request: pytest.FixtureRequest, caplog: pytest.LogCaptureFixture
) -> None:
    marker = uuid.uuid4().hex
    logging.getLogger(f"kube.logscan-probe-{marker[:6]}").log(TRACE, "probe %s", marker)
    logging.getLogger("csi.server").debug("probe %s", marker)
    assert marker not in caplog.text  # without the plugin neither record would exist
    assert spooled(request).count(marker) == 2


def test_records_at_the_levels_tests_ask_for_still_reach_them(
    request: pytest.FixtureRequest, caplog: pytest.LogCaptureFixture
) -> None:
    marker = uuid.uuid4().hex
    with caplog.at_level(logging.DEBUG, logger="csi.server"):
        logging.getLogger("csi.server").debug("probe %s", marker)
    logging.getLogger("ccm").warning("probe %s", marker)
    logging.getLogger("elsewhere").warning("probe %s", marker)
    assert [r.name for r in caplog.records] == ["csi.server", "ccm", "elsewhere"]
    assert spooled(request).count(marker) == 3


def test_a_run_that_logs_a_secret_fails_and_names_the_line(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PYTHONPATH", str(Path(__file__).resolve().parents[2]))
    pytester.makepyfile(
        test_leak=f"""
        import logging, yaml

        def test_leaks(tmp_path):
            (tmp_path / "sa.kubeconfig").write_text(yaml.safe_dump({{"users": [{{"user": {{"token": "{TOKEN}"}}}}]}}))
            logging.getLogger("kube.transport").debug("sending with token %s", "{TOKEN}")
        """
    )
    result = pytester.runpytest_subprocess("-p", "tests.logscan", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)
    assert result.ret != 0
    result.stdout.fnmatch_lines(["*secrets in logs*", "*records.log:1: token of kubeconfig *sa.kubeconfig*"])
    assert TOKEN not in result.stdout.str()
