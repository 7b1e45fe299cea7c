"""``smsflow apply`` against a real broker: publish, skip unchanged, revise, all or nothing."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from schemas.definitions import DefinitionApplied
from schemas.topics import DEFINITIONS
from services.common.settings import KafkaSettings
from services.control.apply import apply_paths
from services.control.plan import content_hash
from tests.samples import DESIGN_DOCUMENTS
from tests.support import read_all, read_models

pytestmark = pytest.mark.integration


def run(settings: KafkaSettings, path: Path) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = apply_paths(settings, [path], out=out, err=err, timeout_s=20)
    return code, out.getvalue(), err.getvalue()


def test_apply_publishes_skips_unchanged_revises_and_is_all_or_nothing(
    kafka_settings: KafkaSettings, tmp_path: Path
) -> None:
    file = tmp_path / "acme.yaml"
    file.write_text(DESIGN_DOCUMENTS)

    code, out, err = run(kafka_settings, file)
    assert (code, err) == (0, "")
    assert out.count("created (revision 1)") == 3
    first = read_models(kafka_settings, DEFINITIONS, DefinitionApplied)
    assert [e.document.kind for e in first] == ["Account", "SmsMessage", "Workflow"]
    assert [e.key for e in first] == [
        "Account:acme:acme",
        "SmsMessage:acme:welcome",
        "Workflow:acme:welcome-flow",
    ]
    assert all(e.content_hash == content_hash(e.document) for e in first)

    code, out, _ = run(kafka_settings, file)
    assert code == 0
    assert out.count("unchanged") == 3
    assert len(read_all(kafka_settings, DEFINITIONS)) == 3

    file.write_text(
        DESIGN_DOCUMENTS.replace("{type: delay, minutes: 5}", "{type: delay, hours: 1}")
    )
    code, out, _ = run(kafka_settings, file)
    assert code == 0
    assert "Workflow acme/welcome-flow configured (revision 2)" in out
    records = read_all(kafka_settings, DEFINITIONS)
    assert len(records) == 4
    latest = read_models(kafka_settings, DEFINITIONS, DefinitionApplied)[-1]
    assert (latest.key, latest.revision) == ("Workflow:acme:welcome-flow", 2)

    # One invalid document (a draft chosen by Send SMS) and a valid change: nothing is published.
    broken = DESIGN_DOCUMENTS.replace("state: published", "state: draft").replace(
        "Ticked the SMS box", "Ticked the box"
    )
    file.write_text(broken)
    code, _, err = run(kafka_settings, file)
    assert code == 1
    assert "is a draft" in err
    assert "nothing was published" in err
    assert read_all(kafka_settings, DEFINITIONS) == records


def test_references_may_point_to_documents_published_earlier(
    kafka_settings: KafkaSettings, tmp_path: Path
) -> None:
    account, message, workflow = DESIGN_DOCUMENTS.split("\n---\n")
    (tmp_path / "a.yaml").write_text(account + "\n---\n" + message)
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "w.yaml").write_text(workflow)
    assert run(kafka_settings, tmp_path / "b")[0] == 1  # the account is not there yet
    assert run(kafka_settings, tmp_path / "a.yaml")[0] == 0
    code, out, err = run(kafka_settings, tmp_path / "b")
    assert (code, err) == (0, "")
    assert "Workflow acme/welcome-flow created (revision 1)" in out


def test_an_unreachable_broker_exits_3(tmp_path: Path) -> None:
    file = tmp_path / "acme.yaml"
    file.write_text(DESIGN_DOCUMENTS)
    settings = KafkaSettings(kafka_bootstrap_servers="127.0.0.1:9")
    code, _, _ = run(settings, file)
    assert code == 3


def test_a_dry_run_validates_and_reports_but_publishes_nothing(
    kafka_settings: KafkaSettings, tmp_path: Path
) -> None:
    file = tmp_path / "acme.yaml"
    file.write_text(DESIGN_DOCUMENTS)
    out = io.StringIO()
    code = apply_paths(kafka_settings, [file], dry_run=True, out=out, err=io.StringIO())
    assert code == 0
    assert "Workflow acme/welcome-flow created (revision 1) (dry run)" in out.getvalue()
    assert read_all(kafka_settings, DEFINITIONS) == []


def test_a_change_that_would_strand_contacts_is_refused_against_the_published_workflow(
    kafka_settings: KafkaSettings, tmp_path: Path
) -> None:
    everything = tmp_path / "acme.yaml"
    everything.write_text(DESIGN_DOCUMENTS)
    assert run(kafka_settings, everything)[0] == 0
    records = read_all(kafka_settings, DEFINITIONS)

    # The enabled workflow is published already; only the message is applied, as a draft.
    message = DESIGN_DOCUMENTS.split("\n---\n")[1]
    draft = tmp_path / "draft.yaml"
    draft.write_text(message.replace("state: published", "state: draft"))
    code, _, err = run(kafka_settings, draft)
    assert code == 1
    assert "(SmsMessage acme/welcome): spec.state:" in err
    assert "sent by enabled Workflow acme/welcome-flow" in err
    assert "fix: keep spec.state: published" in err
    assert read_all(kafka_settings, DEFINITIONS) == records
