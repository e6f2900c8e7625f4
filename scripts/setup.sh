#!/usr/bin/env bash
# Create .venv with napari-segnet installed.
#   scripts/setup.sh          the library and the command line
#   scripts/setup.sh test     plus napari (PyQt6), the test tools and, as root on Debian,
#                             the X virtual frame buffer and the Qt/OpenGL system libraries
set -euo pipefail
cd "$(dirname "$0")/.."
extras="${1:-}"
python="${PYTHON:-$(command -v python3.11 || command -v python3)}"
new_enough() { "$1" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; }
if ! new_enough "$python"; then
    echo "napari-segnet needs Python 3.11 or newer: set PYTHON=/path/to/python3.11." >&2
    exit 1
fi
if [ -x .venv/bin/python ] && ! new_enough .venv/bin/python; then
    echo ".venv has a Python older than 3.11: remove .venv and run this again." >&2
    exit 1
fi

apt_install() {
    local missing=()
    for package in "$@"; do
        dpkg -s "$package" >/dev/null 2>&1 || missing+=("$package")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then
        echo "Please install these system packages first: ${missing[*]}" >&2
        return 1
    fi
    echo "Installing system packages: ${missing[*]}" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y -qq "${missing[@]}" >/dev/null \
        || { apt-get update -qq && apt-get install -y -qq "${missing[@]}" >/dev/null; }
}

if [ "$extras" = test ] || [ "$extras" = gui ]; then
    apt_install xvfb xauth libegl1 libgl1 libgl1-mesa-dri libfontconfig1 libdbus-1-3 libglib2.0-0 \
        libxkbcommon-x11-0 libxcb-cursor0 libxcb-icccm4 libxcb-image0 libxcb-keysyms1 \
        libxcb-render-util0 libxcb-shape0 libxcb-xinerama0 libxcb-randr0
fi

if [ ! -x .venv/bin/python ]; then
    "$python" -m venv .venv 2>/dev/null || { apt_install python3-venv && "$python" -m venv .venv; }
fi
pip=(.venv/bin/python -m pip install --quiet --disable-pip-version-check)
# torch and torchvision from the package index, as a matched pair.
.venv/bin/python -c "import torch, torchvision" 2>/dev/null || "${pip[@]}" torch torchvision
"${pip[@]}" ".${extras:+[$extras]}"
.venv/bin/python -c "import torch, torchvision" \
    || { echo "torch/torchvision do not import; see the messages above." >&2; exit 1; }
echo "Set up .venv ($(.venv/bin/napari-segnet --version))." >&2
