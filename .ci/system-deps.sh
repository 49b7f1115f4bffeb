#!/usr/bin/env bash
# Install the Debian packages the test suite needs. Runs only as root (CI and lab machines);
# elsewhere it prints what is missing and the tests that need it are reported as skipped.
#
# libvirt lab (tests/integration/libvirt, tests/contract with the libvirt backend):
#   libvirt-daemon + qemu driver + clients, qemu-system-x86 (TCG guests, no KVM needed),
#   libvirt-dev + pkg-config so that `pip install libvirt-python` can build.
# Placement: ganeti-htools (hbal) so that the test proving hbal reads our htools files runs.
# Real test guest (tests/lab/guest_image.py, built at test time): the kernel of linux-image-amd64, busybox-static,
#   kmod, cpio, fdisk (sfdisk), dosfstools, mtools, syslinux(+common), qemu-utils; cloud-image-utils for seeds.
# Consoles: novnc (the noVNC page the console proxy serves; nothing is loaded from the internet).
# Networks: nftables (the libvirt driver's per-VM firewall), iproute2 (the lab's segment bridges).
# Dashboard: chromium (the browser tests drive Debian's Chromium through Playwright: no browser download).
# Host agent and Ansible: openssh-server (a real sshd on loopback), sudo (the roles' sudoers drop-in is checked
#   with visudo), python3-apt (Ansible's apt module on the target).
set -uo pipefail
PKGS=(libvirt-daemon libvirt-daemon-driver-qemu libvirt-clients qemu-system-x86 libvirt-dev pkg-config ganeti-htools
  linux-image-amd64 busybox-static kmod cpio fdisk dosfstools mtools syslinux syslinux-common qemu-utils
  cloud-image-utils novnc nftables iproute2 chromium openssh-server sudo python3-apt)
missing=()
for p in "${PKGS[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
if [ "$(id -u)" != 0 ]; then
  [ ${#missing[@]} -eq 0 ] || echo "system-deps: not root; missing Debian packages: ${missing[*]}" >&2
  exit 0
fi
if [ ${#missing[@]} -ne 0 ]; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq && apt-get install -y -qq --no-install-recommends "${missing[@]}" \
    || echo "system-deps: apt-get install failed; the tests that need them will be skipped" >&2
fi
# Host setup for a root libvirtd and the lab's per-user session daemons (idempotent).
if ! getent group libvirt-qemu >/dev/null 2>&1 && ! getent group kvm >/dev/null 2>&1; then
  groupadd --system kvm 2>/dev/null || true
fi
if ! id libvirt-qemu >/dev/null 2>&1; then
  useradd --system --no-create-home --home-dir /var/lib/libvirt --shell /usr/sbin/nologin \
    --gid "$(getent group kvm >/dev/null && echo kvm || echo libvirt-qemu)" libvirt-qemu 2>/dev/null || true
fi
mkdir -p /var/log/libvirt /var/run/libvirt /var/lib/libvirt/qemu
exit 0
