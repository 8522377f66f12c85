# Sourced by webui.sh and run_tests.sh: make .venv and install what the project needs.
# Only registry packages are installed; nothing else is downloaded.
# Honours (as A1111 does): python_cmd, venv_dir, TORCH_COMMAND, and an optional webui-user.sh.

if [ -f webui-user.sh ]; then
    # shellcheck disable=SC1091
    source webui-user.sh
fi

python_cmd="${python_cmd:-python3}"
venv_dir="${venv_dir:-.venv}"
# CPU builds are the default; a CUDA user sets e.g.
# TORCH_COMMAND="pip install torch==2.13.0 --index-url https://download.pytorch.org/whl/cu128"
TORCH_COMMAND="${TORCH_COMMAND:-pip install torch==2.13.0}"
extras="${SETUP_EXTRAS:-}"
# Installed without their declared requirements: spandrel (model upscalers) asks for torchvision, whose
# wheels pin one torch build and would replace the torch chosen above; the architectures we use do not
# need it (modules/upscalers.py: import_spandrel). Its other requirements are in pyproject.toml.
NO_DEPS_PACKAGES="spandrel==0.4.2"
# The tests use k-diffusion (MIT) as the reference for A1111's samplers; its declared requirements are a training
# stack (torchvision, clip, wandb, ...) that the tests never import (tests/kdiffusion_ref.py loads its sampling
# module directly), so it is installed without them, with the test extra only.
case "${extras}" in *test*) NO_DEPS_PACKAGES="${NO_DEPS_PACKAGES} k-diffusion==0.1.1.post1" ;; esac

if [ ! -x "${venv_dir}/bin/python" ]; then
    echo "Creating virtual environment in ${venv_dir}"
    "${python_cmd}" -m venv "${venv_dir}" || { echo "Could not create ${venv_dir} with ${python_cmd}" >&2; exit 1; }
fi
# shellcheck disable=SC1091
source "${venv_dir}/bin/activate"

# A stamp of everything that decides the install, so that a launch with nothing new is instant.
stamp_src="$(cat pyproject.toml; echo "${TORCH_COMMAND}"; echo "${extras}"; echo "${NO_DEPS_PACKAGES}")"
stamp="${venv_dir}/.installed-$(printf '%s' "${stamp_src}" | sha256sum | cut -c1-16)"
if [ ! -f "${stamp}" ]; then
    python -m pip install --quiet --upgrade pip >/dev/null 2>&1 || true
    if ! python -c "import torch" >/dev/null 2>&1; then
        echo "Installing torch: ${TORCH_COMMAND}"
        ${TORCH_COMMAND} || { echo "torch install failed: ${TORCH_COMMAND}" >&2; exit 1; }
    fi
    echo "Installing the project and its requirements"
    python -m pip install --quiet -e ".${extras}" || { echo "pip install of the project failed" >&2; exit 1; }
    # shellcheck disable=SC2086
    python -m pip install --quiet --no-deps ${NO_DEPS_PACKAGES} || { echo "pip install of ${NO_DEPS_PACKAGES} failed" >&2; exit 1; }
    rm -f "${venv_dir}"/.installed-*
    touch "${stamp}"
fi

export HF_HUB_OFFLINE=1
export TRANSFORMERS_OFFLINE=1
export HF_HUB_DISABLE_TELEMETRY=1
