#!/bin/sh
# install-deps.sh: install what Causeway's end-to-end, interop and benchmark tests use.
#
# For a fresh Debian 12 machine, run as root. Idempotent and fast when everything is already
# present (no apt-get at all then). Package daemons (strongSwan, BIRD) are kept from running in the
# root namespace: the tests start their own instances inside network namespaces.
set -eu

PKGS="iproute2 iputils-ping nftables iperf3 procps tcpdump \
charon-systemd strongswan-swanctl libcharon-extra-plugins \
libstrongswan-standard-plugins libstrongswan-extra-plugins bird2"

if [ "$(id -u)" -ne 0 ]; then
  echo "install-deps.sh: must run as root" >&2
  exit 1
fi

missing=""
for p in $PKGS; do
  # `dpkg -s` exits 0 also for removed-but-configured packages: check the status line.
  if ! dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null | grep -q '^install ok installed$'; then
    missing="$missing $p"
  fi
done

if [ -z "$missing" ]; then
  echo "install-deps.sh: all packages present"
else
  echo "install-deps.sh: installing:$missing"
  # Keep maintainer scripts from starting daemons (sysvinit/invoke-rc.d honour policy-rc.d,
  # exit 101 = "action forbidden"). Only add one if the machine has none, and remove it again.
  own_policy=""
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
    chmod 755 /usr/sbin/policy-rc.d
    own_policy=1
  fi
  cleanup() { [ -n "$own_policy" ] && rm -f /usr/sbin/policy-rc.d; return 0; }
  trap cleanup EXIT INT TERM
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q
  # shellcheck disable=SC2086
  apt-get install -y -q --no-install-recommends $missing
fi

# Whatever started them (systemd presets, an earlier run without policy-rc.d), make sure the
# packaged daemons neither run nor start at boot in the root namespace: they would bind UDP
# 500/4500 and TCP 179 and answer the tests' traffic.
if [ -d /run/systemd/system ] && command -v systemctl >/dev/null 2>&1; then
  for unit in strongswan.service strongswan-starter.service bird.service; do
    if systemctl list-unit-files "$unit" 2>/dev/null | grep -q "^$unit"; then
      systemctl disable --now "$unit" >/dev/null 2>&1 || true
    fi
  done
else
  for svc in bird ipsec; do
    if [ -x "/etc/init.d/$svc" ]; then
      "/etc/init.d/$svc" stop >/dev/null 2>&1 || true
    fi
  done
fi

# Facts the tests rely on.
for bin in ip ping nft iperf3 tcpdump swanctl birdc bird /usr/sbin/charon-systemd; do
  command -v "$bin" >/dev/null 2>&1 || { echo "install-deps.sh: $bin missing after install" >&2; exit 1; }
done
[ -e /dev/net/tun ] || echo "install-deps.sh: warning: /dev/net/tun missing (strongSwan kernel-libipsec needs it)" >&2
echo "install-deps.sh: ok"
