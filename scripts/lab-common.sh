# Shared by scripts/lab.sh and scripts/offload-lab.sh (sourced, not run).
# The sourcing script sets LAB_NAME (its name in messages) and HOST_PKGS
# (the Debian packages it needs on the host) first.

log() { printf '== %s: %s\n' "$LAB_NAME" "$*" >&2; }
die() { printf '%s: %s\n' "$LAB_NAME" "$*" >&2; exit 1; }

# install_host_packages installs whatever of HOST_PKGS is missing.
install_host_packages() {
  local missing=() p
  for p in "${HOST_PKGS[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
  ((${#missing[@]})) || return 0
  log "installing ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}
