"""The rules as `gradlint rule` and `gradlint rules` print them: one rule's documentation as
text or JSON, the list as text, JSON or Markdown. `docs/rules.md` is the Markdown output
(`gradlint rules --output-format markdown`), generated from the rule docstrings so it cannot
drift. Every rule says where it comes from: built-in, or a plugin's distribution and version;
the catalog names plugins only when one is installed, so docs/rules.md stays the built-in
rules'."""

from __future__ import annotations

import json


def rule_as_dict(rule) -> dict:
    plugin = rule.plugin
    return {"code": rule.code, "name": rule.name, "severity": rule.severity,
            "summary": rule.summary, "groups": list(rule.groups),
            "aliases": list(rule.aliases), "options": rule.options,
            "probe": rule.probe, "origin": rule.origin,
            "plugin": plugin.to_dict() if plugin is not None else None,
            "documentation": rule.doc.strip()}


def _origin_sentence(rule) -> str:
    plugin = rule.plugin
    return (f"From the plugin {plugin.distribution} {plugin.version} (entry point "
            f"`{plugin.prefix} = {plugin.entry_point}`).")


def render_rule(rule, format: str) -> str:
    """One rule's documentation, severity and options (`gradlint rule`)."""
    if format == "json":
        return json.dumps(rule_as_dict(rule), indent=2) + "\n"
    title = f"{rule.code} {rule.name} ({rule.severity})"
    lines = [title, "=" * len(title), "", rule.doc.strip(), ""]
    if rule.aliases:
        lines.append(f"Aliases: {', '.join(rule.aliases)}")
    if rule.groups:
        lines.append(f"Groups: {', '.join(rule.groups)}")
    if rule.options:
        lines.append("Defaults: " + ", ".join(f"{k} = {v!r}" for k, v in rule.options.items()))
    lines.append(f"Origin: {rule.origin}" + (f" (plugin; entry point '{rule.plugin.prefix} = "
                                             f"{rule.plugin.entry_point}')"
                                             if rule.plugin is not None else ""))
    return "\n".join(lines).rstrip() + "\n"


def render_rules(rules, format: str) -> str:
    """Every rule (`gradlint rules`): a line each, JSON, or the Markdown catalog."""
    if format == "markdown":
        return render_catalog(rules)
    if format == "json":
        return json.dumps([rule_as_dict(rule) for rule in rules], indent=2) + "\n"
    width = max(len(rule.name) for rule in rules)
    code_width = max(len(rule.code) for rule in rules)
    origin_width = max(len(rule.origin) for rule in rules)
    return "".join(f"{rule.code:<{code_width}}  {rule.name:<{width}}  {rule.severity:<7}  "
                   f"{rule.origin:<{origin_width}}  {rule.summary}\n"
                   for rule in rules)


def _anchor(rule) -> str:
    return f"{rule.code.lower()}-{rule.name}"


def render_catalog(rules) -> str:
    lines = [
        "# gradlint rules",
        "",
        "Generated from the rule modules' docstrings by "
        "`gradlint rules --output-format markdown > docs/rules.md`; do not edit by hand.",
        "",
        "Select rules by code (`GL101`), code prefix (`GL1`), name "
        "(`saturating-activation-chain`), alias or group; see the README.",
        "",
    ]
    plugins = any(rule.plugin is not None for rule in rules)
    if plugins:
        lines += ["| code | name | default severity | groups | origin | summary |",
                  "|---|---|---|---|---|---|"]
    else:
        lines += ["| code | name | default severity | groups | summary |",
                  "|---|---|---|---|---|"]
    for rule in rules:
        origin = f" {rule.origin} |" if plugins else ""
        lines.append(f"| [{rule.code}](#{_anchor(rule)}) | `{rule.name}` | {rule.severity} | "
                     f"{', '.join(rule.groups)} |{origin} {rule.summary} |")
    for rule in rules:
        doc = rule.doc.strip().splitlines()
        body = "\n".join(line.replace("## ", "#### ", 1) if line.startswith("## ") else line
                         for line in doc[1:]).strip()
        lines += ["", f"## {rule.code} {rule.name}", "", f"**{doc[0].strip()}**", "",
                  f"Default severity: {rule.severity}."
                  + (f" Aliases: {', '.join(f'`{a}`' for a in rule.aliases)}." if rule.aliases else "")
                  + (" Runs only with `--probe`." if rule.probe else "")
                  + (" " + _origin_sentence(rule) if rule.plugin is not None else ""),
                  ""]
        if rule.options:
            lines.append("Options (under `[tool.gradlint.rules." + rule.code + "]`): "
                         + ", ".join(f"`{k} = {v!r}`" for k, v in rule.options.items()) + ".")
            lines.append("")
        lines.append(body)
    return "\n".join(lines).rstrip() + "\n"
