#!/usr/bin/env bash
# lab: the driver and kernel matrix (make test-lab). Each kernel boots once in
# a QEMU guest (TCG) with many NICs — virtio-net (single queue on a hub,
# multi-queue with guest offloads on a tap, guest offloads the guest cannot
# turn off), e1000, e1000e, vmxnet3, a bond over two virtio-net NICs, a tun
# device and, on 6.1, netdevsim — and runs the guest tests of ./test/lab
# against the built xdpcache binary, a real memcached and iproute2/ethtool:
# probe --json against testdata/lab/<kernel>/<nic>.json, deploy in every
# mode, undeploy, and UDP GET hits answered with XDP_TX through a real
# driver to a client in a guest network namespace behind a second NIC on the
# same QEMU hub (docs/lab.md).
#
# Kernels (arguments; default: all of them):
#   6.1    Debian 12's linux-image-amd64 (the machine's apt configuration)
#   6.12   bookworm-backports' linux-image-amd64, through an apt configuration
#          of the lab's own under $LAB_CACHE/apt (the machine's is untouched)
#
# Downloads and unpacked kernels are cached per kernel ABI under $LAB_CACHE
# (shared with scripts/offload-lab.sh, which builds 6.1's netdevsim.ko).
#
# Environment:
#   LAB_CACHE    cache dir (default /var/cache/xdpcache/offload-lab)
#   LAB_UPDATE   1: write the guests' probe reports to testdata/lab/ instead of comparing
#   LAB_RUN      -test.run pattern for the guest tests (default: all)
#   LAB_TIMEOUT  seconds per guest before it counts as hung (default 900)
#   LAB_SMP      guest vCPUs (default 1)
#   GO           go command (default go)
#
# Exit status: 0 only if every guest finished in time and every guest test
# passed, none skipped.
set -euo pipefail

CACHE=${LAB_CACHE:-${OFFLOAD_LAB_CACHE:-/var/cache/xdpcache/offload-lab}}
TIMEOUT=${LAB_TIMEOUT:-900}
SMP=${LAB_SMP:-1}
RUN=${LAB_RUN:-.}
GO=${GO:-go}
HOST_PKGS=(qemu-system-x86 busybox-static iproute2 ethtool memcached kmod xz-utils util-linux xdp-tools)
# Modules every guest loads, with their dependencies (modprobe --show-depends).
MODS=(virtio_pci virtio_net e1000 e1000e vmxnet3 bonding tun veth sch_ingress cls_bpf psample)

LAB_NAME=lab
# shellcheck source=scripts/lab-common.sh
. "$(dirname "$0")/lab-common.sh"

[ "$(id -u)" = 0 ] || die "needs root (installs packages, writes $CACHE, creates taps in a private network namespace)"
cd "$(dirname "$0")/.."
REPO=$PWD

# The lab's own apt configuration for bookworm-backports: the archive the
# machine already uses for bookworm, the backports suite, private lists and
# cache. Nothing under /etc/apt or /var/lib/apt is written.
BP=$CACHE/apt-backports
bp_apt() {
  "$@" -o Dir::Etc::sourcelist="$BP/sources.list" -o Dir::Etc::sourceparts=/nonexistent \
    -o Dir::State::Lists="$BP/lists" -o Dir::Cache="$BP/cache" -o Debug::NoLocking=1
}
bp_setup() {
  local uri
  mkdir -p "$BP/lists/partial" "$BP/cache/archives/partial"
  if [ ! -s "$BP/sources.list" ]; then
    uri=$(apt-cache policy 2>/dev/null | awk '$3 == "bookworm/main" && $4 == "amd64" {print $2; exit}')
    [ -n "$uri" ] || { apt-get update -qq >&2; uri=$(apt-cache policy | awk '$3 == "bookworm/main" && $4 == "amd64" {print $2; exit}'); }
    [ -n "$uri" ] || die "the machine's apt has no bookworm/main archive to take bookworm-backports from"
    echo "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] $uri bookworm-backports main" >"$BP/sources.list"
  fi
  bp_apt apt-get update -qq 2>&1 | grep -v unsandboxed || true
}

