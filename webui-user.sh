#!/usr/bin/env bash
# Your launch settings, read by webui.sh (through tools/setup_env.sh) before anything else.
# Uncomment a line and change it; values already set in the environment win only if you
# keep the line commented. Same variable names as AUTOMATIC1111's webui-user.sh.

# Flags for webui.py, as on the command line (run `./webui.sh --help` for the list), e.g.
#   export COMMANDLINE_ARGS="--listen --gradio-auth me:secret --api --api-auth me:secret"
#export COMMANDLINE_ARGS=""

# Python used to create the virtual environment.
#python_cmd="python3"

# Where the virtual environment lives (relative to this folder, or absolute).
#venv_dir=".venv"

# How torch is installed the first time (CPU build by default). For an NVIDIA GPU, e.g.:
#   export TORCH_COMMAND="pip install torch==2.13.0 --index-url https://download.pytorch.org/whl/cu128"
#export TORCH_COMMAND="pip install torch==2.13.0"

# webui.py reads COMMANDLINE_ARGS from the environment: make sure a plain assignment above reaches it.
if [ -n "${COMMANDLINE_ARGS+x}" ]; then
    export COMMANDLINE_ARGS
fi
