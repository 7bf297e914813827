#!/usr/bin/env bash
# QGIS 3.40 LTR for the tests: a Debian 13 (trixie) root file system under .build/qgis340/rootfs, with Debian's
# QGIS 3.40 (Python 3.13, numpy 2) and the plugin's dependencies, run under chroot with this checkout bind-mounted
# at the same path (so the paths the tests compute hold inside) and ../shared read-only beside it.
#
#   scripts/qgis340.sh build          make the root file system once (stamps; a second run costs nothing)
#   scripts/qgis340.sh run CMD...     run CMD in the checkout inside it (QGIS offscreen, the plugin link of make setup)
#   scripts/qgis340.sh test [ARGS]    pytest ARGS (default: every tier, tests/) inside it
#   scripts/qgis340.sh shell          an interactive shell inside it
#   scripts/qgis340.sh clean          delete it (refused while anything is mounted in it)
#
# Needs root (chroot, mount) and debootstrap (`make system` installs it). Everything mounted is unmounted on exit,
# failure included; the root file system is never deleted while something is mounted in it.
set -euo pipefail

repo=$(cd -P "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
shared=$(cd -P "$repo/.." && pwd)/shared
base=$repo/.build/qgis340
rootfs=$base/rootfs
suite=trixie
mirror=${QGIS340_MIRROR:-http://deb.debian.org/debian}

# Debian 13's packages: QGIS 3.40, and what the plugin and its tests take from Debian there (numpy 2, GDAL, GEOS and
# the modules built against them: never replaced by wheels, see ENVIRONMENT.md trap 3).
apt_packages=(qgis python3-qgis qgis-providers python3-shapely python3-rasterio python3-scipy python3-skimage
  python3-requests python3-networkx python3-pip python3-gdal ca-certificates git procps)  # git: scripts/package.py; procps: pgrep (tests)
# affine 3 as constraints.txt pins it (the tests use its @), beside Debian's 2.4 (no RECORD: pip cannot uninstall it).
pip_beside_debian=(affine==3.0.1)
# From PyPI, pinned as requirements*.txt pins them: what Debian 13 lacks (onnxruntime) or the tests pin.
pip_packages=(onnxruntime==1.31.1 onnx==1.23.2 pytest==9.2.0 pytest-qgis==5.0.2 pytest-qt==4.5.0 "moto[s3]==5.2.5"
  flask==3.1.3 flask-cors==6.0.5 boto3==1.44.5 "dask[distributed]==2026.8.0" ruff==0.17.5)

say() { echo "qgis340: $*" >&2; }
die() { say "$*"; exit 1; }

[ "$(id -u)" -eq 0 ] || die "needs root (chroot and mount): run it as root"

mounted_in_rootfs() { findmnt -rn -o TARGET | awk -v r="$rootfs" 'index($0, r) == 1' | sort -r; }

# ---------------------------------------------------------------------------------------------------- mounts
mounts=()
unmount_all() {
  local i
  for ((i = ${#mounts[@]} - 1; i >= 0; i--)); do
    umount "${mounts[i]}" 2>/dev/null || umount -l "${mounts[i]}" 2>/dev/null || say "could not unmount ${mounts[i]}"
  done
  mounts=()
}
trap unmount_all EXIT
trap 'exit 130' INT TERM

mount_at() {  # mount_at TARGET mount-arguments...
  local target=$1; shift
  [ -e "$target" ] || mkdir -p "$target"
  mount "$@" "$target"
  mounts+=("$target")
}

bind_ro() {  # bind_ro SOURCE TARGET
  mount_at "$2" --bind "$1"
  mount -o remount,bind,ro "$2"
}

mount_system() {  # what any command inside needs: /proc, a small /dev, /sys read-only, resolv.conf
  mount_at "$rootfs/proc" -t proc proc
  bind_ro /sys "$rootfs/sys"
  mount_at "$rootfs/dev" -t tmpfs -o mode=755,nosuid tmpfs
  local node
  for node in null zero full random urandom tty; do
    touch "$rootfs/dev/$node"
    mount_at "$rootfs/dev/$node" --bind "/dev/$node"
  done
  mount_at "$rootfs/dev/shm" -t tmpfs -o mode=1777,nosuid,nodev tmpfs
  mount_at "$rootfs/dev/pts" -t devpts -o newinstance,ptmxmode=0666 devpts
  ln -sfn pts/ptmx "$rootfs/dev/ptmx"
  ln -sfn /proc/self/fd "$rootfs/dev/fd"
  cp -L /etc/resolv.conf "$rootfs/etc/resolv.conf" 2>/dev/null || true
}

mount_checkout() {  # the checkout read-write at its own path, ../shared read-only beside it, the host venv hidden
  mount_at "$rootfs$repo" --bind "$repo"
  if [ -d "$shared" ]; then bind_ro "$shared" "$rootfs$shared"; fi
  # The host's .venv (Python 3.11 wheels) must not leak in: an empty read-only folder over it.
  if [ -d "$repo/.venv" ]; then mount_at "$rootfs$repo/.venv" -t tmpfs -o ro,size=1m tmpfs; fi
  # pytest-qgis writes its QGIS profile to <rootdir>/.qgis-settings: 3.40's apart from the host's 3.22 one
  mkdir -p "$repo/.qgis-settings" "$base/qgis-settings"
  mount_at "$rootfs$repo/.qgis-settings" --bind "$base/qgis-settings"
}

# The training Python (model adaptation: PyTorch, onnx) is a separate interpreter the user names, whatever QGIS's
# Python is. Debian 13 has no CPU build of torch 2.13 for its Python 3.13 and download.pytorch.org is out of reach here
# (PyPI's builds pull several GB of CUDA), so the tests on 3.40 train with the training/.venv that `make setup` builds
# from this machine's Python 3.11: that interpreter and its standard library are bind-mounted read-only at their own
# paths, and a small environment under .build/qgis340 made from it puts training/.venv's packages on its path.
host_python=/usr/bin/python3.11
training_venv=$repo/training/.venv
training_shim=$base/training-python

make_training_shim() {  # the environment the tests name as the training Python (tests/support/training_python.py)
  if [ ! -x "$host_python" ] || [ ! -d "$training_venv/lib/python3.11/site-packages" ]; then
    say "no training Python for the adaptation tests: they need $host_python and $training_venv (make setup)"
    return 0
  fi
  if [ ! -e "$training_shim/pyvenv.cfg" ]; then
    rm -rf "$training_shim"
    "$host_python" -m venv --without-pip "$training_shim"
  fi
  # an import line, so training/.venv's own .pth files are read too (site.addsitedir), as in that environment
  echo "import site; site.addsitedir('$training_venv/lib/python3.11/site-packages')" \
    > "$training_shim/lib/python3.11/site-packages/spacenet-training-venv.pth"
}

mount_training_python() {
  [ -e "$training_shim/pyvenv.cfg" ] || return 0
  bind_ro "$(dirname "$host_python")/../lib/python3.11" "$rootfs/usr/lib/python3.11"
  [ -e "$rootfs$host_python" ] || touch "$rootfs$host_python"
  bind_ro "$host_python" "$rootfs$host_python"
}

in_root() { chroot "$rootfs" /usr/bin/env -i HOME=/root PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
  LANG=C.UTF-8 DEBIAN_FRONTEND=noninteractive "$@"; }

# ---------------------------------------------------------------------------------------------------- build
lock() {  # one build, run or clean at a time: each mounts and unmounts the same places
  mkdir -p "$base"
  exec 9>"$base/lock"
  flock -n 9 || { say "waiting for another scripts/qgis340.sh to finish"; flock 9; }
}

build() {
  lock
  if [ ! -e "$base/debootstrap.stamp" ]; then
    command -v debootstrap >/dev/null || die "debootstrap is not installed: run 'make system' (or apt-get install debootstrap)"
    [ -z "$(mounted_in_rootfs)" ] || die "something is mounted in $rootfs: not touching it"
    rm -rf "$rootfs"
    say "debootstrap $suite into $rootfs"
    debootstrap --variant=minbase "$suite" "$rootfs" "$mirror" > "$base/debootstrap.log" 2>&1 \
      || { tail -20 "$base/debootstrap.log" >&2; die "debootstrap failed (log: $base/debootstrap.log)"; }
    touch "$base/debootstrap.stamp"
  fi
  local want
  want=$(printf '%s\n' "${apt_packages[@]}" "${pip_beside_debian[@]}" "${pip_packages[@]}" | sha256sum | cut -c1-16)
  if [ "$(cat "$base/packages.stamp" 2>/dev/null)" != "$want" ]; then
    mount_system
    say "apt: ${apt_packages[*]}"
    in_root apt-get update -qq
    in_root apt-get install -y -qq --no-install-recommends "${apt_packages[@]}" > "$base/apt.log" 2>&1 \
      || { tail -20 "$base/apt.log" >&2; die "apt-get install failed (log: $base/apt.log)"; }
    in_root apt-get clean
    # the checkout is bind-mounted in, owned by whoever cloned it: git (scripts/package.py) must accept it
    in_root git config --system --replace-all safe.directory '*'
    # pip fails with CERTIFICATE_VERIFY_FAILED behind this machine's TLS proxy unless it trusts the same CAs
    cp /etc/ssl/certs/ca-certificates.crt "$rootfs/etc/ssl/certs/ca-certificates.crt"
    # Debian's numpy 2, GDAL-linked rasterio and GEOS-linked shapely stay: pip may not replace them.
    in_root python3 -c '
import importlib.metadata as m
for name in ("numpy", "shapely", "rasterio", "scipy", "scikit-image", "networkx", "requests", "GDAL"):
    try:
        print(f"{name}=={m.version(name)}")
    except m.PackageNotFoundError:
        pass
' > "$base/constraints-debian.txt"
    cp "$base/constraints-debian.txt" "$rootfs/tmp/constraints-debian.txt"
    say "pip: ${pip_beside_debian[*]} ${pip_packages[*]}"
    local pip=(env PIP_CERT=/etc/ssl/certs/ca-certificates.crt python3 -m pip install --break-system-packages
      --disable-pip-version-check --no-cache-dir --root-user-action=ignore -c /tmp/constraints-debian.txt)
    { in_root "${pip[@]}" --ignore-installed --no-deps "${pip_beside_debian[@]}" && in_root "${pip[@]}" "${pip_packages[@]}"; } \
      > "$base/pip.log" 2>&1 || { tail -20 "$base/pip.log" >&2; die "pip install failed (log: $base/pip.log)"; }
    unmount_all
    echo "$want" > "$base/packages.stamp"
  fi
}

# ---------------------------------------------------------------------------------------------------- run
qgis_binary() {
  local name
  for name in qgis_process.bin qgis_process; do
    if [ -x "$rootfs/usr/bin/$name" ]; then echo "/usr/bin/$name"; return; fi
  done
  die "no qgis_process in $rootfs"
}

run() {
  [ -e "$base/packages.stamp" ] || die "not built: run '$0 build' (or make qgis340) first"
  [ $# -gt 0 ] || set -- bash
  lock
  mkdir -p "$repo/.build/plugins" "$repo/.build/qgis340/xdg-runtime"
  chmod 700 "$repo/.build/qgis340/xdg-runtime"
  [ -e "$repo/.build/plugins/spacenet_toolkit" ] || ln -sfn "$repo" "$repo/.build/plugins/spacenet_toolkit"
  make_training_shim
  mount_system
  mount_checkout
  mount_training_python
  local core site training=()
  if [ -e "$training_shim/pyvenv.cfg" ]; then training=(SPACENET_TRAINING_PYTHON="$training_shim/bin/python"); fi
  core=$(in_root ldconfig -p | awk '/libqgis_core\.so\./ && !found {print $NF; found = 1}')
  site=$(in_root python3 -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
  set +e
  chroot "$rootfs" /usr/bin/env -i HOME=/root PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8 TERM="${TERM:-dumb}" \
    QT_QPA_PLATFORM=offscreen XDG_RUNTIME_DIR="$repo/.build/qgis340/xdg-runtime" \
    QGIS_PLUGINPATH="$repo/.build/plugins" LD_PRELOAD="$core" QGIS_PROCESS="$(qgis_binary)" \
    SPACENET_SITE_PACKAGES="$site" PYTHONDONTWRITEBYTECODE=1 "${training[@]}" \
    /bin/bash -c 'cd "$1" && shift && exec "$@"' bash "$repo" "$@"
  local status=$?
  set -e
  unmount_all
  return $status
}

main() {
  case "${1:-}" in
    build) build ;;
    run) shift; run "$@" ;;
    shell) run bash ;;
    test)
      shift
      [ $# -gt 0 ] || set -- tests
      # pytest's cache apart from the host's (pytest-qgis's profile is apart: see mount_checkout)
      run python3 -m pytest -p no:cacheprovider "$@" ;;
    clean)
      lock
      [ -z "$(mounted_in_rootfs)" ] || { mounted_in_rootfs >&2; die "mounted in $rootfs: not deleting it"; }
      rm -rf "$base"
      say "removed $base" ;;
    *) sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2 ;;
  esac
}

# one line, read whole before it runs: editing this file while it runs cannot change what it does next
main "$@"; exit
