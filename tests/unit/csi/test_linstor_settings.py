"""LINSTOR connection settings and the `--linstor-*` flags."""

from __future__ import annotations

import argparse
import re
from pathlib import Path

import pytest
from pydantic import ValidationError

from csi import __main__ as csi_main
from csi.linstor.flags import add_linstor_flags, check_tls_files, duration, linstor_settings_from
from csi.linstor.settings import LinstorSettings, controller_url, ssl_context
from e2e import helm


@pytest.mark.parametrize(
    ("text", "tls", "expected"),
    [
        ("linstor-controller", False, "http://linstor-controller:3370"),
        ("linstor-controller", True, "https://linstor-controller:3371"),
        ("linstor://ctrl.piraeus.svc", True, "https://ctrl.piraeus.svc:3371"),
        ("ctrl:8080", False, "http://ctrl:8080"),
        ("http://ctrl", True, "http://ctrl:3370"),  # an explicit scheme is kept
        ("https://ctrl/", False, "https://ctrl:3371"),
        ("https://[fd00::1]:3371", False, "https://[fd00::1]:3371"),
        ("  10.0.0.5  ", False, "http://10.0.0.5:3370"),
    ],
)
def test_controller_url(text: str, tls: bool, expected: str) -> None:
    assert controller_url(text, tls=tls) == expected


@pytest.mark.parametrize("text", ["", "ftp://ctrl", "http://ctrl/v1", "http://:3370", "http://ctrl?x=1"])
def test_bad_controller_url(text: str) -> None:
    with pytest.raises(ValueError, match=r"LINSTOR controller|empty"):
        controller_url(text, tls=False)


def test_settings_split_and_normalise_the_list() -> None:
    settings = LinstorSettings(urls="a, b:1,", ca=Path("/ca.crt"))  # the model splits strings
    assert settings.urls == ("https://a:3371", "https://b:1")
    assert settings.tls


def test_client_certificate_needs_its_key() -> None:
    with pytest.raises(ValidationError, match="go together"):
        LinstorSettings(urls=("a",), client_cert=Path("/tls.crt"))


@pytest.mark.parametrize("field", ["timeout", "connect_timeout"])
def test_timeouts_must_be_positive(field: str) -> None:
    with pytest.raises(ValidationError):
        LinstorSettings.model_validate({"urls": ["a"], field: 0})


def test_plain_http_needs_no_tls_context() -> None:
    assert ssl_context(LinstorSettings(urls=("http://a",))) is None


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_linstor_flags(parser)
    return parser.parse_args(argv)


def test_no_url_means_no_linstor(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LS_CONTROLLERS", raising=False)
    assert linstor_settings_from(parse()) is None


def test_flags_to_settings() -> None:
    settings = linstor_settings_from(
        parse(
            "--linstor-url=linstor://ctrl-0,linstor://ctrl-1",
            "--linstor-client-cert=/etc/linstor/tls.crt",
            "--linstor-client-key=/etc/linstor/tls.key",
            "--linstor-ca=/etc/linstor/ca.crt",
            "--linstor-timeout=1500ms",
            "--linstor-cache-ttl=1m",
        )
    )
    assert settings is not None
    assert settings.urls == ("https://ctrl-0:3371", "https://ctrl-1:3371")
    assert (settings.timeout, settings.health_ttl, settings.capacity_ttl) == (1.5, 60.0, 120.0)
    assert settings.client_key == Path("/etc/linstor/tls.key")


def test_ls_controllers_is_the_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LS_CONTROLLERS", "ctrl")
    settings = linstor_settings_from(parse())
    assert settings is not None and settings.urls == ("http://ctrl:3370",)


def test_bad_flag_values_are_value_errors() -> None:
    with pytest.raises(ValueError, match="LINSTOR settings"):
        linstor_settings_from(parse("--linstor-url=ctrl", "--linstor-client-cert=/x"))
    with pytest.raises(argparse.ArgumentTypeError):
        duration("soon")


def test_locality_is_prefer_unless_switched_off() -> None:
    default = linstor_settings_from(parse("--linstor-url=ctrl"))
    off = linstor_settings_from(parse("--linstor-url=ctrl", "--linstor-locality=off"))
    assert default is not None and default.locality == "prefer"
    assert off is not None and off.locality == "off"
    with pytest.raises(SystemExit):
        parse("--linstor-url=ctrl", "--linstor-locality=always")


@pytest.mark.parametrize(("values", "expected"), [({}, "prefer"), ({"locality": "off"}, "off")])
def test_the_chart_passes_locality_to_the_driver(values: dict[str, str], expected: str) -> None:
    linstor = {"urls": ["linstor-proxy.platform.example"], **values}
    manifests = helm.template(helm.TENANT_CHART, namespace="kube-system", values={"csi": {"linstor": linstor}})
    deployment = helm.one(manifests, "Deployment", "tenant-cloud-csi-controller")
    driver = next(c for c in deployment["spec"]["template"]["spec"]["containers"] if c["name"] == "csi-driver")
    settings = linstor_settings_from(csi_main.build_parser().parse_args(driver["args"]))
    assert settings is not None and settings.locality == expected


def test_the_chart_schema_refuses_unknown_localities() -> None:
    with pytest.raises(helm.HelmError, match="locality"):
        helm.template(helm.TENANT_CHART, namespace="kube-system", values={"csi": {"linstor": {"locality": "always"}}})


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--linstor-url=ftp://ctrl"], "--linstor-url: LINSTOR controller 'ftp://ctrl': scheme must be one of"),
        (["--linstor-url=,"], "--linstor-url: Tuple should have at least 1 item"),
        (
            ["--linstor-url=ctrl", "--linstor-client-key=/k"],
            "--linstor-client-cert and --linstor-client-key go together",
        ),
        (["--linstor-url=ctrl", "--linstor-timeout=-5"], "--linstor-timeout: Input should be greater than 0"),
    ],
)
def test_bad_flags_are_named(argv: list[str], message: str) -> None:
    with pytest.raises(ValueError, match=r"^LINSTOR settings: ") as error:
        linstor_settings_from(parse(*argv))
    assert message in str(error.value) and "\n" not in str(error.value)


def test_tls_files_are_checked_at_start_up(tmp_path: Path) -> None:
    missing = linstor_settings_from(parse("--linstor-url=ctrl", f"--linstor-ca={tmp_path / 'ca.crt'}"))
    assert missing is not None
    with pytest.raises(ValueError, match=re.escape(f"--linstor-ca {tmp_path / 'ca.crt'}: no such file")):
        check_tls_files(missing)
    (tmp_path / "ca.crt").write_text("not a certificate\n")
    with pytest.raises(ValueError, match="the TLS files do not load"):
        check_tls_files(missing)
