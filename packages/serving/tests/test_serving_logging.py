"""The JSON logs carry no third-party noise, and ``verticals up`` wraps plain lines."""

from __future__ import annotations

import json
import logging
import subprocess
import sys

from verticals.serving.suite import as_json_line

NOISY = """
import logging, warnings
from verticals.serving.logging import configure_logging
configure_logging("INFO", "svc")
bm25s = logging.getLogger("bm25s")
bm25s.setLevel(logging.DEBUG)  # what bm25s does when imported
bm25s.debug("Building index from tokens")
bm25s.warning("a real bm25s problem")
warnings.warn_explicit(
    "deprecated", FutureWarning, "modeling_utils.py", 1, "transformers.modeling_utils"
)
warnings.warn("a warning of ours")
logging.warning("Please consider to run pre-processing before quantization.")
logging.getLogger("verticals.x").info("kept")
"""


def test_third_party_noise_is_silenced_and_the_rest_is_json() -> None:
    # the onnxruntime notice comes from a module-level logging.warning() in its quantizer: a
    # record with onnxruntime's path, made here by compiling the call under that file name
    code = NOISY.replace(
        'logging.warning("Please',
        "exec(compile('logging.warning(\"Please",
    ).replace(
        'quantization.")\n',
        'quantization.")\', "/x/onnxruntime/quantization/quantize.py", "exec"))\n',
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stderr
    lines = [json.loads(line) for line in out.splitlines()]  # every line is JSON
    messages = " ".join(entry["msg"] for entry in lines)
    assert "Building index" not in messages and "pre-processing" not in messages
    assert "deprecated" not in messages
    assert "a real bm25s problem" in messages and "kept" in messages
    assert "a warning of ours" in messages
    assert all(entry["service"] == "svc" for entry in lines)


def test_the_suite_wraps_plain_lines_into_json() -> None:
    text, level = as_json_line("news", "demo: verticals news produce x.jsonl\n")
    entry = json.loads(text)
    assert level is None and entry["msg"] == "demo: verticals news produce x.jsonl"
    assert entry["service"] == "news" and entry["level"] == "INFO"
    record = json.dumps({"level": "ERROR", "msg": "boom"})
    assert as_json_line("news", record + "\n") == (record, "ERROR")
    assert logging.getLevelName("ERROR") == logging.ERROR
