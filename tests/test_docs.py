"""docs/rules.md is generated from the rule docstrings; this fails when it is stale."""

from click.testing import CliRunner

from conftest import REPO
from gradlint.cli import main
from gradlint.rule_registry import all_rules

SECTIONS = ("## What it flags", "## Why", "## Example", "## Use instead")


def test_rules_md_is_up_to_date():
    result = CliRunner().invoke(main, ["rules", "--output-format", "markdown"])
    assert result.exit_code == 0, result.output
    on_disk = (REPO / "docs" / "rules.md").read_text(encoding="utf-8")
    assert result.output == on_disk, (
        "docs/rules.md is stale: run `gradlint rules --output-format markdown > docs/rules.md`")


def test_every_rule_documents_the_same_sections():
    for rule in all_rules():
        for section in SECTIONS:
            assert section in rule.doc, f"{rule.code} lacks a '{section}' section"
        for option in rule.options:
            assert f"`{option}`" in rule.doc, f"{rule.code} does not document option {option}"


def test_rule_command_prints_the_docstring():
    result = CliRunner().invoke(main, ["rule", "saturating-activation-chain"])
    assert result.exit_code == 0
    assert result.output.startswith("GL101 saturating-activation-chain (error)")
    assert "## Why it hurts gradient flow" in result.output
