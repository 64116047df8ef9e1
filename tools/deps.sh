# Shared by tools/test, tools/demo and bench/run: installs the Debian 12 packages
# scuttle builds with, only when one is missing. Sourced, not executed.
SCUTTLE_PACKAGES=(cmake ninja-build g++ clang libclang-rt-14-dev pkg-config
  libabsl-dev libflatbuffers-dev flatbuffers-compiler liburing-dev libgtest-dev
  libgmock-dev libbenchmark-dev libcpp-httplib-dev nlohmann-json3-dev libspdlog-dev
  libzstd-dev libsodium-dev libssl-dev libxdp-dev libbpf-dev libmnl-dev
  linux-libc-dev iproute2 nftables curl python3)

# Only the test suite needs these (tools/test installs them; demo and bench do not):
# interface checks (tests/integration/interfaces_test.py: promtool, yamllint, the OpenAPI
# document's schemas, systemd-analyze) and the /ui browser test (tests/integration/
# ui_test.py: headless Chromium, about 130 MB of packages). SCUTTLE_NO_BROWSER=1 leaves
# Chromium out; the browser test then reports itself skipped.
SCUTTLE_TEST_PACKAGES=(prometheus yamllint python3-yaml python3-jsonschema systemd iputils-ping)
[ "${SCUTTLE_NO_BROWSER:-0}" = 1 ] || SCUTTLE_TEST_PACKAGES+=(chromium chromium-driver)

# scuttle_install_deps [extra packages...]: the build packages plus the given ones.
scuttle_install_deps() {
  local missing=()
  for p in "${SCUTTLE_PACKAGES[@]}" "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
  done
  if [ ${#missing[@]} -gt 0 ]; then
    echo "scuttle: installing ${missing[*]}" >&2
    local sudo=""
    [ "$(id -u)" -ne 0 ] && sudo="sudo"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
  fi
}

scuttle_jobs() { nproc 2>/dev/null || echo 2; }
