"""``tapwire web-push-key`` and ``tapwire accounts client-sdk --web-push-key``: the key an account publishes to the
Web SDK is the public half of messaging's VAPID signing key, the one source of web push keys."""

from __future__ import annotations

from pathlib import Path

import pytest

from tapwire_core.control.bootstrap import DEMO_ACCOUNT_ID
from tapwire_services.cli import main


def test_the_web_push_key_an_account_publishes_is_the_public_half_of_messaging_s_vapid_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("TAPWIRE_DATA_DIR", str(tmp_path))
    key_file = tmp_path / "vapid.pem"
    assert main(["web-push-key", "--create", "--key", str(key_file)]) == 0
    public_key = capsys.readouterr().out.strip()
    assert main(["accounts", "reset-demo"]) == 0
    capsys.readouterr()
    monkeypatch.setenv("TAPWIRE_VAPID_KEY_FILE", str(key_file))

    other = main(["web-push-key", "--create", "--key", str(tmp_path / "other.pem")])
    other_key = capsys.readouterr().out.strip()
    assert other == 0 and other_key != public_key
    # Browsers subscribed with another key could never be sent to: refused, and nothing is changed.
    assert main(["accounts", "client-sdk", DEMO_ACCOUNT_ID, "--web-push-key", other_key]) == 1
    assert "is not the public key of TAPWIRE_VAPID_KEY_FILE" in capsys.readouterr().err
    assert main(["accounts", "client-sdk", DEMO_ACCOUNT_ID]) == 0
    assert "web push off" in capsys.readouterr().out

    assert main(["accounts", "client-sdk", DEMO_ACCOUNT_ID, "--web-push-key", public_key]) == 0
    assert "web push on" in capsys.readouterr().out
    assert main(["accounts", "client-sdk", DEMO_ACCOUNT_ID, "--web-push-key", ""]) == 0
    assert "web push off" in capsys.readouterr().out