# abi_for SERIES prints the kernel ABI linux-image-amd64 depends on in the
# suite for SERIES, or the newest cached one of that series when apt cannot say.
abi_for() {
  local series=$1 abi=""
  case $series in
  6.1)
    abi=$(apt-cache depends linux-image-amd64 2>/dev/null | sed -n 's/.*Depends: linux-image-\(.*-amd64\)$/\1/p' | head -n1)
    if [ -z "$abi" ]; then
      apt-get update -qq >&2 || true
      abi=$(apt-cache depends linux-image-amd64 2>/dev/null | sed -n 's/.*Depends: linux-image-\(.*-amd64\)$/\1/p' | head -n1)
    fi ;;
  6.12)
    bp_setup >&2 || true # abi_for's output is the ABI alone
    abi=$(bp_apt apt-cache depends linux-image-amd64 2>/dev/null | sed -n 's/.*Depends: linux-image-\(.*-amd64\)$/\1/p' | head -n1) ;;
  *) die "unknown kernel $series (6.1 or 6.12)" ;;
  esac
  case $abi in "$series".*) ;; *) abi="" ;; esac
  [ -n "$abi" ] || abi=$(ls -1 "$CACHE" 2>/dev/null | grep -E "^${series//./\\.}[.-].*-amd64$" | sort -V | tail -n1)
  [ -n "$abi" ] || die "cannot tell which $series kernel to use (no apt answer, nothing cached)"
  echo "$abi"
}

