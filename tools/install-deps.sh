#!/usr/bin/env bash
# Installs the Debian packages runrec needs to build, test and run; idempotent and non-interactive.
set -euo pipefail

packages=(
  g++ cmake ninja-build pkg-config
  libzmq3-dev cppzmq-dev
  libsqlite3-dev sqlite3
  nlohmann-json3-dev
  libspdlog-dev libfmt-dev
  libserialport-dev
  doctest-dev
  libcli11-dev
  libexpected-dev libssl-dev
  libmimalloc-dev  # the runrec command allocates with mimalloc (README: why)
  python3 python3-zmq
  clang-14 libclang-rt-14-dev  # sanitizer builds and libFuzzer targets (docs/hardening.md)
  lld-14  # links the sanitizer builds (tools/build-sanitized.sh): 5x less CPU than GNU ld
  python3-dev  # Python protocols: the runner embeds CPython 3.11 (pkg-config python3-embed)
  chromium  # the HTML audit test renders in headless chromium (about 35 s to install)
  gnuplot-nox  # plots in the benchmark suite's report (runrec bench --suite)
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done

if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: all ${#packages[@]} packages present"
  exit 0
fi

echo "install-deps: installing ${missing[*]}"
if [ "$(id -u)" -ne 0 ]; then
  echo "install-deps: need root to install packages (run as root or with sudo)" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" </dev/null
