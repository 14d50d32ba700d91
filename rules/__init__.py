"""gradlint's rules, one module each. A module's docstring is the rule's documentation; the
registry (`gradlint.rule_registry`) discovers every module in this package."""
