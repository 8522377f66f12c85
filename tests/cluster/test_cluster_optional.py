"""Without --replicas nothing of the cluster mode is imported: Ray is an optional dependency."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

SCRIPT = """
import sys, webui
from modules.settings import cmd_args
args = cmd_args.parse_args(["--data-dir", sys.argv[1], "--nowebui", "--skip-load-model-at-start"], environ={})
engine = webui.build_engine(args)
webui.create_app(engine, args)
bad = sorted(m for m in sys.modules if m == "ray" or m.startswith(("ray.", "modules.cluster")))
print("IMPORTED", bad)
"""


def test_ray_is_not_imported_without_replicas(tmp_path):
    out = subprocess.run([sys.executable, "-c", SCRIPT, str(tmp_path)], cwd=REPO, capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "IMPORTED []" in out.stdout


def test_flags_parse():
    from modules.settings import cmd_args

    args = cmd_args.parse_args(["--replicas", "4", "--ray-address", "10.0.0.5:6379"], environ={})
    assert (args.replicas, args.ray_address) == (4, "10.0.0.5:6379")
    assert cmd_args.parse_args([], environ={}).replicas == 0
