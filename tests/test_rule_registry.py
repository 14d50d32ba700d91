"""The rule contract the registry enforces when a rule module loads: a static rule about
gradient flow says how the probe judges it, so a new one never goes without a verdict by
oversight, and probe rules say what they measure."""

from __future__ import annotations

import types

import pytest

from gradlint.rule_registry import _load, all_rules


def _module(**attributes) -> types.ModuleType:
    module = types.ModuleType("gradlint.rules.example")
    module.__doc__ = "Example rule.\n\n## What it flags\nNothing."
    for name, value in {"CODE": "GL199", "NAME": "example-rule", "SEVERITY": "warning",
                        "PRECISION": "medium", "GROUPS": ("vanishing",), "check": lambda analysis, options: [],
                        **attributes}.items():
        setattr(module, name, value)
    return module


def _confirm(finding, measurements, options):
    return None


def test_a_flow_rule_without_a_verdict_is_refused():
    with pytest.raises(RuntimeError, match="must say how the probe judges it"):
        _load(_module())


def test_claims_need_a_confirm_function():
    with pytest.raises(RuntimeError, match="come with confirm"):
        _load(_module(CLAIMS="vanishing"))
    with pytest.raises(RuntimeError, match="CLAIMS must be one of"):
        _load(_module(CLAIMS="sideways", confirm=_confirm))


def test_a_rule_that_declares_its_verdict_loads():
    rule = _load(_module(CLAIMS="vanishing", confirm=_confirm))
    assert rule.claims == "vanishing" and rule.confirm is _confirm
    assert _load(_module(CLAIMS=None)).confirm is None  # said explicitly: no verdict
    assert _load(_module(GROUPS=("architecture",))).claims is None  # not about flow


def test_measures_is_for_probe_rules():
    with pytest.raises(RuntimeError, match="MEASURES is for probe rules"):
        _load(_module(CLAIMS=None, MEASURES="vanishing"))
    assert _load(_module(PROBE=True, MEASURES="vanishing")).measures == "vanishing"


def test_every_shipped_flow_rule_has_a_verdict_or_says_why_not():
    for rule in all_rules():
        if rule.probe:
            continue
        if rule.claims is not None:
            assert callable(rule.confirm), rule.code
    static_claims = {rule.code for rule in all_rules() if rule.claims}
    assert static_claims == {"GL101", "GL103", "GL201", "GL202", "GL203", "GL204", "GL205",
                             "GL206", "GL207", "GL301", "GL302", "GL401"}
    assert {rule.code: rule.measures for rule in all_rules() if rule.measures} == \
        {"GL901": "vanishing", "GL902": "exploding", "GL905": "recurrent"}


def test_precision_is_declared_by_the_rule():
    module = _module(PRECISION="certain")
    with pytest.raises(RuntimeError, match="PRECISION must be one of"):
        _load(module)
