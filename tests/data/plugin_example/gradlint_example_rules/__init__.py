"""gradlint-example-rules: every module of this package not starting with "_" is a rule
(XMP101, XMP901). Keep this file cheap: gradlint imports it on every run, so no TensorFlow,
Keras or numpy at import time."""
