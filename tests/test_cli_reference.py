"""The CLI reference in docs/cli.md is generated from --help and must be in step with it."""

from pipelines.cli_reference import DOC, render_reference


def test_cli_reference_is_current():
    assert DOC.exists(), "run `python -m pipelines.cli_reference`"
    stale = "docs/cli.md is stale: run `python -m pipelines.cli_reference`"
    assert DOC.read_text() == render_reference(), stale


def test_every_command_has_help_text():
    text = render_reference()
    assert "conrdata" in text and "conrmodel" in text
