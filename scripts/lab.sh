#!/bin/sh
# lab.sh: the two-site lab on this machine (root): installs what it needs, builds Causeway
# (release) and runs `causeway lab`, which builds two sites in network namespaces, brings
# an IKEv2/ESP tunnel and BGP up between two Causeway daemons, proves traffic and routes,
# prints a report and removes everything again. Exit 0 only if every step passed.
set -eu
cd "$(dirname "$0")/.."

if [ "$(id -u)" -ne 0 ]; then
  echo "lab.sh: must run as root (network namespaces, TUN devices)" >&2
  exit 1
fi

sh scripts/install-deps.sh

echo "== cargo build --release --bin causeway"
cargo build --release --bin causeway

BIN="${CARGO_TARGET_DIR:-target}/release/causeway"
echo "== $BIN lab"
exec "$BIN" lab "$@"
