"""A1111's ``modules.launch_utils``: the same helpers as the top-level ``launch``. A thin facade."""
from modules.scripting.a1111_launch import (  # noqa: F401
    args, python, git, index_url, dir_repos, is_installed, run, run_pip, check_run_python, git_tag, commit_hash,
    repo_dir, git_clone,
)
