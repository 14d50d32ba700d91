"""The rule catalog as Markdown: `docs/rules.md` is this output (`gradlint rules
--output-format markdown`), generated from the rule docstrings so it cannot drift."""

from __future__ import annotations


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
        "| code | name | default severity | groups | summary |",
        "|---|---|---|---|---|",
    ]
    for rule in rules:
        lines.append(f"| [{rule.code}](#{_anchor(rule)}) | `{rule.name}` | {rule.severity} | "
                     f"{', '.join(rule.groups)} | {rule.summary} |")
    for rule in rules:
        doc = rule.doc.strip().splitlines()
        body = "\n".join(line.replace("## ", "#### ", 1) if line.startswith("## ") else line
                         for line in doc[1:]).strip()
        lines += ["", f"## {rule.code} {rule.name}", "", f"**{doc[0].strip()}**", "",
                  f"Default severity: {rule.severity}."
                  + (f" Aliases: {', '.join(f'`{a}`' for a in rule.aliases)}." if rule.aliases else "")
                  + (" Runs only with `--probe`." if rule.probe else ""),
                  ""]
        if rule.options:
            lines.append("Options (under `[tool.gradlint.rules." + rule.code + "]`): "
                         + ", ".join(f"`{k} = {v!r}`" for k, v in rule.options.items()) + ".")
            lines.append("")
        lines.append(body)
    return "\n".join(lines).rstrip() + "\n"