# kernel_files SERIES leaves vmlinuz and lab-mods/ (modules decompressed, with
# lab-mods/order, the insmod order) in $K, from the image package alone.
kernel_files() {
  local series=$1 deb x m line
  [ -s "$K/vmlinuz" ] && [ -s "$K/lab-mods/order" ] && return 0
  if ! compgen -G "$K/dl/linux-image-${KABI}_*.deb" >/dev/null; then
    log "downloading linux-image-$KABI"
    mkdir -p "$K/dl.part"
    if [ "$series" = 6.12 ]; then
      (cd "$K/dl.part" && bp_apt apt-get download -qq "linux-image-$KABI" 2>&1 | grep -v unsandboxed || true)
    else
      (cd "$K/dl.part" && apt-get download -qq "linux-image-$KABI" 2>&1 | grep -v unsandboxed || true)
    fi
    compgen -G "$K/dl.part/linux-image-${KABI}_*.deb" >/dev/null || die "apt-get download linux-image-$KABI failed"
    mkdir -p "$K/dl" && mv "$K/dl.part"/*.deb "$K/dl/" && rmdir "$K/dl.part"
  fi
  deb=$(compgen -G "$K/dl/linux-image-${KABI}_*.deb" | head -n1)
  x=$K/extract; rm -rf "$x" "$K/lab-mods.part"; mkdir -p "$x" "$K/lab-mods.part"
  log "unpacking $KABI's modules"
  dpkg-deb --fsys-tarfile "$deb" | tar -x -C "$x" "./boot/vmlinuz-$KABI" "./lib/modules/$KABI"
  depmod -b "$x" "$KABI"
  : >"$K/lab-mods.part/order"
  for m in "${MODS[@]}"; do
    modprobe -d "$x" -S "$KABI" --show-depends "$m" | while read -r line; do
      case $line in
      insmod\ *)
        set -- $line
        local f=$2 b
        b=$(basename "$f"); b=${b%.xz}; b=${b%.zst}
        grep -qx "$b" "$K/lab-mods.part/order" && continue
        case $f in
        *.xz) xz -dc "$f" >"$K/lab-mods.part/$b" ;;
        *.zst) zstd -qdc "$f" >"$K/lab-mods.part/$b" ;;
        *) cp "$f" "$K/lab-mods.part/$b" ;;
        esac
        echo "$b" >>"$K/lab-mods.part/order" ;;
      esac
    done
  done
  cp "$x/boot/vmlinuz-$KABI" "$K/vmlinuz.part" && mv "$K/vmlinuz.part" "$K/vmlinuz"
  rm -rf "$K/lab-mods"; mv "$K/lab-mods.part" "$K/lab-mods"
  rm -rf "$x"
}

copy_with_libs() {
  local root=$1 bin=$2 lib
  mkdir -p "$root$(dirname "$bin")"
  cp -L "$bin" "$root$bin"
  for lib in $(ldd "$bin" | grep -o '/[^ ]*'); do
    mkdir -p "$root$(dirname "$lib")"
    cp -L "$lib" "$root$lib"
  done
}

# build_binaries: xdpcache and the guest test binary, static, once per run.
build_binaries() {
  mkdir -p "$B"
  log "building xdpcache and the guest tests (static)"
  CGO_ENABLED=0 "$GO" build -o "$B/xdpcache" ./cmd/xdpcache
  CGO_ENABLED=0 "$GO" test -c -o "$B/lab.test" ./test/lab
}

# The guest's NICs: name, QEMU device, backend. Names are given by MAC in
# the guest (52:54:00:1a:b0:NN), so they do not depend on probe order.
#   hub:N      a QEMU hub port (frames reach every other NIC on hub N)
#   tap:OPTS   a tap in the lab's private network namespace (vnet_hdr, queues)
nics() {
  cat <<'EOF'
vsq  virtio-net-pci                                hub:1
c1   virtio-net-pci                                hub:1
e1k  e1000                                         hub:2
c2   virtio-net-pci                                hub:2
vmx  vmxnet3                                       hub:3
c3   virtio-net-pci                                hub:3
e1ke e1000e                                        hub:4
vmq  virtio-net-pci,mq=on,vectors=10               tap:queues=4,vnet_hdr=on
vgo  virtio-net-pci,ctrl_guest_offloads=off        tap:vnet_hdr=on
vb1  virtio-net-pci                                hub:5
vb2  virtio-net-pci                                hub:5
EOF
}

qemu_nic_args() {
  local i=1 name dev be mac
  while read -r name dev be; do
    mac=$(printf '52:54:00:1a:b0:%02x' "$i")
    case $be in
    hub:*) echo "-netdev hubport,id=n$i,hubid=${be#hub:}" ;;
    tap:*) echo "-netdev tap,id=n$i,ifname=labtap$i,script=no,downscript=no,${be#tap:}" ;;
    esac
    echo "-device $dev,netdev=n$i,mac=$mac,romfile="
    i=$((i + 1))
  done < <(nics)
}

build_initramfs() {
  local series=$1 r=$W/root m
  rm -rf "$r"; mkdir -p "$r"/{bin,proc,sys,dev,run,tmp,modules,lab,tests/lab}
  cp /bin/busybox "$r/bin/"
  mkdir -p "$r/etc"; echo 'root:x:0:0:root:/tmp:/bin/sh' >"$r/etc/passwd"; echo 'root:x:0:' >"$r/etc/group" # memcached -u root
  cp "$K"/lab-mods/*.ko "$K/lab-mods/order" "$r/modules/"
  [ "$series" != 6.1 ] || [ ! -s "$K/netdevsim.ko" ] || { cp "$K/netdevsim.ko" "$r/modules/"; echo netdevsim.ko >>"$r/modules/order"; }
  for m in /usr/sbin/ip /usr/sbin/tc /usr/sbin/ethtool /usr/bin/memcached /usr/sbin/xdp-loader; do copy_with_libs "$r" "$m"; done
  # libxdp's own dispatcher object, and the counting program TestShare loads with xdp-loader
  mkdir -p "$r/usr/lib/x86_64-linux-gnu/bpf"
  cp /usr/lib/x86_64-linux-gnu/bpf/xdp-dispatcher.o "$r/usr/lib/x86_64-linux-gnu/bpf/"
  cp "$REPO/offload/dispatch/dispatchtest/counter_bpfel.o" "$r/tests/lab/"
  cp "$B/xdpcache" "$r/bin/xdpcache"
  cp "$B/lab.test" "$r/tests/lab/"
  [ ! -d "$REPO/test/lab/testdata" ] || cp -r "$REPO/test/lab/testdata" "$r/tests/lab/"
  local i=1 name
  while read -r name _; do printf '52:54:00:1a:b0:%02x %s\n' "$i" "$name"; i=$((i + 1)); done < <(nics) >"$r/lab/nics"
  printf 'LAB_KERNEL=%q\nLAB_RUN=%q\nLAB_UPDATE=%q\n' "$series" "$RUN" "${LAB_UPDATE:-}" >"$r/lab/env"
  cat >"$r/init" <<'EOF'
#!/bin/busybox sh
/bin/busybox --install -s /bin
# /usr/sbin first: busybox's own 'ip' applet would shadow iproute2's.
export PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/tmp
. /lab/env
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs dev /dev
mount -t debugfs debugfs /sys/kernel/debug
mount -t bpf bpf /sys/fs/bpf
mount -t tmpfs run /run
mount -t tmpfs tmp /tmp
echo "LAB_T init $(cut -d' ' -f1 /proc/uptime)"
for m in $(cat /modules/order); do insmod /modules/$m || echo "LAB: insmod $m failed"; done
[ -e /sys/bus/netdevsim ] && echo "1 1" >/sys/bus/netdevsim/new_device
# name the NICs by MAC
for d in /sys/class/net/*; do
  n=$(basename $d); mac=$(cat $d/address)
  want=$(awk -v m="$mac" '$1 == m {print $2}' /lab/nics)
  [ -n "$want" ] && [ "$want" != "$n" ] && /usr/sbin/ip link set dev $n name $want
done
/usr/sbin/ip link set lo up
echo "LAB: kernel $(uname -r), $(nproc) vCPU"
/usr/sbin/ip -br link
echo "LAB_T ready $(cut -d' ' -f1 /proc/uptime)"
cd /tests/lab
XDPCACHE_LAB=$LAB_KERNEL XDPCACHE_LAB_UPDATE=$LAB_UPDATE ./lab.test -test.run "$LAB_RUN" -test.v -test.count=1 -test.timeout=20m
echo "LAB_BIN rc=$?"
echo "LAB_T done $(cut -d' ' -f1 /proc/uptime)"
echo "LAB_DONE"
poweroff -f
EOF
  chmod +x "$r/init"
  (cd "$r" && find . | busybox cpio -o -H newc 2>/dev/null | gzip -1) >"$W/initrd-$series.gz"
}

# verdict SERIES LOG RC explains every failure in one guest's console log.
verdict() {
  local series=$1 logf=$2 rc=$3 ok=0
  if ! grep -q '^LAB_DONE' "$logf"; then
    if [ "$rc" = 124 ]; then log "$series FAIL: the guest did not finish within ${TIMEOUT} s"
    else log "$series FAIL: the guest stopped before finishing (qemu exit $rc)"; fi
    ok=1
  fi
  if grep -q '^LAB: insmod' "$logf"; then log "$series FAIL: $(grep '^LAB: insmod' "$logf" | tr '\n' ' ')"; ok=1; fi
  if grep -q '^LAB_BIN rc=' "$logf" && ! grep -q '^LAB_BIN rc=0$' "$logf"; then log "$series FAIL: guest tests failed"; ok=1; fi
  if grep -Eq -- '--- SKIP: ' "$logf"; then
    log "$series FAIL: guest tests skipped: $(grep -E -- '--- SKIP: ' "$logf" | sed 's/^ *--- SKIP: //' | tr '\n' ' ')"; ok=1
  fi
  local n
  n=$(grep -Ec -- '^--- (PASS|FAIL): ' "$logf" || true)
  if [ "$n" = 0 ]; then log "$series FAIL: no guest test ran"; ok=1; fi
  if grep -Eq -- '--- FAIL: ' "$logf"; then log "$series failed: $(grep -E -- '--- FAIL: ' "$logf" | sed 's/^ *--- FAIL: //' | tr '\n' ' ')"; fi
  return $ok
}

# update_expected SERIES LOG writes the reports a guest printed (LAB_UPDATE=1).
update_expected() {
  local series=$1 logf=$2 name b64 n=0
  mkdir -p "$REPO/test/lab/testdata/$series"
  while read -r _ name b64; do
    echo "$b64" | base64 -d >"$REPO/test/lab/testdata/$series/$name.json"
    n=$((n + 1))
  done < <(grep '^LAB_EXPECT ' "$logf")
  log "$series: wrote $n expected reports to test/lab/testdata/$series/"
}

run_guest() {
  local series=$1 t0 t1 rc logf
  logf=$W/guest-$series.log
  KABI=$(abi_for "$series")
  K=$CACHE/$KABI
  mkdir -p "$K"
  t0=$(date +%s)
  kernel_files "$series"
  build_initramfs "$series"
  local -a args
  mapfile -t args < <(qemu_nic_args | tr ' ' '\n')
  t1=$(date +%s)
  log "$series: kernel $KABI, prepared in $((t1 - t0)) s; booting with $(nics | wc -l) NICs"
  set +e
  # A private network namespace holds the taps QEMU creates; it goes away
  # with QEMU. TCG, not KVM: the host's /dev/kvm may be paravirtual.
  timeout "$TIMEOUT" unshare --net -- qemu-system-x86_64 -accel tcg -cpu max -smp "$SMP" -m 1024 \
    -nographic -no-reboot -kernel "$K/vmlinuz" -initrd "$W/initrd-$series.gz" \
    -append "console=ttyS0 panic=-1 loglevel=3 net.ifnames=0" "${args[@]}" </dev/null |
    stdbuf -o0 tr -d '\r' | sed -u 's/\x1b\[[0-9;?]*[A-Za-z]//g; s/\x1bc//g' | tee "$logf" | grep --line-buffered -v '^LAB_EXPECT '
  rc=${PIPESTATUS[0]}
  set -e
  local t2 init ready done
  t2=$(date +%s)
  cp "$logf" "$CACHE/last-lab-$series.log"
  init=$(sed -n 's/^LAB_T init //p' "$logf"); ready=$(sed -n 's/^LAB_T ready //p' "$logf"); done=$(sed -n 's/^LAB_T done //p' "$logf")
  TIMES+=("$(printf '%-5s %-22s prepare %4s s  boot %6s s  tests %6s s  wall %4s s' "$series" "$KABI" "$((t1 - t0))" \
    "${ready:-?}" "$(awk -v a="${ready:-0}" -v b="${done:-0}" 'BEGIN{ if (b > 0) printf "%.1f", b - a; else print "?" }')" "$((t2 - t1))")")
  [ -z "${LAB_UPDATE:-}" ] || update_expected "$series" "$logf"
  verdict "$series" "$logf" "$rc"
}

T0=$(date +%s)
install_host_packages
SERIES=("$@")
((${#SERIES[@]})) || SERIES=(6.1 6.12)
# 6.1's netdevsim.ko comes from the offload lab's cache (built from Debian's
# linux-source); build it if it is not there.
if printf '%s\n' "${SERIES[@]}" | grep -qx 6.1; then
  k61=$(abi_for 6.1)
  [ -s "$CACHE/$k61/netdevsim.ko" ] || OFFLOAD_LAB_CACHE=$CACHE OFFLOAD_LAB_PREPARE_ONLY=1 GO=$GO scripts/offload-lab.sh
fi
W=$(mktemp -d /tmp/lab.XXXXXX)
trap 'rm -rf "$W"' EXIT
B=$W/bin
build_binaries
TIMES=()
fail=0
for s in "${SERIES[@]}"; do run_guest "$s" || fail=1; done
log "per guest (boot = guest uptime when the tests start):"
for t in "${TIMES[@]}"; do log "  $t"; done
log "total $(($(date +%s) - T0)) s"
exit $fail
