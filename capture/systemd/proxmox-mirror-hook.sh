#!/bin/sh
# Proxmox VE hookscript: puts callscope's OVS mirrors back when a VM starts.
#
# A mirror refers to ports weakly: when a VM stops, Proxmox deletes its tap port from the OVS bridge
# and the mirror loses it (a mirrored VM's port leaves the selection; the monitoring VM's port leaves
# the output, and the mirror copies nothing). `ovs-mirror add` with the same name is idempotent and
# updates the mirror, so this script runs it again after each start of a mirrored VM or of the
# monitoring VM. docs/DEPLOY.md.
#
#   cp capture/systemd/proxmox-mirror-hook.sh /var/lib/vz/snippets/callscope-mirror.sh
#   chmod 0755 /var/lib/vz/snippets/callscope-mirror.sh
#   qm set 101 --hookscript local:snippets/callscope-mirror.sh     # each mirrored VM
#   qm set 900 --hookscript local:snippets/callscope-mirror.sh     # and the monitoring VM
#
# /etc/callscope/mirror.conf (shell syntax, owned by root):
#   MONITOR_PORT=tap900i0          # the monitoring VM's NIC that receives the copies
#   MIRRORED_VMS="101 102"         # the VMs whose traffic is mirrored
#   OVS_MIRROR=/opt/callscope/dist/bin/ovs-mirror.js    # optional; default: ovs-mirror on PATH
set -eu

vmid=${1:?usage: $0 VMID PHASE}
phase=${2:?usage: $0 VMID PHASE}
conf=${CALLSCOPE_MIRROR_CONF:-/etc/callscope/mirror.conf}

[ "$phase" = post-start ] || exit 0
if [ ! -r "$conf" ]; then
  echo "callscope-mirror: $conf is missing: no mirror restored for VM $vmid" >&2
  exit 0
fi
MONITOR_PORT=''
MIRRORED_VMS=''
OVS_MIRROR=ovs-mirror
# shellcheck source=/dev/null
. "$conf"
if [ -z "$MONITOR_PORT" ] || [ -z "$MIRRORED_VMS" ]; then
  echo "callscope-mirror: set MONITOR_PORT and MIRRORED_VMS in $conf" >&2
  exit 0
fi

# A failed mirror must not fail the VM's start: report it in the task log and go on.
mirror() {
  if "$OVS_MIRROR" add --vm "$1" --to "$MONITOR_PORT" --name "callscope-vm$1"; then
    echo "callscope-mirror: VM $1 mirrored to $MONITOR_PORT"
  else
    echo "callscope-mirror: ovs-mirror add --vm $1 --to $MONITOR_PORT failed (exit $?)" >&2
  fi
}

case "$MONITOR_PORT" in
  tap"$vmid"i*)
    # The monitoring VM came up: every mirror needs its output port again.
    for vm in $MIRRORED_VMS; do mirror "$vm"; done
    exit 0
    ;;
esac
case " $MIRRORED_VMS " in
  *" $vmid "*) mirror "$vmid" ;;
esac
exit 0
