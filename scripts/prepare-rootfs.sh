#!/usr/bin/env bash
# Make a debootstrapped Debian rootfs a good container image for systemd hosts.
# usage: prepare-rootfs.sh ROOTFS MIRROR
set -euo pipefail
R=$1
MIRROR=$2
# no package caches or lists in the image; Ansible's apt `cache_valid_time` reads the
# lists dir's mtime, so make the empty cache look stale (else "No package matching").
rm -rf "$R"/var/cache/apt/archives/*.deb "$R"/var/cache/apt/*.bin "$R"/var/lib/apt/lists/*
rm -f "$R"/var/lib/apt/periodic/update-success-stamp
touch -d @0 "$R"/var/lib/apt/lists
# per-container identity: systemd writes a machine-id at boot, sshd keys at first start
: > "$R"/etc/machine-id
rm -f "$R"/var/lib/dbus/machine-id "$R"/etc/ssh/ssh_host_*
echo localhost > "$R"/etc/hostname
mkdir -p "$R"/etc/systemd/system/ssh.service.d
cat > "$R"/etc/systemd/system/ssh.service.d/10-hostkeys.conf <<'EOT'
[Service]
ExecStartPre=
ExecStartPre=/usr/bin/ssh-keygen -A
ExecStartPre=/usr/sbin/sshd -t
EOT
# units that make no sense in a container
for u in getty@tty1.service serial-getty@.service console-getty.service systemd-remount-fs.service; do
  ln -sf /dev/null "$R/etc/systemd/system/$u"
done
cat > "$R"/etc/apt/sources.list <<EOT
deb $MIRROR bookworm main
deb $MIRROR bookworm-updates main
deb ${MIRROR%/debian}/debian-security bookworm-security main
EOT
# small installs; keep downloaded packages so a mounted archive cache fills up
printf 'APT::Install-Recommends "false";\nAPT::Install-Suggests "false";\nBinary::apt::APT::Keep-Downloaded-Packages "true";\n' \
  > "$R"/etc/apt/apt.conf.d/90container
