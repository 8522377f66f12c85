"""A1111's top-level ``launch`` module, for extensions' ``install.py`` (``launch.run_pip``, ``launch.is_installed``,
``launch.git_tag``, ``launch.args``...). Start the app with ``webui.py``. A thin facade; the code lives in
``modules.scripting.a1111_launch``."""
from modules.scripting.a1111_launch import (  # noqa: F401
    args, python, git, index_url, dir_repos, is_installed, run, run_pip, check_run_python, git_tag, commit_hash,
    repo_dir, git_clone,
)
