"""Take a screenshot of a gradlint HTML report for the README, in headless Chromium.

    python docs/screenshot.py report.html                 # an existing report
    python docs/screenshot.py models/a.keras models/b.h5  # lint these models first
    python docs/screenshot.py --demo --probe              # build demo models, lint and probe them
    python docs/screenshot.py --demo --probe --big --width 1400 --full-page --output /tmp/all.png

Writes docs/report.png (``--output`` to change it): the first ``--height`` pixels of the page
in a window ``--width`` wide, or the whole page with ``--full-page``; ``--dark`` for the dark
colour scheme; ``--big`` adds a demo model of 216 layers in four stages. Needs selenium,
/usr/bin/chromium and /usr/bin/chromedriver (Debian's chromium and chromium-driver
packages); the demo also needs Keras.
"""

from __future__ import annotations

import argparse
import base64
import os
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"


def start_browser(width: int, height: int, profile: str):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in ("--headless", "--no-sandbox", "--disable-gpu",
                     "--disable-background-networking", "--disable-component-update",
                     "--no-first-run", "--hide-scrollbars", f"--user-data-dir={profile}",
                     f"--window-size={width},{height}", "--force-device-scale-factor=1"):
        options.add_argument(argument)
    return webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)


def build_demo_models(directory: Path, big: bool = False) -> list[Path]:
    """Three small models: a deep sigmoid stack, a recurrent model, and a healthy ReLU net;
    with `big`, a fourth of 216 layers in four stages (stage1_block1_dense, ...)."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import keras

    layers = keras.layers
    deep = keras.Sequential([keras.Input((64,))]
                            + [layers.Dense(64, activation="sigmoid", name=f"hidden_{i}")
                               for i in range(1, 11)]
                            + [layers.Dense(10, activation="softmax", name="classifier")],
                            name="deep_sigmoid")
    recurrent = keras.Sequential([keras.Input((80, 16)), layers.SimpleRNN(32, name="rnn"),
                                  layers.Dense(1, name="score")], name="sequence_scorer")
    recurrent.compile(optimizer=keras.optimizers.SGD(learning_rate=0.5), loss="mse")
    healthy = keras.Sequential([keras.Input((32,))]
                               + [layers.Dense(64, activation="relu",
                                               kernel_initializer="he_normal",
                                               name=f"dense_{i}") for i in range(1, 5)]
                               + [layers.Dense(1, name="head")], name="relu_he")
    models = [(deep, "deep_sigmoid.keras"), (recurrent, "sequence_scorer.keras"),
              (healthy, "relu_he.keras")]
    if big:
        inputs = x = keras.Input((16,))
        for stage in range(1, 5):
            for block in range(1, 28):
                x = layers.Dense(16, activation="tanh", name=f"stage{stage}_block{block}_dense")(x)
                x = layers.LayerNormalization(name=f"stage{stage}_block{block}_norm")(x)
        models.append((keras.Model(inputs, layers.Dense(1, name="head")(x), name="staged"),
                       "staged_216.keras"))
    paths = []
    for model, name in models:
        path = directory / name
        model.save(path)
        paths.append(path)
    return paths


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("inputs", nargs="*", help="an HTML report, or model files to lint")
    parser.add_argument("--demo", action="store_true", help="build and lint demo models")
    parser.add_argument("--output", default=str(HERE / "report.png"))
    parser.add_argument("--width", type=int, default=1100)
    parser.add_argument("--height", type=int, default=1720)
    parser.add_argument("--dark", action="store_true", help="use the dark colour scheme")
    parser.add_argument("--probe", action="store_true",
                        help="also run the probe, to chart measured gradients (needs Keras)")
    parser.add_argument("--big", action="store_true",
                        help="with --demo, add a model of 216 layers in four stages")
    parser.add_argument("--full-page", action="store_true",
                        help="the whole page, not only the first --height pixels")
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="gradlint-screenshot-") as scratch:
        scratch_path = Path(scratch)
        if len(args.inputs) == 1 and args.inputs[0].lower().endswith((".html", ".htm")):
            page = Path(args.inputs[0]).resolve()
        else:
            import gradlint
            from gradlint.renderers import render

            models = [Path(p) for p in args.inputs]
            if args.demo:
                os.chdir(scratch_path)
                models = [p.relative_to(scratch_path)
                          for p in build_demo_models(scratch_path, big=args.big)]
            if not models:
                parser.error("give an HTML report, model files, or --demo")
            page = scratch_path / "report.html"
            report = gradlint.lint([str(p) for p in models], probe=args.probe or None)
            page.write_text(render("html", report), encoding="utf-8")
        driver = start_browser(args.width, args.height, str(scratch_path / "profile"))
        try:
            if args.dark:
                driver.execute_cdp_cmd("Emulation.setEmulatedMedia", {
                    "features": [{"name": "prefers-color-scheme", "value": "dark"}]})
            driver.get(page.as_uri())
            if args.full_page:
                height = driver.execute_script("return document.documentElement.scrollHeight")
                shot = driver.execute_cdp_cmd("Page.captureScreenshot", {
                    "format": "png", "captureBeyondViewport": True,
                    "clip": {"x": 0, "y": 0, "width": args.width, "height": height, "scale": 1}})
                Path(args.output).write_bytes(base64.b64decode(shot["data"]))
            else:
                driver.save_screenshot(args.output)
        finally:
            driver.quit()
    size = os.path.getsize(args.output)
    print(f"wrote {args.output} ({size // 1024} KB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
