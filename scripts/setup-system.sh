#!/usr/bin/env bash
# Install the Debian packages the project needs (QGIS, build tools for rasterio/shapely, Xvfb),
# only when something is missing: a second run costs a dpkg query.
set -euo pipefail

packages=(qgis python3-qgis qgis-providers python3-scipy xvfb xauth python3-venv python3-dev gcc g++ libgdal-dev libgeos-dev
          debootstrap)  # debootstrap: the QGIS 3.40 root file system of `make test-qgis340` (scripts/qgis340.sh)

absent=()
for package in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || absent+=("$package")
done
if ! /usr/bin/python3 -c "import qgis.core" 2>/dev/null; then
    echo "QGIS's Python bindings are not importable from /usr/bin/python3."
fi
if [ ${#absent[@]} -eq 0 ] && /usr/bin/python3 -c "import qgis.core" 2>/dev/null; then
    echo "system packages: all present"
    exit 0
fi

if [ ! -r /etc/debian_version ]; then
    echo "This setup installs Debian 12 packages; on another system install: ${packages[*]}" >&2
    exit 1
fi
sudo=()
if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null || { echo "Installing ${absent[*]} needs root: run 'make setup' as root." >&2; exit 1; }
    sudo=(sudo)
fi
echo "installing: ${absent[*]:-python3-qgis}"
"${sudo[@]}" apt-get update -qq
DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq --no-install-recommends "${packages[@]}"
