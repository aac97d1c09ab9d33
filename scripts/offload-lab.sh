#!/usr/bin/env bash
# offload-lab: runs the TestNetdevsim* Go tests against a real hardware-offload
# driver (netdevsim) in a QEMU guest (TCG), because the host kernel may lack
# netdevsim. The guest runs Debian's current kernel with netdevsim built out of
# tree from Debian's linux-source package; the initramfs holds busybox, ip,
# bpftool, the modules and static Go test binaries (root, /init is a shell
# script below).
#
# Downloads, the kernel and netdevsim.ko are cached per kernel ABI under
# $OFFLOAD_LAB_CACHE, so a second run neither downloads nor rebuilds.
#
# Environment:
#   OFFLOAD_LAB_CACHE    cache dir (default /var/cache/xdpcache/offload-lab)
#   OFFLOAD_LAB_PKGS     Go packages whose tests run in the guest (default: every package
#                        with a TestNetdevsim* test: ./cmd/xdpcache ./offload/deploy ./offload/netdev)
#   OFFLOAD_LAB_RUN      -test.run pattern (default ^TestNetdevsim)
#   OFFLOAD_LAB_TIMEOUT  seconds for boot + tests before the guest counts as hung (default 600)
#   OFFLOAD_LAB_KABI     kernel ABI to use, e.g. 6.1.0-56-amd64 (default: linux-image-amd64's)
#   OFFLOAD_LAB_PREPARE_ONLY  1: download and build into the cache, boot nothing (scripts/lab.sh)
#   GO                   go command (default go)
#
# Exit status: 0 only if every binary passed, at least one test ran, no
# TestNetdevsim test skipped and the guest finished in time.
set -euo pipefail

CACHE=${OFFLOAD_LAB_CACHE:-/var/cache/xdpcache/offload-lab}
PKGS=${OFFLOAD_LAB_PKGS:-}
RUN=${OFFLOAD_LAB_RUN:-^TestNetdevsim}
TIMEOUT=${OFFLOAD_LAB_TIMEOUT:-600}
GO=${GO:-go}
HOST_PKGS=(qemu-system-x86 busybox-static bpftool iproute2 gcc-12 make bc xz-utils)

LAB_NAME=offload-lab
# shellcheck source=scripts/lab-common.sh
. "$(dirname "$0")/lab-common.sh"

[ "$(id -u)" = 0 ] || die "needs root (installs packages, writes $CACHE)"
cd "$(dirname "$0")/.."
REPO=$PWD

# netdevsim_pkgs lists the packages (relative to the repository) that hold
# TestNetdevsim* tests.
netdevsim_pkgs() {
  grep -rl --include='*_test.go' '^func TestNetdevsim' . | xargs -n1 dirname | sort -u | tr '\n' ' '
}
[ -n "$PKGS" ] || PKGS=$(netdevsim_pkgs)
[ -n "$PKGS" ] || die "no package holds TestNetdevsim* tests"
T0=$(date +%s)

# kernel_abi prints the ABI linux-image-amd64 depends on (e.g. 6.1.0-56-amd64),
# or, when apt knows none (no package lists), the newest one already cached.
kernel_abi() {
  if [ -n "${OFFLOAD_LAB_KABI:-}" ]; then echo "$OFFLOAD_LAB_KABI"; return; fi
  local abi
  abi=$(apt-cache depends linux-image-amd64 2>/dev/null | sed -n 's/.*Depends: linux-image-\(.*-amd64\)$/\1/p' | head -n1)
  if [ -z "$abi" ]; then
    apt-get update -qq
    abi=$(apt-cache depends linux-image-amd64 2>/dev/null | sed -n 's/.*Depends: linux-image-\(.*-amd64\)$/\1/p' | head -n1)
  fi
  [ -n "$abi" ] || abi=$(ls -1 "$CACHE" 2>/dev/null | grep -- '-amd64$' | sort -V | tail -n1)
  [ -n "$abi" ] || die "cannot tell which Debian kernel to use: set OFFLOAD_LAB_KABI"
  echo "$abi"
}

# fetch_debs downloads the kernel image, headers, kbuild and source packages
# into $K/dl once; apt-get download is all that needs the network.
fetch_debs() {
  local kbase=${KABI%-amd64} kser want=() p
  kser=$(echo "$KABI" | cut -d. -f1-2)
  for p in "linux-image-$KABI" "linux-headers-$KABI" "linux-headers-$kbase-common" \
    "linux-kbuild-$kser" "linux-source-$kser"; do
    compgen -G "$K/dl/${p}_*.deb" >/dev/null || want+=("$p")
  done
  ((${#want[@]})) || return 0
  log "downloading ${want[*]}"
  mkdir -p "$K/dl.part"
  # apt warns that _apt cannot write to the directory when run as root: harmless.
  (cd "$K/dl.part" && apt-get download -qq "${want[@]}" 2>&1 | grep -v unsandboxed || true)
  for p in "${want[@]}"; do compgen -G "$K/dl.part/${p}_*.deb" >/dev/null || die "apt-get download $p failed"; done
  mkdir -p "$K/dl" && mv "$K/dl.part"/*.deb "$K/dl/" && rmdir "$K/dl.part"
}

# build_kernel_files leaves vmlinuz, psample.ko and netdevsim.ko in $K. The
# headers are unpacked in a scratch dir and dropped afterwards (~150 MiB).
build_kernel_files() {
  [ -s "$K/vmlinuz" ] && [ -s "$K/psample.ko" ] && [ -s "$K/netdevsim.ko" ] && return 0
  fetch_debs
  local kbase=${KABI%-amd64} kser b d h
  kser=$(echo "$KABI" | cut -d. -f1-2)
  b=$K/build; rm -rf "$b"; mkdir -p "$b/root" "$b/src"
  log "building netdevsim for $KABI"
  for d in "$K"/dl/linux-image-"$KABI"_*.deb "$K"/dl/linux-headers-*.deb "$K"/dl/linux-kbuild-*.deb; do
    dpkg-deb -x "$d" "$b/root"
  done
  h=$b/root/usr/src/linux-headers-$KABI
  # The arch headers' Makefile includes the common headers by absolute path.
  sed -i "s#/usr/src/linux-headers-$kbase-common#$b/root/usr/src/linux-headers-$kbase-common#" "$h/Makefile"
  dpkg-deb --fsys-tarfile "$K"/dl/linux-source-"$kser"_*.deb \
    | tar -xO "./usr/src/linux-source-$kser.tar.xz" \
    | tar -xJ -C "$b/src" "linux-source-$kser/drivers/net/netdevsim"
  make -s -C "$h" M="$b/src/linux-source-$kser/drivers/net/netdevsim" CONFIG_NETDEVSIM=m \
    -j"$(nproc)" modules 2>&1 | grep -v 'Skipping BTF' || true
  strip --strip-debug -o "$K/netdevsim.ko.part" "$b/src/linux-source-$kser/drivers/net/netdevsim/netdevsim.ko"
  cp "$b/root/lib/modules/$KABI/kernel/net/psample/psample.ko" "$K/psample.ko.part"
  cp "$b/root/boot/vmlinuz-$KABI" "$K/vmlinuz.part"
  for f in netdevsim.ko psample.ko vmlinuz; do mv "$K/$f.part" "$K/$f"; done
  rm -rf "$b"
}

# extra_modules leaves the qdisc/classifier modules TC attachment needs on
# kernels without TCX (6.1: clsact + cls_bpf) in $K, taken from the kernel
# image package.
EXTRA_MODS=(net/sched/sch_ingress.ko net/sched/cls_bpf.ko)
extra_modules() {
  local m missing=()
  for m in "${EXTRA_MODS[@]}"; do [ -s "$K/$(basename "$m")" ] || missing+=("./lib/modules/$KABI/kernel/$m"); done
  ((${#missing[@]})) || return 0
  fetch_debs
  local x=$K/extract; rm -rf "$x"; mkdir -p "$x"
  dpkg-deb --fsys-tarfile "$K"/dl/linux-image-"$KABI"_*.deb | tar -x -C "$x" "${missing[@]}"
  for m in "${missing[@]}"; do cp "$x/$m" "$K/$(basename "$m")"; done
  rm -rf "$x"
}

# build_tests writes one static test binary per package to $W/root/tests/<name>/,
# with the package's testdata next to it (go test runs binaries in the package dir).
build_tests() {
  local pkg name dir
  for pkg in $PKGS; do
    name=$(echo "${pkg#./}" | tr '/' '_')
    dir=$W/root/tests/$name
    mkdir -p "$dir"
    log "go test -c $pkg"
    CGO_ENABLED=0 "$GO" test -c -o "$dir/$name.test" "$pkg"
    [ -x "$dir/$name.test" ] || die "$pkg has no tests to build"
    [ ! -d "$REPO/$pkg/testdata" ] || cp -r "$REPO/$pkg/testdata" "$dir/"
  done
}

# copy_with_libs copies a dynamically linked host binary and its libraries.
copy_with_libs() {
  local bin=$1 lib
  mkdir -p "$W/root$(dirname "$bin")"
  cp -L "$bin" "$W/root$bin"
  for lib in $(ldd "$bin" | grep -o '/[^ ]*'); do
    mkdir -p "$W/root$(dirname "$lib")"
    cp -L "$lib" "$W/root$lib"
  done
}

build_initramfs() {
  local r=$W/root
  mkdir -p "$r"/{bin,proc,sys,dev,run,tmp,modules}
  cp /bin/busybox "$r/bin/"
  cp "$K/psample.ko" "$K/netdevsim.ko" "$r/modules/"
  for m in "${EXTRA_MODS[@]}"; do cp "$K/$(basename "$m")" "$r/modules/"; done
  copy_with_libs /usr/sbin/ip
  copy_with_libs /usr/sbin/bpftool
  printf 'RUN=%q\n' "$RUN" >"$r/lab.env"
  cat >"$r/init" <<'EOF'
#!/bin/busybox sh
/bin/busybox --install -s /bin
# /usr/sbin first: busybox's own 'ip' applet would shadow iproute2's.
export PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/tmp XDPCACHE_REQUIRE_NETDEVSIM=1
. /lab.env
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs dev /dev
mount -t debugfs debugfs /sys/kernel/debug
mount -t bpf bpf /sys/fs/bpf
mount -t tmpfs run /run
mount -t tmpfs tmp /tmp
insmod /modules/psample.ko && insmod /modules/netdevsim.ko || echo "OFFLAB: insmod failed"
insmod /modules/sch_ingress.ko; insmod /modules/cls_bpf.ko # TC without TCX (kernels before 6.6)
echo "OFFLAB: kernel $(uname -r)"
for t in /tests/*/*.test; do
  (cd "$(dirname "$t")" && "$t" -test.run "$RUN" -test.v -test.count=1 -test.timeout=10m)
  echo "OFFLAB_BIN $(basename "$t") rc=$?"
done
echo "OFFLAB_DONE"
poweroff -f
EOF
  chmod +x "$r/init"
  (cd "$r" && find . | busybox cpio -o -H newc 2>/dev/null | gzip -1) >"$W/initrd.gz"
}

# verdict reads the guest's console log and explains every failure it finds.
verdict() {
  local logf=$1 rc=$2 ok=0
  if ! grep -q '^OFFLAB_DONE' "$logf"; then
    if [ "$rc" = 124 ]; then log "FAIL: the guest did not finish within ${TIMEOUT} s"
    else log "FAIL: the guest stopped before finishing (qemu exit $rc)"; fi
    ok=1
  fi
  if grep -q '^OFFLAB: insmod failed' "$logf"; then log "FAIL: netdevsim did not load"; ok=1; fi
  if grep '^OFFLAB_BIN ' "$logf" | grep -vq 'rc=0$'; then
    log "FAIL: $(grep '^OFFLAB_BIN ' "$logf" | grep -v 'rc=0$' | tr '\n' ' ')"; ok=1
  fi
  if grep -Eq -- '--- SKIP: TestNetdevsim' "$logf"; then
    log "FAIL: netdevsim tests skipped: $(grep -E -- '--- SKIP: TestNetdevsim' "$logf" | sed 's/^ *--- SKIP: //' | tr '\n' ' ')"; ok=1
  fi
  local passed
  passed=$(grep -Ec -- '^--- (PASS|FAIL): ' "$logf" || true)
  if [ "$passed" = 0 ]; then log "FAIL: no test ran (pattern $RUN, packages $PKGS)"; ok=1; fi
  log "top-level tests: $(grep -Ec -- '^--- PASS: ' "$logf" || true) passed, $(grep -Ec -- '^--- FAIL: ' "$logf" || true) failed"
  return $ok
}

install_host_packages
KABI=$(kernel_abi)
K=$CACHE/$KABI
mkdir -p "$K"
build_kernel_files
extra_modules
if [ "${OFFLOAD_LAB_PREPARE_ONLY:-}" = 1 ]; then log "prepared $K"; exit 0; fi
W=$(mktemp -d /tmp/offload-lab.XXXXXX)
trap 'rm -rf "$W"' EXIT
build_tests
build_initramfs
T1=$(date +%s)
log "prepared in $((T1 - T0)) s (kernel $KABI, cache $K)"

set +e
# TCG, not KVM: the host's /dev/kvm may be a paravirtual one that cannot boot
# a stock kernel. panic=-1 + -no-reboot make qemu exit when /init powers off.
timeout "$TIMEOUT" qemu-system-x86_64 -accel tcg -cpu max -m 1024 -nographic -no-reboot \
  -kernel "$K/vmlinuz" -initrd "$W/initrd.gz" \
  -append "console=ttyS0 panic=-1 loglevel=4" </dev/null |
  tr -d '\r' | sed -u 's/\x1b\[[0-9;?]*[A-Za-z]//g; s/\x1bc//g' | tee "$W/guest.log"
rc=${PIPESTATUS[0]}
set -e
T2=$(date +%s)
cp "$W/guest.log" "$CACHE/last-guest.log"
log "boot+test took $((T2 - T1)) s (prepare $((T1 - T0)) s); guest log kept in $CACHE/last-guest.log"
verdict "$W/guest.log" "$rc"
